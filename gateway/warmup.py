"""Loading done before a server listens, so that no caller waits for it.

Mappings, terminology, profiles and compiled FHIRPath are loaded on first
use. Done lazily, the first message after a start waits seconds for the
mappings, and the first ``$summary`` of each worker process half a second
for the IPS profiles (under load that was every ``$summary`` above the
99th percentile). :func:`warm_up` loads them up front.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["warm_up", "warm_conversion", "warm_summary"]

_PID = "warm-up-patient"
_SUBJECT = {"reference": f"Patient/{_PID}"}
_WHEN = "2024-03-01"


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


_SNOMED, _LOINC = "http://snomed.info/sct", "http://loinc.org"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _record() -> list[dict[str, Any]]:
    """A made-up record with an entry for each kind of summary section."""
    def obs(oid: str, category: str, code: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": oid, "status": "final",
                "category": [_cc(_OBS_CATEGORY, category, category)], "code": code,
                "subject": _SUBJECT, "effectiveDateTime": _WHEN, **value}

    return [
        {"resourceType": "Patient", "id": _PID, "name": [{"family": "Warm", "given": ["Up"]}],
         "gender": "unknown", "birthDate": "1970-01-01"},
        {"resourceType": "AllergyIntolerance", "id": "warm-allergy", "patient": _SUBJECT,
         "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                               "active", "Active"),
         "code": _cc(_SNOMED, "764146007", "Penicillin")},
        {"resourceType": "Condition", "id": "warm-problem", "subject": _SUBJECT,
         "clinicalStatus": _cc(_CLINICAL, "active", "Active"),
         "code": _cc(_SNOMED, "38341003", "Hypertensive disorder")},
        {"resourceType": "Condition", "id": "warm-past-problem", "subject": _SUBJECT,
         "clinicalStatus": _cc(_CLINICAL, "resolved", "Resolved"),
         "code": _cc(_SNOMED, "195967001", "Asthma")},
        {"resourceType": "MedicationStatement", "id": "warm-medication", "status": "active",
         "subject": _SUBJECT, "effectiveDateTime": _WHEN,
         "medicationCodeableConcept": _cc("http://www.whocc.no/atc", "C09AA05", "ramipril")},
        {"resourceType": "Immunization", "id": "warm-immunization", "status": "completed",
         "patient": _SUBJECT, "occurrenceDateTime": _WHEN,
         "vaccineCode": _cc(_SNOMED, "836398006", "Pneumococcal vaccine")},
        {"resourceType": "Procedure", "id": "warm-procedure", "status": "completed",
         "subject": _SUBJECT, "performedDateTime": _WHEN,
         "code": _cc(_SNOMED, "80146002", "Appendectomy")},
        {"resourceType": "Device", "id": "warm-device", "type": _cc(_SNOMED, "14106009", "Cardiac pacemaker")},
        {"resourceType": "DeviceUseStatement", "id": "warm-device-use", "status": "active",
         "subject": _SUBJECT, "timingDateTime": _WHEN, "device": {"reference": "Device/warm-device"}},
        {"resourceType": "Flag", "id": "warm-alert", "status": "active", "subject": _SUBJECT,
         "code": {"text": "Risk of falls"}},
        {"resourceType": "CarePlan", "id": "warm-plan", "status": "active", "intent": "plan",
         "subject": _SUBJECT, "category": [_cc(_SNOMED, "736271009", "Outpatient care plan")]},
        {"resourceType": "Organization", "id": "warm-lab", "name": "Laboratory"},
        obs("warm-result", "laboratory", _cc(_LOINC, "2345-7", "Glucose"),
            {"performer": [{"reference": "Organization/warm-lab"}],
             "valueQuantity": {"value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                               "code": "mmol/L"}}),
        obs("warm-vital", "vital-signs", _cc(_LOINC, "8867-4", "Heart rate"),
            {"valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org",
                               "code": "/min"}}),
        obs("warm-social", "social-history", _cc(_LOINC, "72166-2", "Tobacco smoking status"),
            {"valueCodeableConcept": _cc(_SNOMED, "8517006", "Ex-smoker")}),
        {"resourceType": "DiagnosticReport", "id": "warm-report", "status": "final",
         "subject": _SUBJECT, "effectiveDateTime": _WHEN, "code": _cc(_LOINC, "24323-8", "Metabolic panel"),
         "result": [{"reference": "Observation/warm-result"}]},
    ]


def warm_conversion() -> None:
    """Load and compile the mappings and the terminology."""
    from . import pipeline
    from .terminology import get_terminology

    pipeline.hl7v2_mapping()
    pipeline.cda_mapping()
    pipeline.national_mappings()
    get_terminology()


def warm_summary(home: Path | None = None) -> dict[str, Any]:
    """Assemble, validate and (with ``home``, whose key signs) sign the
    summary of a made-up record: the IPS profiles of every section are then
    loaded and compiled. Returns the document (nothing is stored)."""
    from .records.summary import assemble_summary
    from .validation import validate_bundle

    record = _record()
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in record}
    result = assemble_summary(record[0], record, lambda refs: [by_ref[r] for r in refs if r in by_ref],
                              {_PID}, "http://localhost/fhir")
    validate_bundle(result.bundle)
    if home is None:
        return result.bundle
    from .exchange.context import sign_document

    return sign_document(home, result.bundle)


def warm_up(home: Path | None = None) -> None:
    """Everything a request may need on first use: conversion, and ``$summary``."""
    warm_conversion()
    warm_summary(home)
