"""Pivot and friendly forms of one document (eHDSI: the friendly form has
the national codes and language, the pivot the eHDSI ones) convert to the
same clinical content except national codes; so do the two eHDSI
generations (epSOS ``epsos:`` and current ``pharm:``) of one summary.

Pairs that exist among the samples: eP-SK pivot/friendly (one
prescription, one patient), eP-FI pivot/friendly (one patient, two
different prescriptions), PS-RTD-W5 (epSOS) / PS-BAD-MAPPING (eHDSI, the
same reference test data with deliberately changed codes in some
sections). PS-PT-W2 and PS-PT-schPassed-friendly, and the two PS-MT pivot
documents, are different patients."""

from __future__ import annotations

import json
from typing import Any

from tests.cda.helpers import converted, resources

DROP = {"id", "meta", "display", "text", "div", "reference", "fullUrl", "identifier"}
NATIONAL = {"when"}  # eP-SK: TimingEvent ACM (pivot) vs AC (friendly)


def canonical(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: canonical(v) for k, v in sorted(node.items()) if k not in DROP | NATIONAL}
    if isinstance(node, list):
        return sorted((canonical(v) for v in node), key=lambda v: json.dumps(v, sort_keys=True))
    return node


def content(name: str, rtype: str) -> list[str]:
    return sorted(
        json.dumps(canonical(r), sort_keys=True, ensure_ascii=False)
        for r in resources(converted(name), rtype)
    )


def codes(name: str, rtype: str) -> list[tuple[str, ...]]:
    out = []
    for r in resources(converted(name), rtype):
        for key in ("code", "vaccineCode", "medicationCodeableConcept", "type"):
            if isinstance(r.get(key), dict):
                out.append(
                    tuple(
                        sorted(
                            f"{c.get('system')}|{c.get('code')}" for c in r[key].get("coding", [])
                        )
                    )
                )
    return sorted(out)


def test_ep_sk_pivot_and_friendly_have_the_same_clinical_content() -> None:
    for rtype in ("MedicationRequest", "Medication", "Patient"):
        assert content("eP-SK-pivot-L3.xml", rtype) == content("eP-SK-friendly-L3.xml", rtype), (
            rtype
        )


def test_ep_sk_differs_only_in_the_national_timing_code() -> None:
    pivot = resources(converted("eP-SK-pivot-L3.xml"), "MedicationRequest")[0]
    friendly = resources(converted("eP-SK-friendly-L3.xml"), "MedicationRequest")[0]
    assert pivot["dosageInstruction"][0]["timing"]["repeat"]["when"] == ["ACM"]
    assert friendly["dosageInstruction"][0]["timing"]["repeat"]["when"] == ["AC"]


def test_ep_fi_pivot_and_friendly_name_the_same_patient() -> None:
    a = resources(converted("eP-FI-schPassed-pivot.xml"), "Patient")[0]
    b = resources(converted("eP-FI-schPassed-friendly.xml"), "Patient")[0]
    assert a["id"] == b["id"]  # the same business identifier: the same resource
    assert canonical(a) == canonical(b)


def test_the_two_ehdsi_generations_of_one_summary_agree() -> None:
    old, new = "PS-RTD-W5-L3-ReferenceTestData.xml", "PS-BAD-MAPPING-PT.xml"
    for rtype in ("Medication", "MedicationStatement", "Procedure", "Immunization"):
        assert codes(old, rtype) == codes(new, rtype), rtype
    # allergens are the same; the adverse event types are changed on purpose in the newer one
    allergens = [
        sorted(c["code"] for c in r["code"]["coding"])
        for r in resources(converted(old), "AllergyIntolerance")
    ]
    assert allergens == [
        sorted(c["code"] for c in r["code"]["coding"])
        for r in resources(converted(new), "AllergyIntolerance")
    ]
