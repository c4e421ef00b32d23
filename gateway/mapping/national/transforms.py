"""Transforms of the national XML mapping engine: the text (and attributes)
of one selected element → one FHIR value (R4 data types: Identifier,
CodeableConcept, Quantity, date/dateTime, boolean...).

A transform gets the element, the rule's ``args`` and a ``report`` callback
for what it cannot keep; it returns the FHIR value, or ``None`` (nothing
written). ``args.system`` / ``args.systems`` (attribute value → system URI)
name code and identifier systems, so the national code lists live in the
mapping file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

__all__ = ["TRANSFORMS", "Transform", "Report"]

Report = Callable[[str, etree._Element, str], None]  # (message, element, issue code)
Transform = Callable[[Any, dict[str, Any], Report], Any]
TRANSFORMS: dict[str, Transform] = {}

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


def transform(name: str) -> Callable[[Transform], Transform]:
    def deco(fn: Transform) -> Transform:
        TRANSFORMS[name] = fn
        return fn

    return deco


def text(node: Any) -> str:
    if isinstance(node, float):  # an XPath number (count(...))
        return str(int(node)) if node == int(node) else str(node)
    if isinstance(node, str):
        return node.strip()
    return " ".join("".join(node.itertext()).split())


def _system(node: Any, args: dict[str, Any]) -> str | None:
    systems = args.get("systems")
    if systems and not isinstance(node, str):
        attr = args.get("by", "source")
        system = systems.get(node.get(attr))
        if system:
            return str(system)
    return args.get("system")


@transform("string")
def t_string(node: Any, args: dict[str, Any], report: Report) -> Any:
    return text(node) or None


@transform("constant")
def t_constant(node: Any, args: dict[str, Any], report: Report) -> Any:
    return args.get("value")


@transform("ignore")
def t_ignore(node: Any, args: dict[str, Any], report: Report) -> Any:
    return None


@transform("boolean")
def t_boolean(node: Any, args: dict[str, Any], report: Report) -> Any:
    v = text(node).lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    report(f"{v!r} is not a boolean", node, "value")
    return None


@transform("integer")
def t_integer(node: Any, args: dict[str, Any], report: Report) -> Any:
    v = text(node)
    try:
        return int(Decimal(v)) if Decimal(v) == int(Decimal(v)) else None
    except (InvalidOperation, ValueError):
        report(f"{v!r} is not an integer", node, "value")
        return None


def _number(v: str, node: Any, report: Report) -> int | float | None:
    try:
        d = Decimal(v)
    except InvalidOperation:
        report(f"{v!r} is not a number", node, "value")
        return None
    return int(d) if d == d.to_integral_value() else float(d)


@transform("date")
def t_date(node: Any, args: dict[str, Any], report: Report) -> Any:
    v = text(node)
    if _DATE.match(v):
        return v
    if _DATETIME.match(v):
        return v[:10]
    report(f"{v!r} is not a date (YYYY-MM-DD)", node, "value")
    return None


@transform("dateTime")
def t_datetime(node: Any, args: dict[str, Any], report: Report) -> Any:
    v = text(node)
    if _DATETIME.match(v) or _DATE.match(v):
        return v
    report(f"{v!r} is not an xs:dateTime with a time zone", node, "value")
    return None


@transform("code")
def t_code(node: Any, args: dict[str, Any], report: Report) -> Any:
    """A code through ``table`` (national value → FHIR code)."""
    v = text(node)
    table = args.get("table") or {}
    if v in table:
        return table[v]
    if args.get("default") is not None:
        report(f"{v!r} is not in the mapping's table: {args['default']!r} used", node,
               "code-invalid")
        return args["default"]
    report(f"{v!r} is not in the mapping's table", node, "code-invalid")
    return None


@transform("Identifier")
def t_identifier(node: Any, args: dict[str, Any], report: Report) -> Any:
    v = text(node)
    if not v:
        return None
    system = _system(node, args)
    if system is None and not isinstance(node, str) and node.get("source"):
        report(f"identifier source {node.get('source')!r} has no system URI in the mapping: "
               "kept as the assigner", node, "code-invalid")
        return {"value": v, "assigner": {"display": node.get("source")}}
    out: dict[str, Any] = {"value": v}
    if system:
        out = {"system": system, "value": v}
    if args.get("type"):
        out["type"] = {"text": args["type"]}
    return out


@transform("CodeableConcept")
def t_codeable(node: Any, args: dict[str, Any], report: Report) -> Any:
    """``Code`` with a sibling ``Text`` (``args.text``: the XPath of the
    display, relative to the code's parent) → CodeableConcept."""
    code = text(node)
    if not code:
        return None
    coding: dict[str, Any] = {"code": code}
    system = _system(node, args)
    if system:
        coding = {"system": system, "code": code}
    else:
        report(f"code {code!r}: no system URI for source {node.get('source')!r} in the mapping",
               node, "code-invalid")
    out: dict[str, Any] = {"coding": [coding]}
    disp = args.get("text")
    if disp and not isinstance(node, str):
        found = node.getparent().xpath(disp, namespaces=args.get("_ns") or {})
        if found:
            t = text(found[0])
            if t:
                coding["display"] = t
                out["text"] = t
    return out


@transform("concept_text")
def t_concept_text(node: Any, args: dict[str, Any], report: Report) -> Any:
    v = text(node)
    return {"text": v} if v else None


@transform("Quantity")
def t_quantity(node: Any, args: dict[str, Any], report: Report) -> Any:
    v = text(node)
    n = _number(v, node, report)
    if n is None:
        return None
    if args.get("positive") and n <= 0:
        report(f"quantity {v} is not positive: not kept", node, "value")
        return None
    out: dict[str, Any] = {"value": n}
    if args.get("unit"):
        out.update(unit=args["unit"], system="http://unitsofmeasure.org", code=args["unit"])
    return out


@transform("HumanName")
def t_human_name(node: Any, args: dict[str, Any], report: Report) -> Any:
    """A name element with given/surname children, or one text (``args.text``)."""
    if isinstance(node, str) or args.get("text"):
        v = text(node)
        return {"text": v} if v else None
    given = [text(g) for g in node if etree.QName(g).localname in ("GivenName", "MiddleName")]
    family = [text(f) for f in node if etree.QName(f).localname == "Surname"]
    out: dict[str, Any] = {}
    if family:
        out["family"] = " ".join(family)
    if given:
        out["given"] = [g for g in given if g]
    return out or None


@transform("Coding")
def t_coding(node: Any, args: dict[str, Any], report: Report) -> Any:
    """One Coding (as ``CodeableConcept`` builds it), for ``code.coding[]``."""
    cc = t_codeable(node, args, report)
    return cc["coding"][0] if cc else None


@transform("number")
def t_number(node: Any, args: dict[str, Any], report: Report) -> Any:
    """A decimal (FHIR decimal / Quantity.value)."""
    v = text(node)
    return _number(v, node, report) if v else None
