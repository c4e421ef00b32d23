"""De-identified research export, for citizens with an active research
Consent only (GDPR Art. 89 safeguards: pseudonymisation and data
minimisation; the approach follows the HL7 FHIR de-identification guidance
and ISO/TS 25237 pseudonymisation):

- only allow-listed resource types, and in them only allow-listed elements;
- direct identifiers removed (names, identifiers, telecom, addresses except
  a truncated postcode and the country, contacts, photos, narrative);
- each citizen gets a stable keyed pseudonym per project (HMAC-SHA256 of the
  project and the Patient id with a secret kept in the home:
  ``keys/research.key``), so two projects cannot link their data;
- every date of a citizen is shifted by one secret offset (derived from the
  same key, so it is kept across exports), within +-180 days;
- free text is dropped (``text``, ``note``, ``comment``, ``description``,
  ``valueString``, CodeableConcept ``text``, reference ``display``);
- the birth date is kept to the year;
- a manifest says what was done, without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ..fhir.jsonio import dumps, dumps_pretty
from ..records import Store
from .consent import consented_types, research_consents

__all__ = ["ALLOWED", "Deidentifier", "export_research"]

ALLOWED: dict[str, tuple[str, ...]] = {
    "Patient": ("gender", "birthDate", "address", "deceasedBoolean"),
    "Condition": ("clinicalStatus", "verificationStatus", "category", "severity", "code", "bodySite",
                  "subject", "onsetDateTime", "onsetPeriod", "abatementDateTime", "recordedDate"),
    "AllergyIntolerance": ("clinicalStatus", "verificationStatus", "type", "category", "criticality",
                           "code", "patient", "onsetDateTime", "recordedDate", "reaction"),
    "Observation": ("status", "category", "code", "subject", "effectiveDateTime", "effectivePeriod",
                    "issued", "valueQuantity", "valueCodeableConcept", "valueBoolean", "valueInteger",
                    "interpretation", "referenceRange", "component"),
    "MedicationStatement": ("status", "medicationCodeableConcept", "subject", "effectiveDateTime",
                            "effectivePeriod", "dateAsserted"),
    "MedicationRequest": ("status", "intent", "medicationCodeableConcept", "subject", "authoredOn"),
    "Immunization": ("status", "vaccineCode", "patient", "occurrenceDateTime", "primarySource"),
    "Procedure": ("status", "code", "subject", "performedDateTime", "performedPeriod", "bodySite"),
}
_FREE_TEXT = {"text", "note", "comment", "description", "valueString",
              "identifier", "extension", "modifierExtension", "meta", "contained"}
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?$")
MAX_SHIFT_DAYS = 180
POSTCODE_KEEP = 3


def _key(home: Path) -> bytes:
    path = home / "keys" / "research.key"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key


class Deidentifier:
    """Pseudonyms, date shifts and element filtering for one project."""

    def __init__(self, key: bytes, project: str) -> None:
        self.key = key
        self.project = project

    def _mac(self, *parts: str) -> str:
        return hmac.new(self.key, "|".join(parts).encode(), hashlib.sha256).hexdigest()

    def pseudonym(self, patient: str) -> str:
        return self._mac("pseudonym", self.project, patient)[:32]

    def resource_id(self, rtype: str, rid: str) -> str:
        return self._mac("resource", self.project, rtype, rid)[:32]

    def shift(self, patient: str) -> timedelta:
        """One secret offset per citizen (not per project), never zero."""
        days = int(self._mac("date-shift", patient)[:8], 16) % (2 * MAX_SHIFT_DAYS) - MAX_SHIFT_DAYS
        return timedelta(days=days or MAX_SHIFT_DAYS)

    def resource(self, res: dict[str, Any], patient: str) -> dict[str, Any] | None:
        rtype = res.get("resourceType", "")
        allowed = ALLOWED.get(rtype)
        if allowed is None:
            return None
        out: dict[str, Any] = {"resourceType": rtype}
        out["id"] = self.pseudonym(patient) if rtype == "Patient" else self.resource_id(rtype, res["id"])
        delta = self.shift(patient)
        for key in allowed:
            if key not in res:
                continue
            if rtype == "Patient" and key == "birthDate":
                out[key] = str(res[key])[:4]
            elif rtype == "Patient" and key == "address":
                kept = [{k: (v[:POSTCODE_KEEP] if k == "postalCode" else v) for k, v in a.items()
                         if k in ("postalCode", "country") and isinstance(v, str)}
                        for a in res[key] or [] if isinstance(a, dict)]
                kept = [a for a in kept if a]
                if kept:
                    out[key] = kept
            else:
                value = self._scrub(res[key], patient, delta)
                if value not in (None, {}, []):
                    out[key] = value
        return out

    def _scrub(self, node: Any, patient: str, delta: timedelta) -> Any:
        if isinstance(node, dict):
            if "reference" in node:
                ref = str(node.get("reference", ""))
                if ref.startswith("Patient/"):
                    return {"reference": f"Patient/{self.pseudonym(patient)}"}
                return None  # references outside the export are dropped
            out = {}
            for k, v in node.items():
                if k in _FREE_TEXT:
                    continue
                value = self._scrub(v, patient, delta)
                if value not in (None, {}, []):
                    out[k] = value
            return out
        if isinstance(node, list):
            return [x for x in (self._scrub(v, patient, delta) for v in node) if x not in (None, {}, [])]
        if isinstance(node, str):
            return _shift_date(node, delta)
        return node


def _shift_date(text: str, delta: timedelta) -> str:
    m = _DATE.match(text)
    if not m:
        return text
    if m.group(4):
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
        shifted = when + delta
        if when.tzinfo is not None:
            return shifted.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return shifted.isoformat(timespec="seconds")
    try:
        return (date.fromisoformat(text) + delta).isoformat()
    except ValueError:
        return text


def export_research(store: Store, home: Path, out_dir: Path, project: str,
                    purpose: str = "HRESCH") -> dict[str, Any]:
    """Write ``<Type>.ndjson`` and ``manifest.json`` to ``out_dir`` for the
    citizens whose active research Consent covers ``purpose``."""
    if not project or not re.match(r"^[A-Za-z0-9._-]{1,64}$", project):
        raise ValueError("project: 1-64 letters, digits, '.', '_' or '-'")
    tool = Deidentifier(_key(home), project)
    # one consent per citizen: the union of what their active consents give
    given: dict[str, set[str]] = {}
    for consent in research_consents(store):
        pid = str((consent.get("patient") or {}).get("reference", "")).split("/", 1)[-1]
        types = consented_types(consent, purpose)
        if pid and types:
            given.setdefault(pid, set()).update(types)
    by_type: dict[str, list[dict[str, Any]]] = {}
    dropped: dict[str, int] = {}
    citizens = 0
    for pid, types in sorted(given.items()):
        linked = store.linked_patients(pid)
        patient = store.read("Patient", pid)
        if patient is None:
            continue
        citizens += 1
        by_type.setdefault("Patient", []).append(tool.resource(patient, pid) or {})
        for res in store.compartment(linked):
            rtype = res["resourceType"]
            if rtype == "Patient":
                continue
            if rtype not in types or rtype not in ALLOWED:
                dropped[rtype] = dropped.get(rtype, 0) + 1
                continue
            if "PATRPT" in {t.get("code") for t in (res.get("meta") or {}).get("tag", []) or []}:
                dropped["patient-reported"] = dropped.get("patient-reported", 0) + 1
                continue
            clean = tool.resource(res, pid)
            if clean is not None:
                by_type.setdefault(rtype, []).append(clean)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.ndjson"):
        old.unlink()
    for rtype, items in sorted(by_type.items()):
        (out_dir / f"{rtype}.ndjson").write_bytes(b"".join(dumps(r) + b"\n" for r in items))
    manifest = {
        "project": project, "purpose": purpose,
        "made": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "citizens": citizens,
        "files": {f"{t}.ndjson": len(v) for t, v in sorted(by_type.items())},
        "left out": dict(sorted(dropped.items())),
        "rules": [
            "only citizens with an active research Consent for this purpose; only the categories they gave",
            f"resource types allowed: {', '.join(ALLOWED)}; in each, only listed elements",
            "names, identifiers, telecom, contacts, photos, narrative, extensions and meta removed",
            "Patient id and references: HMAC-SHA256 pseudonym per citizen and project (key in the home)",
            "other resource ids: HMAC-SHA256 per project; references outside the export removed",
            f"every date shifted by one secret per-citizen offset (up to {MAX_SHIFT_DAYS} days)",
            "free text removed: text, note, comment, description, valueString, reference display",
            "birth date kept to the year",
            f"postcode truncated to {POSTCODE_KEEP} characters; only postcode and country kept of addresses",
            "patient-reported entries left out",
        ],
    }
    (out_dir / "manifest.json").write_bytes(dumps_pretty(manifest))
    return manifest
