"""Primitive values: JSON type and lexical form (FHIR R4 section 2.24.0.1).

The regular expressions come from the core StructureDefinitions themselves
(the ``regex`` extension on ``<type>.value``), compiled once; the JSON type
of each primitive is fixed by the JSON format (section 2.6.2: boolean as
JSON true/false, integer/decimal types as JSON numbers, the rest strings).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .packages import get_registry
from .typeinfo import PRIMITIVES

__all__ = ["PrimitiveRule", "primitive_rule", "check_primitive"]

_NUMBERS = {"integer", "positiveInt", "unsignedInt", "decimal"}
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PrimitiveRule:
    name: str
    regex: re.Pattern[str] | None


@lru_cache(maxsize=64)
def _rule(name: str) -> PrimitiveRule | None:
    if name not in PRIMITIVES:
        return None
    sd = get_registry().get(f"http://hl7.org/fhir/StructureDefinition/{name}")
    pattern = None
    for e in (sd or {}).get("snapshot", {}).get("element", []):
        if e.get("path") == f"{name}.value":
            for t in e.get("type", []):
                for ext in t.get("extension", []):
                    if ext.get("url") == "http://hl7.org/fhir/StructureDefinition/regex":
                        pattern = ext.get("valueString")
    return PrimitiveRule(name, re.compile(pattern) if pattern and name != "xhtml" else None)


_RULES: dict[str, PrimitiveRule | None] = {}


def primitive_rule(name: str) -> PrimitiveRule | None:
    hit = _RULES.get(name, _RULES)
    if hit is _RULES:
        with _lock:
            hit = _RULES[name] = _rule(name)
    return hit  # type: ignore[return-value]


def check_primitive(name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name`` in FHIR JSON, or None if it is."""
    if name == "boolean":
        return None if isinstance(value, bool) else f"expected a JSON boolean for {name}"
    if name in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a JSON number for {name}"
        if name != "decimal" and not (isinstance(value, int) or float(value).is_integer()):
            return f"expected a whole number for {name}"
        if name == "positiveInt" and value < 1:
            return "positiveInt must be 1 or more"
        if name == "unsignedInt" and value < 0:
            return "unsignedInt must be 0 or more"
        if name == "integer" and not -2147483648 <= value <= 2147483647:
            return "integer out of the 32-bit range"
        return None
    if not isinstance(value, str):
        return f"expected a JSON string for {name}"
    if name in ("string", "markdown"):
        return None if value.strip() else f"{name} value is empty or only whitespace"
    rule = primitive_rule(name)
    if rule is not None and rule.regex is not None and not rule.regex.fullmatch(value):
        return f"{value!r} is not a valid {name}"
    return None
