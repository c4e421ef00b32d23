"""Known absence, negation and the C-CDA example fragments (wrapped in a
ClinicalDocument, as they have no root element): IPS absent/unknown codes,
refuted allergies, refused immunizations and medications, results with
comparators, narrative-only sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.pipeline import Conversion, convert
from tests.cda.helpers import NOW, converted, fixture, fragments, resources, wrap_fragment

IPS_ABSENT = "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips"


def frag(name: str) -> Conversion:
    return convert(wrap_fragment(fixture(name)), now=NOW)


def codes(cc: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(c.get("system"), c.get("code")) for c in cc.get("coding", [])]


@pytest.mark.parametrize("path", fragments(), ids=lambda p: p.name)
def test_every_fragment_converts_to_valid_resources(path: Path) -> None:
    conv = frag(path.name)
    for r in conv.resources:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    assert len(conv.fidelity) == sum(1 for t in conv.fidelity if t.resources)


def test_known_absence_uses_the_ips_absent_unknown_codes() -> None:
    conv = converted("PS-RTD-W3-known-absence.xml")
    allergy = resources(conv, "AllergyIntolerance")[0]
    assert (IPS_ABSENT, "no-known-allergies") in codes(allergy["code"])
    med = resources(conv, "MedicationStatement")[0]
    assert (IPS_ABSENT, "no-known-medications") in codes(med["medicationCodeableConcept"])
    problem = resources(conv, "Condition")[0]
    assert (IPS_ABSENT, "no-known-problems") in codes(problem["code"])
    device = resources(conv, "Device")[0]
    assert (IPS_ABSENT, "no-known-devices") in codes(device["type"])


def test_an_invalid_absence_code_is_corrected_and_reported() -> None:
    conv = converted("PS-RTD-W3-known-absence.xml")
    proc = resources(conv, "Procedure")[0]
    assert (IPS_ABSENT, "no-known-procedures") in codes(proc["code"])
    assert any("no-known-procedure'" in i.message and i.severity == "warning" for i in conv.issues)


def test_ccda_no_known_allergies_is_the_absent_code() -> None:
    allergy = resources(frag("frag-NoKnownAllergies.xml"), "AllergyIntolerance")[0]
    assert codes(allergy["code"]) == [(IPS_ABSENT, "no-known-allergies")]
    assert "verificationStatus" not in allergy


def test_negated_specific_allergy_is_refuted() -> None:
    allergy = resources(frag("frag-NotAllergicPeanuts.xml"), "AllergyIntolerance")[0]
    assert codes(allergy["code"]) == [("http://snomed.info/sct", "762952008")]
    assert allergy["verificationStatus"]["coding"][0]["code"] == "refuted"


def test_no_information_section_has_an_empty_reason() -> None:
    comp = frag("frag-NoInformationAllergies.xml").bundle["entry"][0]["resource"]
    allergies = next(s for s in comp["section"] if s["code"]["coding"][0]["code"] == "48765-2")
    assert "entry" not in allergies
    assert allergies["emptyReason"]["coding"][0]["code"] == "unavailable"


def test_refused_immunization_is_not_done_with_its_reason() -> None:
    imm = resources(frag("frag-ImmunizationRefused.xml"), "Immunization")[0]
    assert imm["status"] == "not-done"
    assert imm["statusReason"]["coding"][0]["code"] == "PATOBJ"


def test_refused_medication_is_not_taken_with_its_reason() -> None:
    med = resources(frag("frag-MedicationRefused.xml"), "MedicationStatement")[0]
    assert med["status"] == "not-taken"
    assert med["statusReason"][0]["coding"][0]["code"] == "105480006"


def test_result_less_than_is_a_comparator_quantity() -> None:
    obs = [
        o
        for o in resources(frag("frag-ResultLessThan.xml"), "Observation")
        if o["code"]["coding"][0]["code"] == "42637-9"
    ][0]
    assert obs["valueQuantity"]["comparator"] == "<=" and obs["valueQuantity"]["value"] == 5
    assert obs["referenceRange"][0]["high"]["value"] == 100


def test_unknown_smoking_status_keeps_its_code() -> None:
    obs = resources(frag("frag-UnknownSmokingStatus.xml"), "Observation")[0]
    assert obs["valueCodeableConcept"]["coding"][0]["code"] == "266927001"
    assert obs["category"][0]["coding"][0]["code"] == "social-history"


def test_free_text_sig_becomes_the_dosage_text() -> None:
    med = resources(frag("frag-FreeTextSig.xml"), "MedicationStatement")[0]
    assert med["dosage"][0]["text"]


def test_drug_mixture_keeps_every_ingredient() -> None:
    conv = frag("frag-DrugMixture.xml")
    meds = resources(conv, "Medication")
    assert sum(len(m.get("ingredient", [])) for m in meds) >= 2
