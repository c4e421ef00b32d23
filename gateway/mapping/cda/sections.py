"""The CDA body: sections and their entries to ``Composition.section``
(CDA R2 section 4.3; IPS IG Composition-uv-ips sections; eHDSI PS and C-CDA
R2.1 section templates).

A section is recognised by its LOINC code, else by its templateId
(``sections.yaml``); each clinical statement of each entry goes to the first
entry template of that section whose ``match`` fits it (element, templateId,
moodCode), else to the generic template for its kind. Every resource made
from an entry is listed in the section; every entry is traced in the
fidelity report, mapped or not; nested sections become nested sections.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ...formats.cda import V3, locate
from .datatypes import codeable, local
from .engine import EntryTrace, Run
from .narrative import narratives
from .spec import CdaMappingSet, SectionSpec, Template

__all__ = ["map_body", "CLINICAL", "LOINC", "empty_section"]

_V3 = f"{{{V3}}}"
CLINICAL = frozenset(
    {
        "act",
        "observation",
        "substanceAdministration",
        "supply",
        "procedure",
        "organizer",
        "encounter",
        "observationMedia",
        "regionOfInterest",
    }
)
LOINC = "http://loinc.org"
_EMPTY = "http://terminology.hl7.org/CodeSystem/list-empty-reason"


def _spec_for(section: etree._Element, mapping: CdaMappingSet) -> SectionSpec | None:
    code = section.find(_V3 + "code")
    if code is not None and code.get("code") in mapping.section_by_code:
        return mapping.section_by_code[code.get("code") or ""]
    for t in section.iterchildren(_V3 + "templateId"):
        spec = mapping.section_by_template.get(t.get("root") or "")
        if spec is not None:
            return spec
    return None


def _template_for(
    stmt: etree._Element, spec: SectionSpec | None, mapping: CdaMappingSet
) -> Template | None:
    name = local(stmt)
    roots = {t.get("root") for t in stmt.iterchildren(_V3 + "templateId")}
    mood = stmt.get("moodCode") or ""
    for tname in spec.entries if spec else ():
        t = mapping.templates[tname]
        m = t.match
        if m is None or name not in m.elements:
            continue
        if m.templates and not (m.templates & roots):
            continue
        if m.moods and mood not in m.moods:
            continue
        return t
    generic = mapping.generic.get(f"{name}:{mood}") or mapping.generic.get(name)
    return mapping.templates.get(generic) if generic else None


def empty_section(spec: SectionSpec, reason: str, text: str) -> dict[str, Any]:
    """A section the document lacks or left empty: code, title, a short
    narrative and ``emptyReason``."""
    return {
        "title": spec.title,
        "code": {"coding": [{"system": LOINC, "code": spec.ips_code or spec.codes[0]}]},
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{text}</div>',
        },
        "emptyReason": {"coding": [{"system": _EMPTY, "code": reason}]},
    }


def _section(run: Run, section: etree._Element, trace: list[EntryTrace]) -> dict[str, Any]:
    mapping, ctx = run.mapping, run.ctx
    spec = _spec_for(section, mapping)
    out: dict[str, Any] = {}
    title = section.find(_V3 + "title")
    title_text = " ".join("".join(title.itertext()).split()) if title is not None else ""
    out["title"] = title_text or (spec.title if spec else "Section")
    code_el = section.find(_V3 + "code")
    code = codeable(code_el, ctx) if code_el is not None else None
    section_code = code_el.get("code") if code_el is not None else None
    if spec is not None and spec.ips_code and spec.ips_code != section_code:
        code = code or {}
        code.setdefault("coding", []).append({"system": LOINC, "code": spec.ips_code})
    if code:
        out["code"] = code
    if spec is None:
        ctx.info(
            f"section {section_code or '(no code)'} is not an IPS section: kept with its "
            "narrative, its entries mapped generically",
            section,
            code="informational",
        )
    text_el = section.find(_V3 + "text")
    if text_el is not None:
        n = run.narratives.get(text_el)
        if n:
            out["text"] = n
    entries: list[str] = []
    for entry in section.iterchildren(_V3 + "entry"):
        for stmt in entry:
            if not isinstance(stmt.tag, str) or local(stmt) not in CLINICAL:
                continue
            template = _template_for(stmt, spec, mapping)
            where = locate(stmt)
            if template is None:
                ctx.warn(
                    f"entry {local(stmt)} has no mapping: not converted", stmt, code="not-supported"
                )
                trace.append(EntryTrace(section_code, where, None, ()))
                continue
            run.listing = []
            run.entry = stmt
            refs = run.build(template, stmt)
            listed = run.listing
            run.listing = None
            run.account(stmt)
            if not refs:
                ctx.warn(
                    f"entry {local(stmt)} matched template {template.name!r} but holds nothing "
                    "it maps: not converted",
                    stmt,
                    code="not-supported",
                )
            trace.append(EntryTrace(section_code, where, template.name, tuple(refs)))
            allowed = spec.entry_types if spec is not None else frozenset()
            for ref in listed:
                if ref not in entries and (not allowed or ref.partition("/")[0] in allowed):
                    entries.append(ref)
    if entries:
        out["entry"] = [{"reference": r} for r in entries]
    subs = [_section(run, s, trace) for s in _subsections(section)]
    if subs:
        out["section"] = subs
    if not entries and not subs:
        flavor = section.get("nullFlavor")
        reason = mapping.tables["empty-reasons"].get(flavor or "", None) if flavor else None
        if reason is None and spec is not None and spec.required:
            reason = "unavailable"
        if reason:
            out["emptyReason"] = {"coding": [{"system": _EMPTY, "code": reason}]}
        if "text" not in out:
            out["text"] = {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">No information</div>',
            }
    return out


def _subsections(section: etree._Element) -> list[etree._Element]:
    return [
        s for c in section.iterchildren(_V3 + "component") for s in c.iterchildren(_V3 + "section")
    ]


def map_body(run: Run, body: etree._Element, trace: list[EntryTrace]) -> list[dict[str, Any]]:
    """``structuredBody`` → the Composition's sections, in document order."""
    run.narratives = narratives(run.doc)
    return [_section(run, s, trace) for s in _subsections(body)]
