"""Times: CDA TS, IVL_TS, PIVL_TS and EIVL_TS to FHIR R4 date, dateTime,
instant, Period and Timing (HL7 V3 Data Types R1 sections TS, IVL<TS>,
PIVL<TS>, EIVL<TS>).

A TS is ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``; its precision is kept
(``1994`` stays a year). FHIR wants a time zone with a time of day: without
one the document's zone (from ``ClinicalDocument/effectiveTime``) is used,
and without that the value is cut to its date and the loss reported. A time
of day without seconds gets ``:00`` seconds.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from ...formats.cda.namespaces import V3, XSI
from .context import DocContext
from .datatypes import Node, local, transform

__all__ = ["fhir_datetime", "document_zone"]

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d+)?([+-]\d{4}|Z)?$")
_V3 = f"{{{V3}}}"
_XSI_TYPE = f"{{{XSI}}}type"


def document_zone(value: str | None) -> str | None:
    """The ``+hhmm`` zone of a TS, if it has one."""
    if not value:
        return None
    m = _TS.match(value.strip())
    if m and m.group(8):
        return m.group(8)
    return None


def fhir_datetime(
    value: str, ctx: DocContext, el: etree._Element | None, kind: str = "dateTime"
) -> str | None:
    """A TS value as a FHIR ``date``, ``dateTime`` or ``instant``."""
    text = value.strip()
    m = _TS.match(text)
    if not m:
        ctx.warn(
            f"{text!r} is not a CDA date/time (YYYY[MM[DD[HH[MM[SS]]]]][+/-ZZZZ])",
            el,
            code="value",
            attribute="value",
        )
        return None
    year, month, day, hh, mi, ss, frac, tz = m.groups()
    if (
        (month and not 1 <= int(month) <= 12)
        or (day and not 1 <= int(day) <= 31)
        or (hh and int(hh) > 23)
        or (mi and int(mi) > 59)
        or (ss and int(ss) > 60)
    ):
        ctx.warn(f"{text!r} is not a valid date/time", el, attribute="value")
        return None
    date = year + (f"-{month}" if month else "") + (f"-{day}" if month and day else "")
    if kind == "date" or not hh or not day:
        if kind == "instant":
            ctx.info(
                f"{text!r} has no time of day: an instant needs one, not converted",
                el,
                code="incomplete",
                attribute="value",
            )
            return None
        if kind == "date" and hh:
            pass  # the time of day is carried elsewhere when it matters (e.g. patient-birthTime)
        return date
    zone = tz or ctx.default_tz
    if not zone:
        ctx.warn(
            f"{text!r} has a time of day but no time zone, nor has the document: kept as "
            "the date only",
            el,
            code="incomplete",
            attribute="value",
        )
        return date
    zone = "+00:00" if zone == "Z" else f"{zone[:3]}:{zone[3:]}"
    clock = f"{hh}:{mi or '00'}:{ss or '00'}{frac or ''}"
    return f"{date}T{clock}{zone}"


def _value(el: etree._Element) -> str | None:
    v = el.get("value")
    return v.strip() if v and v.strip() else None


@transform("dateTime")
def t_datetime(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """TS → dateTime. On an interval, its ``center``, else its ``low``."""
    if isinstance(node, str):
        return fhir_datetime(node, ctx, None)
    v = _value(node)
    if v is None:
        for part in ("center", "low"):
            sub = node.find(_V3 + part)
            if sub is not None and _value(sub):
                return fhir_datetime(_value(sub) or "", ctx, sub)
        return None
    return fhir_datetime(v, ctx, node)


@transform("date")
def t_date(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return fhir_datetime(node, ctx, None, "date")
    v = _value(node)
    return fhir_datetime(v, ctx, node, "date") if v else None


@transform("instant")
def t_instant(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return fhir_datetime(node, ctx, None, "instant")
    v = _value(node)
    return fhir_datetime(v, ctx, node, "instant") if v else None


@transform("birth_time")
def t_birth_time(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """A birth time with a time of day → the ``patient-birthTime`` extension
    (``birthDate`` keeps the date)."""
    if isinstance(node, str):
        return None
    v = _value(node)
    if not v or len(v) <= 8:
        return None
    dt = fhir_datetime(v, ctx, node)
    if not dt or "T" not in dt:
        return None
    return {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": dt}


def period(el: etree._Element, ctx: DocContext) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    v = _value(el)
    if v:
        point = fhir_datetime(v, ctx, el)
        if point:
            return {"start": point, "end": point}
        return None
    for part, key in (("low", "start"), ("high", "end")):
        sub = el.find(_V3 + part)
        if sub is not None and _value(sub):
            t = fhir_datetime(_value(sub) or "", ctx, sub)
            if t:
                out[key] = t
    center = el.find(_V3 + "center")
    if center is not None and _value(center) and not out:
        t = fhir_datetime(_value(center) or "", ctx, center)
        if t:
            out = {"start": t, "end": t}
    width = el.find(_V3 + "width")
    if width is not None and width.get("value"):
        ctx.info(
            f"interval width {width.get('value')} {width.get('unit', '')} not converted "
            "(FHIR Period has no width)",
            width,
        )
    if (
        "start" in out
        and "end" in out
        and out["end"] < out["start"]
        and len(out["end"]) == len(out["start"])
    ):
        ctx.warn(f"interval ends ({out['end']}) before it starts ({out['start']})", el)
    return out or None


@transform("Period")
def t_period(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """IVL_TS → Period (a single ``@value`` is a point: start = end)."""
    if isinstance(node, str):
        return None
    return period(node, ctx)


@transform("effective")
def t_effective(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """IVL_TS / TS → a ``[x]`` choice: ``DateTime`` for a point or a lone
    ``low`` when ``args.low_as_point``; ``Period`` otherwise."""
    if isinstance(node, str):
        v = fhir_datetime(node, ctx, None)
        return ("DateTime", v) if v else None
    v = _value(node)
    if v:
        dt = fhir_datetime(v, ctx, node)
        return ("DateTime", dt) if dt else None
    p = period(node, ctx)
    if not p:
        return None
    if args.get("low_as_point") and set(p) == {"start"}:
        return ("DateTime", p["start"])
    if set(p) == {"start", "end"} and p["start"] == p["end"]:
        return ("DateTime", p["start"])
    return ("Period", p)


@transform("Timing", many=True)
def t_timing(nodes: list[etree._Element], ctx: DocContext, args: dict[str, Any]) -> Any:
    """PIVL_TS / EIVL_TS (the second and later ``effectiveTime`` of a
    substance administration) → Timing: a period becomes
    ``repeat.period``/``periodUnit``, an event ``repeat.when`` (with its
    offset), an IVL_TS ``repeat.boundsPeriod``."""
    repeat: dict[str, Any] = {}
    for el in nodes:
        if not isinstance(el, etree._Element) or el.get("nullFlavor"):
            continue
        kind = (el.get(_XSI_TYPE) or "").rpartition(":")[2]
        per = el.find(_V3 + "period")
        event = el.find(_V3 + "event")
        if kind == "PIVL_TS" or per is not None:
            if per is not None and per.get("value"):
                unit = ctx.table("time-units").get(per.get("unit") or "")
                if unit is None:
                    ctx.warn(f"period unit {per.get('unit')!r} is not a FHIR time unit", per)
                    continue
                repeat["frequency"] = 1
                repeat["period"] = _number(per.get("value") or "")
                repeat["periodUnit"] = unit
            phase = el.find(_V3 + "phase")
            if phase is not None:
                p = period(phase, ctx)
                if p and "start" in p:
                    repeat.setdefault("boundsPeriod", {})["start"] = p["start"]
            if el.get("institutionSpecified") == "true":
                ctx.info(
                    "institutionSpecified timing: the institution chooses the time of day "
                    "(FHIR Timing has no such flag)",
                    el,
                    attribute="institutionSpecified",
                )
        elif kind == "EIVL_TS" or event is not None:
            if event is not None and event.get("code"):
                repeat.setdefault("when", []).append(event.get("code"))
            offset = el.find(_V3 + "offset")
            if offset is not None:
                low = offset.find(_V3 + "low")
                src = low if low is not None else offset
                unit = ctx.table("time-units").get(src.get("unit") or "")
                if src.get("value") and unit == "min":
                    repeat["offset"] = int(float(src.get("value") or 0))
                elif src.get("value"):
                    ctx.info(
                        f"event offset {src.get('value')} {src.get('unit')} not converted", offset
                    )
        elif kind in ("IVL_TS", "") and (
            el.find(_V3 + "low") is not None or el.find(_V3 + "high") is not None
        ):
            p = period(el, ctx)
            if p:
                repeat["boundsPeriod"] = p
        else:
            ctx.warn(f"timing of type {kind or local(el)!r} is not converted", el)
    return {"repeat": repeat} if repeat else None


def _number(text: str) -> int | float:
    f = float(text)
    return int(f) if f.is_integer() and "." not in text else f
