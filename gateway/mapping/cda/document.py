"""One CDA document → a FHIR document Bundle (FHIR R4 section 3.3 Documents;
IPS IG Bundle-uv-ips, Composition-uv-ips; CDA R2 header, section 4.2).

The flow: schema check (``formats/cda/schema.py``); the header (the patient,
the encounter, the Composition's header elements, each by its template in
``document.yaml``); the body (``sections.py``) or, for a Level 1 document,
a DocumentReference and the Binary it carries; the header's leftovers
accounted; IPS required sections added empty when missing; a Provenance
naming the source document; ``meta.source`` on every resource; the Bundle,
Composition first, references written as the entries' ``urn:uuid:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from lxml import etree

from ... import __version__
from ...errors import Issues
from ...fhir.ids import stable_id
from ...formats.cda import V3, CdaDocument, validate
from .context import DocContext
from .datatypes import ii_key, t_identifier
from .engine import EntryTrace, Run
from .sections import LOINC, empty_section, map_body
from .spec import CdaMappingSet, DocumentType
from .temporal import document_zone, fhir_datetime
from .terminology import TerminologyHook, ehdsi_checks
from .xpaths import compile_source

__all__ = ["map_document", "DocumentResult"]

_V3 = f"{{{V3}}}"
_PROV_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


@dataclass(slots=True)
class DocumentResult:
    resources: list[dict[str, Any]]
    document: dict[str, Any]
    issues: Issues
    fidelity: list[EntryTrace]
    source: dict[str, str] = field(default_factory=dict)


def _header_nodes(doc: CdaDocument, path: str) -> list[etree._Element]:
    root = doc.root
    return compile_source(path).select(root, root, root)


def _build_header(run: Run, mapping: CdaMappingSet, part: str) -> list[str]:
    spec = mapping.header.get(part)
    if not spec:
        return []
    template = mapping.templates[str(spec["template"])]
    nodes = _header_nodes(run.ctx.doc, str(spec.get("from", ".")))
    refs: list[str] = []
    for node in nodes:
        refs.extend(run.build(template, node, apply_focus=False))
    return refs


def _level1(run: Run, mapping: CdaMappingSet, doc: CdaDocument) -> list[dict[str, Any]]:
    body = doc.root.find(f"{_V3}component/{_V3}nonXMLBody")
    if body is None:
        return []
    run.listing = []
    run.entry = body
    doc_refs = _build_header(run, mapping, "level1-document")
    bin_refs = _build_header(run, mapping, "level1-binary")
    run.listing = None
    run.account(body)
    if doc_refs and bin_refs:
        docref = run.resources[doc_refs[0]]
        binary = run.resources[bin_refs[0]]
        attachment = docref.setdefault("content", [{}])[0].setdefault("attachment", {})
        attachment["url"] = bin_refs[0]
        if binary.get("contentType"):
            attachment.setdefault("contentType", binary["contentType"])
    title = " ".join("".join(doc.root.findtext(_V3 + "title") or "").split()) or "Document"
    section: dict[str, Any] = {
        "title": title,
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">The document body is an '
            f"attachment ({_media(run, bin_refs)}): see the DocumentReference.</div>",
        },
        "entry": [{"reference": r} for r in doc_refs],
    }
    code = doc.root.find(_V3 + "code")
    if code is not None and code.get("code"):
        section["code"] = {"coding": [{"system": LOINC, "code": code.get("code")}]}
    return [section]


def _media(run: Run, refs: list[str]) -> str:
    if refs:
        return str(run.resources[refs[0]].get("contentType") or "unknown type")
    return "unknown type"


def _composition_extras(run: Run, comp: dict[str, Any], dtype: DocumentType | None) -> None:
    ctx = run.ctx
    if dtype is not None and dtype.ips:
        codings = comp.setdefault("type", {}).setdefault("coding", [])
        if not any(c.get("system") == LOINC and c.get("code") == "60591-5" for c in codings):
            codings.append(
                {"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}
            )
    if not comp.get("author"):
        ctx.warn(
            "the document names no author: Composition.author says 'unknown'",
            ctx.doc.root,
            code="required",
        )
        comp["author"] = [{"display": "unknown"}]
    if "date" not in comp:
        ctx.warn(
            "the document has no effectiveTime with a time zone: Composition.date is the "
            "conversion time",
            ctx.doc.root.find(_V3 + "effectiveTime"),
            code="required",
        )


def _required_sections(run: Run, mapping: CdaMappingSet, sections: list[dict[str, Any]]) -> None:
    have = {c.get("code") for s in sections for c in (s.get("code") or {}).get("coding", [])}
    for spec in mapping.sections.values():
        if spec.required and not (set(spec.codes) | {spec.ips_code}) & have:
            sections.append(
                empty_section(
                    spec, "unavailable", "No information: the source document has no such section."
                )
            )
            run.ctx.info(
                f"IPS section {spec.title} ({spec.ips_code}) is not in the document: "
                "added empty (emptyReason unavailable)",
                run.ctx.doc.root,
                code="incomplete",
            )


def _provenance(
    run: Run,
    mapping: CdaMappingSet,
    doc: CdaDocument,
    doc_key: str,
    digest: str,
    now: str,
    comp_ref: str | None,
) -> dict[str, Any]:
    ctx = run.ctx
    device_id = stable_id("Device", "gateway-mapping", mapping.version)
    device = {
        "resourceType": "Device",
        "id": device_id,
        "deviceName": [{"name": "gateway CDA to FHIR mapping", "type": "model-name"}],
        "version": [
            {"value": mapping.version},
            {"type": {"text": "software"}, "value": __version__},
        ],
    }
    run.resources[f"Device/{device_id}"] = device
    doc_id = doc.root.find(_V3 + "id")
    ident = t_identifier(doc_id, ctx, {}) if doc_id is not None else None
    title = " ".join((doc.root.findtext(_V3 + "title") or "").split())
    entity = {
        "role": "source",
        "what": {"display": f"CDA document {title!r} (sha256 {digest[:16]}…)"},
    }
    if ident:
        entity["what"]["identifier"] = ident
    eff = doc.root.find(_V3 + "effectiveTime")
    occurred = (
        fhir_datetime(eff.get("value") or "", ctx, eff)
        if eff is not None and eff.get("value")
        else None
    )
    agents: list[dict[str, Any]] = []
    comp = run.resources.get(comp_ref or "")
    for a in (comp or {}).get("author", [])[:1]:
        if a.get("reference"):
            agents.append(
                {
                    "type": {
                        "coding": [{"system": _PROV_TYPE, "code": "author", "display": "Author"}]
                    },
                    "who": {"reference": a["reference"]},
                }
            )
    custodian = (comp or {}).get("custodian")
    if custodian:
        agents.append(
            {
                "type": {
                    "coding": [{"system": _PROV_TYPE, "code": "custodian", "display": "Custodian"}]
                },
                "who": custodian,
            }
        )
    agents.append(
        {
            "type": {
                "coding": [{"system": _PROV_TYPE, "code": "assembler", "display": "Assembler"}]
            },
            "who": {
                "reference": f"Device/{device_id}",
                "display": f"gateway {__version__}, mappings {mapping.version}",
            },
        }
    )
    prov: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": stable_id("Provenance", doc_key, digest),
    }
    targets = [{"reference": r} for r in run.resources if not r.startswith("Provenance/")]
    prov["target"] = targets
    if occurred:
        prov["occurredDateTime"] = occurred
    recorded = occurred if occurred and "T" in occurred else now
    prov["recorded"] = recorded
    prov["activity"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                "code": "CREATE",
                "display": "create",
            }
        ],
        "text": "converted from CDA",
    }
    prov["agent"] = agents
    prov["entity"] = [entity]
    return prov


_REF = re.compile(rb'"(reference|url)":"([A-Za-z]+)/([0-9a-f-]{36})"')


def _urn_entries(resources: list[dict[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    """Bundle entries: copies of the resources in which ``Type/id``
    references (and attachment URLs) to Bundle resources are written as
    ``urn:uuid:id``, the entries' fullUrl (FHIR R4 section 2.36.4.1).
    Done on the JSON text: one serialisation, one pass, one parse."""

    def swap(m: re.Match[bytes]) -> bytes:
        ref = f"{m.group(2).decode()}/{m.group(3).decode()}"
        if ref in ids:
            return b'"' + m.group(1) + b'":"urn:uuid:' + m.group(3) + b'"'
        return m.group(0)

    copied = orjson.loads(_REF.sub(swap, orjson.dumps(resources)))
    return [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in copied]


def map_document(
    doc: CdaDocument,
    mapping: CdaMappingSet,
    *,
    digest: str,
    now: str,
    terminology: TerminologyHook | None = None,
    schema: bool = True,
) -> DocumentResult:
    """Convert a read CDA document with ``mapping`` (see the module text)."""
    issues = doc.issues
    family = doc.family
    if schema:
        checked = validate(doc)
        family = checked.family
        issues.extend(checked.issues)
    ctx = DocContext(doc, mapping, issues, terminology)
    eff = doc.root.find(_V3 + "effectiveTime")
    ctx.default_tz = document_zone(eff.get("value") if eff is not None else None)
    doc_id = doc.root.find(_V3 + "id")
    doc_key = (ii_key(doc_id) if doc_id is not None else None) or digest
    dtype = mapping.document_types.get(doc.code or "")
    if dtype is None:
        ctx.info(
            f"document code {doc.code!r} is not a known document type: converted as a "
            "generic CDA document",
            doc.root.find(_V3 + "code"),
            code="informational",
        )
    elif dtype.ehdsi:
        kind = dtype.ehdsi + ("-l1" if doc.level == 1 else "")
        issues.extend(ehdsi_checks(doc.tree, kind))
    run = Run(ctx, mapping, doc_key)
    patients = _build_header(run, mapping, "patient")
    if not patients:
        ctx.warn(
            "the document has no recordTarget/patientRole: nothing is tied to a patient",
            doc.root,
            code="required",
        )
    else:
        run.doc_refs["@patient"] = patients[0]
        if len(patients) > 1:
            ctx.warn(
                f"{len(patients)} record targets: the first is the Composition's subject",
                doc.root,
                code="structure",
            )
    _build_header(run, mapping, "authorization")
    encounters = _build_header(run, mapping, "encounter")
    if encounters:
        run.doc_refs["@encounter"] = encounters[0]
    comp_refs = _build_header(run, mapping, "composition")
    comp_ref = comp_refs[0] if comp_refs else None
    if comp_ref:
        run.doc_refs["@composition"] = comp_ref
    trace: list[EntryTrace] = []
    if doc.level == 1:
        sections = _level1(run, mapping, doc)
    else:
        body = doc.root.find(f"{_V3}component/{_V3}structuredBody")
        sections = map_body(run, body, trace) if body is not None else []
    run.entry = doc.root
    _account_header(run, doc)
    comp = run.resources[comp_ref] if comp_ref else {}
    if dtype is not None and dtype.ips and doc.level == 3:
        _required_sections(run, mapping, sections)
    if sections:
        comp["section"] = sections
    if comp_ref:
        _composition_extras(run, comp, dtype)
        comp.setdefault("date", now)
    prov = _provenance(run, mapping, doc, doc_key, digest, now, comp_ref)
    run.resources[f"Provenance/{prov['id']}"] = prov
    source = _meta_source(doc_id)
    ordered = ([comp_ref] if comp_ref else []) + [r for r in run.resources if r != comp_ref]
    resources: list[dict[str, Any]] = []
    ips = dtype is not None and dtype.ips
    for ref in ordered:
        res = run.resources[ref]
        meta = {**res.pop("meta", {}), "source": source}
        if not ips:  # IPS profiles are claimed in IPS documents only
            meta.pop("profile", None)
        rtype, rid = res.pop("resourceType"), res.pop("id")
        resources.append({"resourceType": rtype, "id": rid, "meta": meta, **res})
    ids = set(ordered)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": stable_id("Bundle", doc_key, digest)}
    if dtype is not None and dtype.ips and mapping.bundle_profile:
        bundle["meta"] = {"profile": [mapping.bundle_profile]}
    ident = t_identifier(doc_id, ctx, {}) if doc_id is not None else None
    bundle["identifier"] = ident or {"system": "urn:ietf:rfc:3986", "value": f"urn:sha256:{digest}"}
    bundle["type"] = "document"
    bundle["timestamp"] = now
    bundle["entry"] = _urn_entries(resources, ids)
    info = {
        "type": dtype.kind if dtype else (doc.code or "unknown"),
        "family": family,
        "level": str(doc.level),
        "mapping": mapping.version,
        "document_id": doc_key,
    }
    return DocumentResult(resources, bundle, issues, trace, info)


def _account_header(run: Run, doc: CdaDocument) -> None:
    """Header elements no header template read, reported like entries' ones."""
    comp = doc.root.find(_V3 + "component")
    if comp is not None:
        run.deep.add(comp)
    run._log = list(run.deep) + list(run.shallow)  # the header was read over the whole run
    run.account(doc.root)


def _meta_source(doc_id: etree._Element | None) -> str:
    if doc_id is None:
        return "urn:hl7-cda:unknown"
    root = quote(doc_id.get("root") or "unknown", safe="")
    ext = doc_id.get("extension")
    return f"urn:hl7-cda:{root}" + (f"#{quote(ext, safe='')}" if ext else "")
