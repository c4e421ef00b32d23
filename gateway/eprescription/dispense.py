"""``gateway dispense``: an eDispensation CDA for a stored MedicationRequest
(its Medication and Patient read from the store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import Issue, NotFound
from .writer import Dispense, edispensation_cda

__all__ = ["dispense_document"]


def _ref_id(ref: dict[str, Any] | None, rtype: str) -> str | None:
    r = (ref or {}).get("reference") or ""
    return r.split("/", 1)[1] if r.startswith(f"{rtype}/") else None


def dispense_document(store: Any, prescription_id: str, dispense: Dispense,
                      now: datetime | None = None) -> bytes:
    """The eDispensation of ``dispense`` against MedicationRequest ``prescription_id``."""
    request = store.read("MedicationRequest", prescription_id)
    if request is None:
        raise NotFound("no such MedicationRequest", [Issue(
            "error", "not-found", f"MedicationRequest/{prescription_id} is not stored",
            "PRESCRIPTION_ID")])
    mid = _ref_id(request.get("medicationReference"), "Medication")
    medication = store.read("Medication", mid) if mid else None
    if medication is None and request.get("medicationCodeableConcept"):
        medication = {"code": request["medicationCodeableConcept"]}
    pid = _ref_id(request.get("subject"), "Patient")
    patient = store.read("Patient", pid) if pid else None
    if patient is None:
        raise NotFound("the prescription's patient is not stored", [Issue(
            "error", "not-found", f"Patient/{pid} is not stored", "MedicationRequest.subject")])
    return edispensation_cda(request, medication, patient, dispense, now=now)
