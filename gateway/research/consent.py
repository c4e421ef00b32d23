"""The citizen's research Consent (FHIR R4 Consent, ``scope`` research):
which categories of their record (resource types, ``provision.class``) may be
used for which purposes (``provision.purpose``, v3 ActReason; default
HRESCH "healthcare research"). Revocable: withdrawing makes every active
research Consent ``inactive`` (kept in the record, as any Consent)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ..errors import Issue, RejectedInput
from ..records import Store

__all__ = [
    "CATEGORIES",
    "PURPOSES",
    "active_research",
    "consented_types",
    "research_consent",
    "research_consents",
    "withdraw",
]

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
CATEGORIES: dict[str, tuple[str, ...]] = {
    "conditions": ("Condition",),
    "allergies": ("AllergyIntolerance",),
    "medications": ("MedicationStatement", "MedicationRequest"),
    "immunizations": ("Immunization",),
    "observations": ("Observation",),
    "procedures": ("Procedure",),
}
PURPOSES = {"HRESCH": "healthcare research", "CLINTRCH": "clinical trial research",
            "PUBHLTH": "public health"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def research_consent(patient: str, body: dict[str, Any]) -> dict[str, Any]:
    """A research Consent from ``{"categories": [...] | "all", "purposes": [...]}``."""
    raw = body.get("categories", "all")
    if raw == "all":
        cats = list(CATEGORIES)
    elif isinstance(raw, list) and raw and all(c in CATEGORIES for c in raw):
        cats = list(dict.fromkeys(raw))
    else:
        raise RejectedInput("bad categories", [Issue(
            "error", "code-invalid", f"categories: \"all\" or some of {', '.join(CATEGORIES)}", "categories")])
    purposes = body.get("purposes", ["HRESCH"])
    if not isinstance(purposes, list) or not purposes or not all(p in PURPOSES for p in purposes):
        raise RejectedInput("bad purposes", [Issue(
            "error", "code-invalid", f"purposes: some of {', '.join(PURPOSES)}", "purposes")])
    stamp = _now()
    return {
        "resourceType": "Consent", "id": str(uuid.uuid4()), "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "research", "display": "Research"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0",
                                  "display": "Patient Consent"}]}],
        "patient": {"reference": f"Patient/{patient}"}, "dateTime": stamp,
        "performer": [{"reference": f"Patient/{patient}"}],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                   "code": "OPTIN", "display": "opt-in"}]},
        "provision": {
            "type": "permit", "period": {"start": stamp},
            "purpose": [{"system": ACT_REASON, "code": p, "display": PURPOSES[p]} for p in purposes],
            "class": [{"system": RESOURCE_TYPES, "code": t} for c in cats for t in CATEGORIES[c]],
        },
    }


def _is_research(c: dict[str, Any]) -> bool:
    return any(x.get("code") == "research" for x in (c.get("scope") or {}).get("coding", []) or [])


def research_consents(store: Store) -> list[dict[str, Any]]:
    """Every active research Consent in the store."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = store.search("Consent", limit=500, offset=offset)
        out += [c for c in page if c.get("status") == "active" and _is_research(c)]
        if len(page) < 500:
            return out
        offset += 500


def active_research(store: Store, patients: set[str]) -> list[dict[str, Any]]:
    found, _ = store.find("Consent", [], patients, count=10_000, offset=0, total=False)
    return [c for c in found if c.get("status") == "active" and _is_research(c)]


def withdraw(store: Store, patients: set[str]) -> list[dict[str, Any]]:
    stamp = _now()
    ended = []
    for c in active_research(store, patients):
        prov = dict(c.get("provision") or {})
        prov["period"] = {**(prov.get("period") or {}), "end": stamp}
        ended.append({**c, "status": "inactive", "provision": prov})
    if ended:
        store.write(ended)
    return ended


def consented_types(consent: dict[str, Any], purpose: str) -> set[str]:
    """The resource types a Consent gives for ``purpose`` (empty: not for it)."""
    prov = consent.get("provision") or {}
    if not any(p.get("code") == purpose for p in prov.get("purpose", []) or []):
        return set()
    return {c.get("code", "") for c in prov.get("class", []) or []}
