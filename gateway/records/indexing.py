"""Search parameter values of a resource, for the ``search_index`` table.

FHIR R4 search (section 3.1.1.4) on the parameters the citizen API serves:
Patient ``identifier``, ``family``, ``given``, ``name``, ``birthdate``,
``gender`` (as IHE PDQm ITI-78 asks), and on clinical resources
``patient``/``subject``, ``encounter``, ``code``, ``category``, ``date``,
``status``, ``identifier``; Provenance ``target``; AuditEvent ``patient``,
``date``. Values are extracted here, in one place, from element paths per
resource type; the rest of the store knows nothing of FHIR element names.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["index_rows", "fold", "date_range", "clip", "WIDTHS", "INDEX_COLUMNS", "PATIENT_REFS",
           "SEARCH_PARAMS"]

# Where each resource type points at its patient (the Patient compartment).
PATIENT_REFS: dict[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("patient",),
    "Condition": ("subject",),
    "Observation": ("subject",),
    "DiagnosticReport": ("subject",),
    "Encounter": ("subject",),
    "Immunization": ("patient",),
    "MedicationRequest": ("subject",),
    "MedicationStatement": ("subject",),
    "MedicationDispense": ("subject",),
    "MedicationAdministration": ("subject",),
    "Procedure": ("subject",),
    "DocumentReference": ("subject",),
    "Composition": ("subject",),
    "RelatedPerson": ("patient",),
    "Coverage": ("beneficiary",),
    "Specimen": ("subject",),
    "DeviceUseStatement": ("subject",),
    "CarePlan": ("subject",),
    "ClinicalImpression": ("subject",),
    "FamilyMemberHistory": ("patient",),
    "Flag": ("subject",),
    "Consent": ("patient",),
    "ServiceRequest": ("subject",),
    "Goal": ("subject",),
    "Bundle": (),
}

_CODE = {
    "Immunization": ("vaccineCode",),
    "MedicationRequest": ("medicationCodeableConcept",),
    "MedicationStatement": ("medicationCodeableConcept",),
    "MedicationDispense": ("medicationCodeableConcept",),
    "Medication": ("code",),
    "DocumentReference": ("type",),
    "Composition": ("type",),
}
_DATE = {
    "Observation": ("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod"),
    "Condition": ("onsetDateTime", "onsetPeriod", "recordedDate"),
    "AllergyIntolerance": ("recordedDate", "onsetDateTime"),
    "Immunization": ("occurrenceDateTime",),
    "Procedure": ("performedDateTime", "performedPeriod"),
    "Encounter": ("period",),
    "MedicationRequest": ("authoredOn",),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod"),
    "MedicationDispense": ("whenHandedOver",),
    "DocumentReference": ("date",),
    "Composition": ("date",),
    "AuditEvent": ("recorded",),
    "Provenance": ("recorded",),
    "Coverage": ("period",),
}
_STATUS = ("status", "clinicalStatus", "verificationStatus")

SEARCH_PARAMS: dict[str, set[str]] = {
    "Patient": {"identifier", "family", "given", "name", "birthdate", "gender", "_id", "link"},
    "Provenance": {"target", "patient", "date"},
    "AuditEvent": {"patient", "date", "agent", "type"},
}
_CLINICAL = {"patient", "subject", "encounter", "code", "category", "date", "status", "identifier", "_id"}


def supported_params(rtype: str) -> set[str]:
    return SEARCH_PARAMS.get(rtype, _CLINICAL) | {"_id", "_lastUpdated"}


def fold(text: str) -> str:
    """Lower-case, accents removed: how string search compares (FHIR string
    search is case- and accent-insensitive)."""
    norm = unicodedata.normalize("NFKD", text)
    return "".join(c for c in norm if not unicodedata.combining(c)).casefold().strip()[:256]


@lru_cache(maxsize=8192)  # the same instants recur (every OBX of a message, every message of a run)
def date_range(value: str) -> tuple[str, str] | None:
    """A FHIR date/dateTime/instant as the inclusive UTC range it covers,
    both ends as ``YYYY-MM-DDTHH:MM:SS``."""
    v = value.strip()
    try:
        if len(v) == 4:
            return f"{v}-01-01T00:00:00", f"{v}-12-31T23:59:59"
        if len(v) == 7:
            y, m = int(v[:4]), int(v[5:7])
            nxt = datetime(y + (m == 12), m % 12 + 1, 1) - timedelta(seconds=1)
            return f"{v}-01T00:00:00", nxt.strftime("%Y-%m-%dT%H:%M:%S")
        if len(v) == 10:
            datetime.strptime(v, "%Y-%m-%d")
            return f"{v}T00:00:00", f"{v}T23:59:59"
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        s = dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return s, s
    except (ValueError, OverflowError):
        return None


def _codings(cc: Any) -> Iterator[tuple[str | None, str]]:
    if isinstance(cc, dict):
        for c in cc.get("coding", []) or []:
            if isinstance(c, dict) and c.get("code"):
                yield c.get("system"), str(c["code"])


WIDTHS = {"system": 256, "code": 256, "text": 256, "ref": 160}
# The order of the values in a row from index_rows (after resource_type, id).
INDEX_COLUMNS = ("param", "system", "code", "text", "ref", "low", "high")


def clip(value: Any, width: int) -> str | None:
    """A value as the index column of that width holds it."""
    if value is None:
        return None
    text = value if type(value) is str else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text if len(text) <= width else text[:width]


Row = tuple[str, str | None, str | None, str | None, str | None, str | None, str | None]


def _row(param: str, system: Any = None, code: Any = None, text: Any = None, ref: Any = None,
         low: str | None = None, high: str | None = None) -> Row:
    return (param, clip(system, 256), clip(code, 256), clip(text, 256), clip(ref, 160), low, high)


def _dates(param: str, value: Any) -> Iterator[Row]:
    if isinstance(value, str):
        r = date_range(value)
        if r:
            yield _row(param, low=r[0], high=r[1])
    elif isinstance(value, dict):  # Period
        lo_r = date_range(value["start"]) if value.get("start") else None
        lo = lo_r[0] if lo_r else "0000"
        hi_r = date_range(value["end"]) if value.get("end") else None
        hi = hi_r[1] if hi_r else "9999"
        if value.get("start") or value.get("end"):
            yield _row(param, low=lo, high=hi)


def patient_of(res: dict[str, Any]) -> list[str]:
    """The Patient references ("Patient/id") a resource belongs to."""
    rtype = res.get("resourceType", "")
    if rtype == "Patient":
        return [f"Patient/{res['id']}"]
    out = []
    for field in PATIENT_REFS.get(rtype, ("subject", "patient")):
        ref = (res.get(field) or {}).get("reference") if isinstance(res.get(field), dict) else None
        if isinstance(ref, str) and ref.startswith("Patient/"):
            out.append(ref)
    if rtype == "AuditEvent":
        for ent in res.get("entity", []) or []:
            ref = (ent.get("what") or {}).get("reference", "")
            if ref.startswith("Patient/"):
                out.append(ref)
    if rtype == "Provenance":
        for t in res.get("target", []) or []:
            ref = t.get("reference", "")
            if ref.startswith("Patient/"):
                out.append(ref)
    return out


def index_rows(res: dict[str, Any]) -> list[Row]:
    """Every search row of ``res`` (without resource_type/id), values in the
    order of :data:`INDEX_COLUMNS`."""
    rtype = res.get("resourceType", "")
    rows: list[Row] = []
    for ident in res.get("identifier", []) or ([] if rtype != "DocumentReference" else []):
        if isinstance(ident, dict) and ident.get("value"):
            rows.append(_row("identifier", system=ident.get("system"), code=str(ident["value"])[:256]))
    if rtype == "DocumentReference" and isinstance(res.get("masterIdentifier"), dict):
        mi = res["masterIdentifier"]
        if mi.get("value"):
            rows.append(_row("identifier", system=mi.get("system"), code=str(mi["value"])[:256]))
    for patient_ref in patient_of(res):
        rows.append(_row("patient", ref=patient_ref))
    if rtype == "Patient":
        for name in res.get("name", []) or []:
            if not isinstance(name, dict):
                continue
            if name.get("family"):
                rows.append(_row("family", text=fold(name["family"])))
            for g in name.get("given", []) or []:
                rows.append(_row("given", text=fold(g)))
            # name: any part of the name (FHIR: a match on family, given,
            # prefix, suffix or text), or given names and family together
            given = [g for g in name.get("given", []) or [] if isinstance(g, str)]
            whole = " ".join([*given, name.get("family") or ""])
            seen: set[str] = set()
            for part in [*(name.get("prefix") or []), *given, name.get("family"),
                         *(name.get("suffix") or []), whole, name.get("text")]:
                if isinstance(part, str) and (folded := fold(part)) and folded not in seen:
                    seen.add(folded)
                    rows.append(_row("name", text=folded))
        if res.get("gender"):
            rows.append(_row("gender", code=res["gender"]))
        if res.get("birthDate"):
            rows.extend(_dates("birthdate", res["birthDate"]))
        for link in res.get("link", []) or []:
            ref = (link.get("other") or {}).get("reference")
            if ref:
                rows.append(_row("link", ref=ref))
        return rows
    for field in ("subject", "patient", "encounter"):
        ref = res.get(field, {}).get("reference") if isinstance(res.get(field), dict) else None
        if isinstance(ref, str):
            rows.append(_row("subject" if field != "encounter" else "encounter", ref=ref))
    for field in _CODE.get(rtype, ("code",)):
        for system, code in _codings(res.get(field)):
            rows.append(_row("code", system=system, code=code))
    for cat in res.get("category", []) if isinstance(res.get("category"), list) else [res.get("category")]:
        if isinstance(cat, dict):
            for system, code in _codings(cat):
                rows.append(_row("category", system=system, code=code))
        elif isinstance(cat, str):
            rows.append(_row("category", code=cat))
    for field in _STATUS:
        value = res.get(field)
        if isinstance(value, str):
            rows.append(_row("status", code=value))
        else:
            for system, code in _codings(value):
                rows.append(_row("status", system=system, code=code))
    for field in _DATE.get(rtype, ()):
        if field in res:
            rows.extend(_dates("date", res[field]))
    if rtype == "Provenance":
        for t in res.get("target", []) or []:
            if t.get("reference"):
                rows.append(_row("target", ref=t["reference"]))
    if rtype == "AuditEvent":
        for agent in res.get("agent", []) or []:
            who = agent.get("who") or {}
            ident = who.get("identifier") or {}
            if ident.get("value"):
                rows.append(_row("agent", system=ident.get("system"), code=str(ident["value"])[:256]))
        for system, code in _codings({"coding": [res.get("type", {})]}):
            rows.append(_row("type", system=system, code=code))
    return rows
