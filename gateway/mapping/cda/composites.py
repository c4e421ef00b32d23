"""Transforms that build composite or wrapped FHIR values: extensions,
choice elements, codes from tables, the IPS absent/unknown concepts,
attachments, device names, US Core race and ethnicity, language
proficiency, observation reference ranges.

Each is small and typed; the mapping files say where each one applies.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from lxml import etree

from ...formats.cda.namespaces import V3
from .context import DocContext
from .datatypes import TRANSFORMS, Node, codeable, coding_of, transform
from .quantities import quantity

__all__: list[str] = []

_V3 = f"{{{V3}}}"
SC_CODING = "http://hl7.org/fhir/StructureDefinition/iso21090-SC-coding"
IPS_ABSENT = "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips"


@transform("extension")
def t_extension(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """``{url, value<type>}`` with the value made by the transform named
    ``args.via`` (``args.type`` is the FHIR type suffix: ``String``,
    ``CodeableConcept``, ``Address``...)."""
    via = TRANSFORMS[str(args["via"])]
    value = via.fn(node, ctx, {k: v for k, v in args.items() if k not in ("url", "type", "via")})
    if value is None:
        return None
    return {"url": args["url"], f"value{args['type']}": value}


@transform("choice")
def t_choice(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """A ``[x]`` element of type ``args.type`` made by ``args.via``."""
    via = TRANSFORMS[str(args["via"])]
    value = via.fn(node, ctx, {k: v for k, v in args.items() if k not in ("type", "via")})
    return (args["type"], value) if value is not None else None


@transform("concept")
def t_concept(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """A CodeableConcept ``{system: args.system, code}``: the code is
    ``args.code`` when given, else the element's (or attribute's) code
    through ``args.table``."""
    code = args.get("code")
    if code is None:
        value = node if isinstance(node, str) else node.get("code")
        if value is None:
            return None
        table = args.get("table")
        code = value.strip()
        if table:
            code = ctx.table(table).get(code) or ctx.table(table).get(code.lower())
        if code is None:
            ctx.warn(
                f"{value!r} has no entry in table {table!r}: not converted",
                None if isinstance(node, str) else node,
                code="code-invalid",
            )
            return None
    coding = {"system": args["system"], "code": code}
    if args.get("display"):
        coding["display"] = args["display"]
    return {"coding": [coding]}


@transform("coding")
def t_coding_table(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """A code through ``args.table`` whose entries are ``system|code|display``
    → a Coding."""
    value = node if isinstance(node, str) else node.get("code")
    if not value:
        return None
    hit = ctx.table(args["table"]).get(value.strip())
    if hit is None:
        if "default" not in args:
            ctx.warn(
                f"{value!r} has no entry in table {args['table']!r}: not converted",
                None if isinstance(node, str) else node,
                code="code-invalid",
            )
        return None
    system, _, rest = str(hit).partition("|")
    code, _, display = rest.partition("|")
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


@transform("sc_coding")
def t_sc_coding(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """The source coding of a value mapped to a FHIR ``code``, kept in the
    ``iso21090-SC-coding`` extension of that code (so the original concept
    is not lost when a table reduces it to a code)."""
    if isinstance(node, str):
        return None
    coding = coding_of(node, ctx)
    return {"url": SC_CODING, "valueCoding": coding} if coding else None


@transform("value_code")
def t_value_code(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """The ``value/@code`` of an observation through ``args.table``: for
    observations that only qualify another (severity, criticality)."""
    if isinstance(node, str):
        return None
    value = node.find(_V3 + "value")
    if value is None or not value.get("code"):
        return None
    code = value.get("code", "").strip()
    hit = ctx.table(args["table"]).get(code)
    if hit is None:
        if "default" not in args:
            ctx.warn(
                f"{code!r} has no entry in table {args['table']!r}: not converted",
                value,
                code="code-invalid",
            )
        return args.get("default")
    if args.get("system"):
        return {"coding": [{"system": args["system"], "code": hit}]}
    return hit


@transform("value_coding")
def t_value_coding(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """The ``value`` of a qualifying observation → one Coding (to add it to
    a CodeableConcept another rule made)."""
    if isinstance(node, str):
        return None
    value = node.find(_V3 + "value")
    return coding_of(value, ctx) if value is not None else None


@transform("value_concept")
def t_value_concept(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """The ``value`` (CD) of a qualifying observation → CodeableConcept."""
    if isinstance(node, str):
        return None
    value = node.find(_V3 + "value")
    return codeable(value, ctx, args) if value is not None else None


@transform("value_sc_coding")
def t_value_sc_coding(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    if isinstance(node, str):
        return None
    value = node.find(_V3 + "value")
    return t_sc_coding(value, ctx, args) if value is not None else None


@transform("base64")
def t_base64(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """ED content → base64: ``representation="B64"`` is checked and kept,
    text is encoded (UTF-8)."""
    if isinstance(node, str):
        return base64.b64encode(node.encode("utf-8")).decode("ascii")
    if node.find(_V3 + "reference") is not None and not "".join(node.itertext()).strip():
        ctx.warn("the body refers to external content (reference); not fetched", node)
        return None
    text = "".join(node.itertext())
    if (node.get("representation") or "TXT").upper() == "B64":
        compact = "".join(text.split())
        try:
            base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            ctx.warn("the body is marked base64 but is not valid base64", node)
            return None
        return compact
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


@transform("device_name")
def t_device_name(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    text = node.strip() if isinstance(node, str) else ctx.text(node)
    return {"name": text, "type": args.get("type", "model-name")} if text else None


def _race(nodes: list[etree._Element], ctx: DocContext, url: str, omb: set[str]) -> Any:
    parts: list[dict[str, Any]] = []
    texts: list[str] = []
    for el in nodes:
        c = coding_of(el, ctx)
        if c is None:
            continue
        kind = "ombCategory" if c["code"] in omb else "detailed"
        parts.append({"url": kind, "valueCoding": c})
        texts.append(c.get("display") or c["code"])
    if not parts:
        return None
    parts.append({"url": "text", "valueString": ", ".join(texts)})
    return {"url": url, "extension": parts}


@transform("us_core_race", many=True)
def t_us_core_race(nodes: list[Any], ctx: DocContext, args: dict[str, Any]) -> Any:
    """C-CDA ``raceCode`` and ``sdtc:raceCode`` → the US Core race extension."""
    return _race(
        [n for n in nodes if not isinstance(n, str)],
        ctx,
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
        {"1002-5", "2028-9", "2054-5", "2076-8", "2106-3", "UNK", "ASKU"},
    )


@transform("us_core_ethnicity", many=True)
def t_us_core_ethnicity(nodes: list[Any], ctx: DocContext, args: dict[str, Any]) -> Any:
    return _race(
        [n for n in nodes if not isinstance(n, str)],
        ctx,
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        {"2135-2", "2186-5", "UNK", "ASKU"},
    )


@transform("proficiency", many=True)
def t_proficiency(nodes: list[Any], ctx: DocContext, args: dict[str, Any]) -> Any:
    """``modeCode`` / ``proficiencyLevelCode`` of a languageCommunication →
    the ``patient-proficiency`` extension."""
    parts = []
    for el in nodes:
        if isinstance(el, str):
            continue
        c = coding_of(el, ctx)
        if c is None:
            continue
        name = "type" if el.tag == _V3 + "modeCode" else "level"
        parts.append({"url": name, "valueCoding": c})
    if not parts:
        return None
    return {
        "url": "http://hl7.org/fhir/StructureDefinition/patient-proficiency",
        "extension": parts,
    }


@transform("reference_range")
def t_reference_range(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """``referenceRange/observationRange`` → Observation.referenceRange:
    its IVL_PQ value's bounds, its text."""
    if isinstance(node, str):
        return None
    out: dict[str, Any] = {}
    value = node.find(_V3 + "value")
    if value is not None:
        for part in ("low", "high"):
            b = value.find(_V3 + part)
            if b is not None:
                q = quantity(b, ctx, {"unit_one": False})
                if q:
                    out[part] = q
        if value.get("value") and not out:
            q = quantity(value, ctx, {"unit_one": False})
            if q:
                out["low"] = q
                out["high"] = dict(q)
    text = node.find(_V3 + "text")
    if text is not None:
        t = ctx.text(text)
        if t:
            out["text"] = t
    interp = node.find(_V3 + "interpretationCode")
    if interp is not None and interp.get("code") and interp.get("code") != "N":
        c = codeable(interp, ctx)
        if c:
            out["type"] = c
    if not out and value is not None and (value.text or "").strip():
        out["text"] = (value.text or "").strip()
    return out or None
