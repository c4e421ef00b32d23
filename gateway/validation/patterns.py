"""``fixed[x]`` and ``pattern[x]`` (FHIR R4 section 2.17.0.3 "ElementDefinition.fixed[x]",
"ElementDefinition.pattern[x]").

A fixed value must match exactly (every element, no more); a pattern must be
contained in the instance: every element the pattern has, the instance has
with the same value, and for a repeating element each pattern item must be
matched by some instance item.
"""

from __future__ import annotations

from typing import Any

__all__ = ["matches_pattern", "matches_fixed"]


def _same_primitive(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, bool) or isinstance(value, bool):
        return pattern is value
    if isinstance(pattern, (int, float)) and isinstance(value, (int, float)):
        return float(pattern) == float(value)
    return bool(pattern == value)


def matches_pattern(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(matches_pattern(pv, value.get(k)) for k, pv in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else ([value] if value is not None else [])
        return all(any(matches_pattern(p, v) for v in items) for p in pattern)
    if value is None:
        return False
    if isinstance(value, list):
        return any(_same_primitive(pattern, v) for v in value)
    return _same_primitive(pattern, value)


def matches_fixed(fixed: Any, value: Any) -> bool:
    if isinstance(fixed, dict):
        if not isinstance(value, dict):
            return False
        keys = {k for k in value if k != "id"}
        return keys == set(fixed) and all(matches_fixed(fixed[k], value[k]) for k in fixed)
    if isinstance(fixed, list):
        return isinstance(value, list) and len(fixed) == len(value) and all(
            matches_fixed(f, v) for f, v in zip(fixed, value))
    return value is not None and _same_primitive(fixed, value)
