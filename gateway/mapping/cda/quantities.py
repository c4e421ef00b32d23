"""Quantities and observation values: CDA PQ, IVL_PQ, RTO, REAL, INT and the
``xsi:type``-typed ``observation/value`` to FHIR R4 Quantity, Range, Ratio
and the ``value[x]`` choice (HL7 V3 Data Types R1; C-CDA R2.1 Result
Observation).

PQ units are UCUM by definition (``PQ.unit`` is a UCUM code), so a unit
becomes ``code`` with the UCUM system and is repeated as ``unit``. An
interval with one bound (``<high value="5" inclusive="false"/>``) is a
comparator Quantity (``< 5``), as C-CDA's "result less than" pattern means.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from lxml import etree

from ...formats.cda.namespaces import EPSOS, PHARM, V3, XSI
from .context import DocContext
from .datatypes import Node, codeable, local, transform
from .temporal import fhir_datetime, period

__all__ = ["quantity"]

UCUM = "http://unitsofmeasure.org"
_XSI_TYPE = f"{{{XSI}}}type"
_NS = (V3, PHARM, EPSOS)


def _child(el: etree._Element, name: str) -> etree._Element | None:
    for ns in _NS:
        found = el.find(f"{{{ns}}}{name}")
        if found is not None:
            return found
    return None


def _decimal(text: str, ctx: DocContext, el: etree._Element) -> int | float | None:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        ctx.warn(f"{text!r} is not a number", el, attribute="value")
        return None
    if not d.is_finite():
        ctx.warn(f"{text!r} is not a finite number", el, attribute="value")
        return None
    if d == d.to_integral_value() and "." not in text and "e" not in text.lower():
        return int(d)
    return float(d)


def quantity(
    el: etree._Element, ctx: DocContext, args: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """PQ → Quantity (``args.positive``: a value ≤ 0 is reported; with
    ``positive: drop`` it is also left out, e.g. the number of packages of
    an eHDSI eDispensation, which must be positive)."""
    args = args or {}
    value = el.get("value")
    if value is None or not value.strip():
        return None
    number = _decimal(value, ctx, el)
    if number is None:
        return None
    if args.get("positive") and number <= 0:
        drop = args.get("positive") == "drop"
        ctx.warn(
            f"quantity {value} is not positive" + (": not kept" if drop else ""),
            el,
            code="value",
            attribute="value",
        )
        if drop:
            return None
    out: dict[str, Any] = {"value": number}
    unit = (el.get("unit") or "").strip()
    if unit and _not_ucum(unit):
        out.update(unit=unit)  # CDA says PQ units are UCUM; a sender's own word is not
        ctx.info(f"unit {unit!r} is not a UCUM unit: kept as text", el, attribute="unit")
    elif unit:
        out.update(unit=unit, system=UCUM, code=unit)
    elif args.get("unit_one", True) and local(el) in ("doseQuantity", "quantity") and not unit:
        out.update(unit="1", system=UCUM, code="1")
    tr = _child(el, "translation")
    if tr is not None and tr.get("value"):
        ctx.info(
            f"alternative quantity {tr.get('value')} {tr.get('code') or ''} not converted "
            "(FHIR Quantity holds one unit)",
            tr,
        )
    return out


@lru_cache(maxsize=1024)
def _not_ucum(unit: str) -> bool:
    """A unit the UCUM tables refuse (``Puffs``); False when they are not available."""
    from ...terminology.ucum import ucum_validate

    return ucum_validate(unit) is False


@transform("Quantity")
def t_quantity(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return None
    if node.get("value") is None and (
        _child(node, "low") is not None or _child(node, "center") is not None
    ):
        inner = _child(node, "center") or _child(node, "low")
        return quantity(inner, ctx, args) if inner is not None else None
    return quantity(node, ctx, args)


def _bound(
    el: etree._Element, ctx: DocContext, args: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    low, high = _child(el, "low"), _child(el, "high")
    lo = quantity(low, ctx, args) if low is not None else None
    hi = quantity(high, ctx, args) if high is not None else None
    # a bound without a unit takes the other bound's (IVL_PQ may give it once)
    if lo and hi:
        if "unit" not in lo and "unit" in hi:
            lo.update(unit=hi["unit"], system=UCUM, code=hi["code"])
        if "unit" not in hi and "unit" in lo:
            hi.update(unit=lo["unit"], system=UCUM, code=lo["code"])
    return lo, hi


@transform("Range")
def t_range(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """IVL_PQ → Range."""
    if isinstance(node, str):
        return None
    lo, hi = _bound(node, ctx, args)
    out = {}
    if lo:
        out["low"] = lo
    if hi:
        out["high"] = hi
    return out or None


@transform("Ratio")
def t_ratio(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """RTO<PQ,PQ> (e.g. ``pharm:quantity`` numerator / denominator) → Ratio."""
    if isinstance(node, str):
        return None
    out = {}
    for part in ("numerator", "denominator"):
        el = _child(node, part)
        if el is not None:
            q = quantity(el, ctx, {"unit_one": False})
            if q:
                out[part] = q
    return out or None


@transform("dose")
def t_dose(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """``doseQuantity`` (PQ or IVL_PQ) → ``dose[x]``: Quantity or Range."""
    if isinstance(node, str):
        return None
    if node.get("value") is not None:
        q = quantity(node, ctx, args)
        return ("Quantity", q) if q else None
    lo, hi = _bound(node, ctx, args)
    if lo and hi and lo == hi:
        return ("Quantity", lo)
    if lo or hi:
        r = {}
        if lo:
            r["low"] = lo
        if hi:
            r["high"] = hi
        return ("Range", r)
    return None


def _comparator(el: etree._Element, ctx: DocContext) -> dict[str, Any] | None:
    lo, hi = _bound(el, ctx, {})
    if lo and hi and lo.get("value") == 0:
        lo = None  # C-CDA "less than" results: a physical measure bounded below by zero
    if lo and hi:
        return None
    if hi:
        bound = _child(el, "high")
        inclusive = bound is not None and bound.get("inclusive", "true") != "false"
        return {**hi, "comparator": "<=" if inclusive else "<"}
    if lo:
        bound = _child(el, "low")
        inclusive = bound is not None and bound.get("inclusive", "true") != "false"
        return {**lo, "comparator": ">=" if inclusive else ">"}
    return None


@transform("value")
def t_value(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """``observation/value`` by its ``xsi:type`` → ``value[x]``: PQ →
    Quantity; IVL_PQ → Range (one bound: a comparator Quantity); CD, CE,
    CV, CO, CS → CodeableConcept; ST, ED, SC → string; BL → boolean; INT →
    integer; REAL → Quantity without unit; TS → dateTime; IVL_TS → Period;
    RTO → Ratio."""
    if isinstance(node, str):
        return ("String", node) if node.strip() else None
    kind = (node.get(_XSI_TYPE) or "").rpartition(":")[2].upper()
    if not kind:
        if node.get("code") is not None or node.get("codeSystem"):
            kind = "CD"
        elif node.get("unit") is not None:
            kind = "PQ"
        elif node.get("nullFlavor") and len(node) == 0:
            return None
        else:
            kind = "ST"
    if kind == "PQ":
        q = quantity(node, ctx, args)
        return ("Quantity", q) if q else None
    if kind == "IVL_PQ":
        if node.get("value") is not None:
            q = quantity(node, ctx, args)
            return ("Quantity", q) if q else None
        c = _comparator(node, ctx)
        if c:
            return ("Quantity", c)
        r = t_range(node, ctx, args)
        return ("Range", r) if r else None
    if kind in ("CD", "CE", "CV", "CO", "CS"):
        c = codeable(node, ctx, args)
        return ("CodeableConcept", c) if c else None
    if kind in ("ST", "ED", "SC"):
        text = ctx.text(node)
        return ("String", text) if text else None
    if kind == "BL":
        v = (node.get("value") or "").lower()
        return ("Boolean", v == "true") if v in ("true", "false") else None
    if kind == "INT":
        try:
            return ("Integer", int(node.get("value") or ""))
        except ValueError:
            ctx.warn(f"{node.get('value')!r} is not an integer", node, attribute="value")
            return None
    if kind in ("REAL", "MO"):
        v = node.get("value")
        number = _decimal(v, ctx, node) if v else None
        return ("Quantity", {"value": number}) if number is not None else None
    if kind == "TS":
        v = node.get("value")
        dt = fhir_datetime(v, ctx, node) if v else None
        return ("DateTime", dt) if dt else None
    if kind == "IVL_TS":
        p = period(node, ctx)
        return ("Period", p) if p else None
    if kind == "RTO" or kind.startswith("RTO_"):
        r = t_ratio(node, ctx, args)
        return ("Ratio", r) if r else None
    ctx.warn(f"observation value of type {kind} is not converted", node)
    return None
