"""The IPS ``$summary``: a fresh International Patient Summary document
assembled from a citizen's whole record, across sources and countries.

IPS 2.0.0, OperationDefinition ``summary`` and the Composition and Bundle
profiles. What this module does with the record:

- one item per clinical fact: resources of one type that share a coding
  (translations included; for immunizations and procedures, also the same
  day) are one item, shown once, with a Provenance naming every source;
- entered-in-error and refuted items are left out and listed in the outcome;
- active problems go to the problem list, resolved and inactive ones to the
  history of past illness;
- results and vital signs keep the latest value per code; earlier values
  are listed in the section narrative as the trend;
- every required section is present, with ``emptyReason`` when empty; each
  section's narrative is generated from its entries;
- every reference in the document resolves inside it;
- data the citizen entered themselves (``meta.tag`` patient-reported) is kept
  apart: it is not placed in the clinical sections and the outcome says so;
- ``allowed_sections`` (a clinician's share) leaves out the sections not
  shared; a required one is present, empty, with ``emptyReason`` withheld;
- ``translate`` (system, code) -> display in the requested language gives
  section titles and coded displays in that language where the terminology
  has them; ``CodeableConcept.text`` (the original text) is kept.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import Issue
from ..fhir.ids import stable_id

__all__ = ["assemble_summary", "SECTIONS", "SummaryResult", "PATIENT_REPORTED"]

LOINC = "http://loinc.org"
IPS = "http://hl7.org/fhir/uv/ips/StructureDefinition/"
# meta.tag on what a citizen entered themselves (see gateway.api.citizen)
PATIENT_REPORTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                    "code": "PATRPT", "display": "patient reported"}


def _patient_reported(res: dict[str, Any]) -> bool:
    return any(t.get("code") == PATIENT_REPORTED["code"] and t.get("system") == PATIENT_REPORTED["system"]
               for t in (res.get("meta") or {}).get("tag", []) or [])


def _translate_codings(node: Any, translate: Callable[[str, str], str | None]) -> Any:
    """A copy of ``node`` whose codings show the translated display."""
    if isinstance(node, dict):
        out = {k: _translate_codings(v, translate) for k, v in node.items()}
        if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
            shown = translate(node["system"], node["code"])
            if shown:
                out["display"] = shown
        return out
    if isinstance(node, list):
        return [_translate_codings(v, translate) for v in node]
    return node


@dataclass(frozen=True, slots=True)
class Section:
    slice: str
    code: str
    title: str
    required: bool


SECTIONS: dict[str, Section] = {s.slice: s for s in (
    Section("sectionProblems", "11450-4", "Problem list", True),
    Section("sectionAllergies", "48765-2", "Allergies and intolerances", True),
    Section("sectionMedications", "10160-0", "Medication summary", True),
    Section("sectionImmunizations", "11369-6", "Immunizations", False),
    Section("sectionResults", "30954-2", "Results", False),
    Section("sectionProceduresHx", "47519-4", "History of procedures", False),
    Section("sectionMedicalDevices", "46264-8", "Medical devices", False),
    Section("sectionVitalSigns", "8716-3", "Vital signs", False),
    Section("sectionPastProblems", "11348-0", "History of past illness", False),
    Section("sectionFunctionalStatus", "47420-5", "Functional status", False),
    Section("sectionPlanOfCare", "18776-5", "Plan of care", False),
    Section("sectionSocialHistory", "29762-2", "Social history", False),
    Section("sectionPregnancyHx", "10162-6", "History of pregnancies", False),
    Section("sectionAdvanceDirectives", "42348-3", "Advance directives", False),
    Section("sectionAlerts", "104605-1", "Alerts", False),
)}

_CODE_ELEMENT = {
    "AllergyIntolerance": "code", "Condition": "code", "Immunization": "vaccineCode",
    "Procedure": "code", "Observation": "code", "DiagnosticReport": "code",
    "MedicationStatement": "medicationCodeableConcept", "MedicationRequest": "medicationCodeableConcept",
    "DeviceUseStatement": "device", "Flag": "code", "CarePlan": "category",
}
_SAME_DAY = {"Immunization": "occurrenceDateTime", "Procedure": "performedDateTime"}


@dataclass(slots=True)
class SummaryResult:
    bundle: dict[str, Any]
    issues: list[Issue] = field(default_factory=list)


def _codings(res: dict[str, Any], medication: Callable[[str], dict[str, Any] | None]) -> set[tuple[str, str]]:
    rtype = res["resourceType"]
    element = _CODE_ELEMENT.get(rtype, "code")
    cc = res.get(element)
    if rtype.startswith("Medication") and not cc and isinstance(res.get("medicationReference"), dict):
        med = medication(res["medicationReference"].get("reference", ""))
        cc = med.get("code") if med else None
    if isinstance(cc, list):
        cc = cc[0] if cc else None
    out = set()
    if isinstance(cc, dict):
        for c in cc.get("coding", []) or []:
            if c.get("code"):
                out.add((c.get("system", ""), str(c["code"])))
        if not out and cc.get("text"):
            out.add(("text", cc["text"].strip().lower()))
    return out


def _status_codes(res: dict[str, Any]) -> set[str]:
    out = set()
    for key in ("status", "clinicalStatus", "verificationStatus"):
        v = res.get(key)
        if isinstance(v, str):
            out.add(v)
        elif isinstance(v, dict):
            out.update(c.get("code", "") for c in v.get("coding", []) or [])
    return out


def _when(res: dict[str, Any]) -> str:
    for key in ("effectiveDateTime", "occurrenceDateTime", "performedDateTime", "onsetDateTime",
                "recordedDate", "authoredOn", "issued", "date"):
        if isinstance(res.get(key), str):
            return res[key]
    for key in ("effectivePeriod", "performedPeriod", "period"):
        if isinstance(res.get(key), dict) and res[key].get("start"):
            return res[key]["start"]
    return (res.get("meta") or {}).get("lastUpdated", "")


def _section_of(res: dict[str, Any]) -> str | None:
    rtype = res["resourceType"]
    status = _status_codes(res)
    if rtype == "AllergyIntolerance":
        return "sectionAllergies"
    if rtype == "Condition":
        return "sectionPastProblems" if status & {"resolved", "inactive", "remission"} else "sectionProblems"
    if rtype in ("MedicationStatement", "MedicationRequest"):
        return "sectionMedications"
    if rtype == "Immunization":
        return "sectionImmunizations"
    if rtype == "Procedure":
        return "sectionProceduresHx"
    if rtype == "DeviceUseStatement":
        return "sectionMedicalDevices"
    if rtype == "Flag":
        return "sectionAlerts"
    if rtype == "CarePlan":
        return "sectionPlanOfCare"
    if rtype == "DiagnosticReport":
        return "sectionResults"
    if rtype == "Observation":
        cats = {c.get("code") for cat in res.get("category", []) or [] for c in cat.get("coding", []) or []}
        if "vital-signs" in cats:
            return "sectionVitalSigns"
        if "social-history" in cats:
            return "sectionSocialHistory"
        if res.get("partOf"):
            return None  # observations about an immunization or procedure stay with it
        return "sectionResults"
    return None


def _excluded(res: dict[str, Any]) -> str | None:
    status = _status_codes(res)
    if "entered-in-error" in status:
        return "entered in error"
    if "refuted" in status:
        return "refuted"
    if res.get("resourceType") == "Patient":
        return None
    return None


class _Groups:
    """Union-find over items that share a coding."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        while self.parent.setdefault(i, i) != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _display(res: dict[str, Any], medication: Callable[[str], dict[str, Any] | None]) -> str:
    rtype = res["resourceType"]
    cc = res.get(_CODE_ELEMENT.get(rtype, "code"))
    if rtype.startswith("Medication") and not cc and isinstance(res.get("medicationReference"), dict):
        med = medication(res["medicationReference"].get("reference", ""))
        cc = (med or {}).get("code")
    if isinstance(cc, dict):
        if cc.get("text"):
            return str(cc["text"])
        for c in cc.get("coding", []) or []:
            if c.get("display"):
                return str(c["display"])
            if c.get("code"):
                return str(c["code"])
    return rtype


def _value(res: dict[str, Any]) -> str:
    for key, v in res.items():
        if key.startswith("value") and key != "value":
            if isinstance(v, dict) and "value" in v:
                return f"{v['value']} {v.get('unit', v.get('code', ''))}".strip()
            if isinstance(v, dict):
                return str(v.get("text") or next((c.get("display") or c.get("code") for c in v.get("coding", [])), ""))
            return str(v)
    return ""


def _narrative(section: Section, rows: list[list[str]], header: list[str]) -> dict[str, Any]:
    if not rows:
        body = f"<p>No information available for {html.escape(section.title.lower())}.</p>"
    else:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        lines = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        body = f"<table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>"
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def _collect_refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.count("/") == 1 and not ref.startswith(("#", "urn:")):
            out.add(ref)
        for v in node.values():
            _collect_refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _collect_refs(v, out)


def _rewrite_patient(node: Any, linked: set[str], main: str) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "reference" and isinstance(v, str) and v in linked:
                out[k] = main
            else:
                out[k] = _rewrite_patient(v, linked, main)
        return out
    if isinstance(node, list):
        return [_rewrite_patient(v, linked, main) for v in node]
    return node


def assemble_summary(patient: dict[str, Any], record: list[dict[str, Any]],
                     fetch: Callable[[list[str]], list[dict[str, Any]]],
                     linked_ids: set[str], base_url: str,
                     now: datetime | None = None, *, allowed_sections: set[str] | None = None,
                     translate: Callable[[str, str], str | None] | None = None) -> SummaryResult:
    """Build the IPS document for ``patient`` from ``record`` (every resource
    of the patient's compartment, linked Patients included). ``fetch`` reads
    referenced resources (``Type/id`` strings) that the document must carry.
    ``allowed_sections`` (section slices) confines it to a share; ``translate``
    gives displays in the reader's language."""
    issues: list[Issue] = []
    main = f"Patient/{patient['id']}"
    linked = {f"Patient/{p}" for p in linked_ids}
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in record}
    cache: dict[str, dict[str, Any] | None] = {}

    def medication(ref: str) -> dict[str, Any] | None:
        if ref not in cache:
            found = by_ref.get(ref) or next(iter(fetch([ref])), None)
            cache[ref] = found
        return cache[ref]

    # -------- place every clinical resource in its section, or say why not
    placed: dict[str, list[dict[str, Any]]] = {s: [] for s in SECTIONS}
    for res in record:
        rtype = res["resourceType"]
        if rtype in ("Patient", "Provenance", "AuditEvent", "Encounter", "RelatedPerson", "Coverage",
                     "Specimen", "DocumentReference", "Composition", "MedicationDispense"):
            continue
        why = _excluded(res)
        section = _section_of(res)
        if _patient_reported(res):
            issues.append(Issue("information", "informational",
                                f"{rtype}/{res['id']} was reported by the patient: kept apart from the "
                                "clinical sections"))
            continue
        if allowed_sections is not None and section not in allowed_sections:
            continue  # not shared with this reader: not even named in the outcome
        if why:
            issues.append(Issue("information", "informational",
                                f"{rtype}/{res['id']} left out of the summary: {why}"))
            continue
        if section is None:
            issues.append(Issue("information", "informational",
                                f"{rtype}/{res['id']} has no IPS section: not in the summary"))
            continue
        placed[section].append(res)

    # -------- one item per fact: merge duplicates across sources
    provenances: list[dict[str, Any]] = []
    chosen: dict[str, list[dict[str, Any]]] = {}
    trends: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {}
    for slice_name, items in placed.items():
        groups = _Groups()
        keys: dict[tuple[Any, ...], int] = {}
        for i, res in enumerate(items):
            day = (res.get(_SAME_DAY.get(res["resourceType"], ""), "") or "")[:10]
            for coding in _codings(res, medication):
                k = (res["resourceType"], coding, day)
                if k in keys:
                    groups.union(i, keys[k])
                else:
                    keys[k] = i
        clusters: dict[int, list[dict[str, Any]]] = {}
        for i, res in enumerate(items):
            clusters.setdefault(groups.find(i), []).append(res)
        picked = []
        for members in clusters.values():
            members.sort(key=lambda r: (_when(r), (r.get("meta") or {}).get("lastUpdated", "")), reverse=True)
            keep = members[0]
            picked.append(keep)
            if len(members) > 1:
                if slice_name in ("sectionResults", "sectionVitalSigns"):
                    trends.setdefault(slice_name, {})[(keep["resourceType"], keep["id"])] = members[1:]
                    issues.append(Issue("information", "informational",
                                        f"{keep['resourceType']}/{keep['id']}: latest of {len(members)} "
                                        "values of the same code; the earlier ones are in the narrative"))
                else:
                    issues.append(Issue("information", "duplicate",
                                        f"{keep['resourceType']}/{keep['id']} stands for {len(members)} "
                                        "records of the same fact from "
                                        f"{len({(m.get('meta') or {}).get('source') for m in members})} source(s)"))
                provenances.append(_merge_provenance(keep, members))
        picked.sort(key=_when, reverse=True)
        chosen[slice_name] = picked

    # -------- the Composition
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    stamp_text = stamp.isoformat(timespec="seconds").replace("+00:00", "Z")
    sections_json = []
    for slice_name, section in SECTIONS.items():
        entries = chosen.get(slice_name, [])
        withheld = allowed_sections is not None and slice_name not in allowed_sections
        if not entries and not section.required:
            continue
        rows = []
        for res in entries:
            status = ", ".join(sorted(s for s in _status_codes(res) if s))
            row = [_display(res, medication), status, _when(res)[:10]]
            if slice_name in ("sectionResults", "sectionVitalSigns"):
                row.insert(1, _value(res))
                earlier = trends.get(slice_name, {}).get((res["resourceType"], res["id"]), [])
                row.append("; ".join(f"{_value(e)} ({_when(e)[:10]})" for e in earlier))
            rows.append(row)
        header = (["Item", "Value", "Status", "Date", "Earlier values"]
                  if slice_name in ("sectionResults", "sectionVitalSigns") else ["Item", "Status", "Date"])
        sec: dict[str, Any] = {
            "title": (translate(LOINC, section.code) if translate else None) or section.title,
            "code": {"coding": [{"system": LOINC, "code": section.code}]},
            "text": _narrative(section, rows, header),
        }
        if entries:
            sec["entry"] = [{"reference": f"{r['resourceType']}/{r['id']}"} for r in entries]
        elif withheld:
            sec["emptyReason"] = {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                "code": "withheld", "display": "Information Withheld"}]}
            sec["text"] = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                           "<p>Not shared with this reader.</p></div>"}
        else:
            sec["emptyReason"] = {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                "code": "unavailable", "display": "Unavailable"}]}
        sections_json.append(sec)

    author = {"resourceType": "Device", "id": stable_id("Device", "gateway-summary"),
              "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                       "<p>The gateway that assembled this summary</p></div>"},
              "deviceName": [{"name": "gateway $summary", "type": "user-friendly-name"}]}
    doc_id = str(uuid.uuid4())
    composition = {
        "resourceType": "Composition", "id": doc_id,
        "meta": {"profile": [IPS + "Composition-uv-ips"]},
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>International Patient Summary of '
                        f'{html.escape(_patient_name(patient))}, assembled {stamp_text}.</p></div>'},
        "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]},
        "subject": {"reference": main},
        "date": stamp_text,
        "author": [{"reference": f"Device/{author['id']}"}],
        "title": "International Patient Summary",
        "confidentiality": "N",
        "section": sections_json,
    }

    # -------- every resource the document references, inside it
    content: list[dict[str, Any]] = [patient]
    seen = {main}
    queue = [r for s in chosen.values() for r in s] + provenances
    for res in queue:
        ref = f"{res['resourceType']}/{res['id']}"
        if ref not in seen:
            seen.add(ref)
            content.append(res)
    for _ in range(3):  # referenced resources, and theirs
        wanted: set[str] = set()
        for res in content:
            _collect_refs(res, wanted)
        missing = sorted(r for r in wanted - seen - linked if not r.startswith("Patient/"))
        if not missing:
            break
        found = [by_ref[r] for r in missing if r in by_ref]
        found += fetch([r for r in missing if r not in by_ref])
        for res in found:
            ref = f"{res['resourceType']}/{res['id']}"
            if ref not in seen:
                seen.add(ref)
                content.append(res)
        if not found:
            break
    content = [_rewrite_patient(r, linked - {main}, main) for r in content]
    if translate is not None:
        content = [_translate_codings(r, translate) for r in content]
    for res in content:
        if "text" not in res and res["resourceType"] != "Patient":
            res["text"] = _entry_narrative(res, medication)
        elif "text" not in res:
            res["text"] = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>'
                           f'{html.escape(_patient_name(res))}, born {html.escape(res.get("birthDate", "?"))}'
                           "</p></div>"}
    # references that still point outside the document are dropped, and said
    present = {f"{r['resourceType']}/{r['id']}" for r in content} | {f"Device/{author['id']}"}
    content = [_drop_dangling(r, present, issues) for r in content]

    def full(ref: str) -> str:
        return f"{base_url}/{ref}"

    entries = [{"fullUrl": full(f"Composition/{doc_id}"), "resource": composition}]
    entries += [{"fullUrl": full(f"{r['resourceType']}/{r['id']}"), "resource": _strip_meta(r)} for r in content]
    entries.append({"fullUrl": full(f"Device/{author['id']}"), "resource": author})
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [IPS + "Bundle-uv-ips"]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{doc_id}"},
        "type": "document",
        "timestamp": stamp_text,
        "entry": entries,
    }
    return SummaryResult(bundle, issues)


def _entry_narrative(res: dict[str, Any], medication: Callable[[str], dict[str, Any] | None]) -> dict[str, Any]:
    rtype = res["resourceType"]
    parts = [rtype]
    if rtype in _CODE_ELEMENT or rtype.startswith("Medication"):
        parts.append(_display(res, medication))
    elif res.get("name"):
        name = res["name"]
        parts.append(str(name if isinstance(name, str) else _patient_name({"name": name})))
    value = _value(res)
    if value:
        parts.append(value)
    status = ", ".join(sorted(s for s in _status_codes(res) if s))
    if status:
        parts.append(status)
    when = _when(res)
    if when and rtype not in ("Practitioner", "Organization", "Location", "Device", "Medication"):
        parts.append(when[:10])
    text = " · ".join(p for p in parts if p)
    return {"status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{html.escape(text)}</p></div>'}


def _patient_name(patient: dict[str, Any]) -> str:
    for name in patient.get("name", []) or []:
        parts = [*name.get("given", []), name.get("family", "")]
        text = name.get("text") or " ".join(p for p in parts if p)
        if text:
            return str(text)
    return "the patient"


def _strip_meta(res: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (res.get("meta") or {}).items() if k in ("profile", "source", "tag", "security")}
    out = {k: v for k, v in res.items() if k != "meta"}
    if meta:
        out = {"resourceType": res["resourceType"], "id": res["id"], "meta": meta,
               **{k: v for k, v in out.items() if k not in ("resourceType", "id")}}
    return out


def _drop_dangling(node: Any, present: set[str], issues: list[Issue], top: bool = True) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if isinstance(v, dict) and isinstance(v.get("reference"), str) and v["reference"].count("/") == 1 \
                    and v["reference"] not in present:
                kept = {kk: vv for kk, vv in v.items() if kk != "reference"}
                if kept:
                    out[k] = kept  # the display (or identifier) stays
                continue
            out[k] = _drop_dangling(v, present, issues, False)
        return out
    if isinstance(node, list):
        kept_list = []
        for v in node:
            if isinstance(v, dict) and isinstance(v.get("reference"), str) and v["reference"].count("/") == 1 \
                    and v["reference"] not in present:
                rest = {kk: vv for kk, vv in v.items() if kk != "reference"}
                if rest:
                    kept_list.append(rest)
                continue
            kept_list.append(_drop_dangling(v, present, issues, False))
        return kept_list
    return node


def _merge_provenance(keep: dict[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
    ref = f"{keep['resourceType']}/{keep['id']}"
    entity = []
    for m in members:
        # the duplicates themselves are not in the document: named, not referenced
        mref = f"{m['resourceType']}/{m['id']}"
        source = (m.get("meta") or {}).get("source") or "an unnamed source"
        entity.append({"role": "source", "what": {
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:gateway:record:{mref}"},
            "display": f"{mref} as recorded by {source}"}})
    return {
        "resourceType": "Provenance",
        "id": stable_id("Provenance", "summary-merge", *sorted(e["what"]["display"] for e in entity)),
        "target": [{"reference": ref}],
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "UPDATE", "display": "revise"}],
                     "text": "the same fact recorded by several sources, shown once"},
        "agent": [{"who": {"display": "gateway $summary"}}],
        "entity": entity,
    }
