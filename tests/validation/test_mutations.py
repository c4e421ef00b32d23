"""Mutated copies of the IPS minimal example: each defect is an error at the right place.

Entries of the minimal example: 0 Composition (sections 0 problems, 1 medications,
2 allergies), 1 Patient, 2 Practitioner, 3 Organization, 4 Condition,
5 MedicationStatement, 6 Medication, 7 AllergyIntolerance.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.validation import validate_bundle, validate_resource

from .conftest import errors


def error_at(issues: list[Any], expression: str, text: str = "") -> list[Any]:
    return [i for i in errors(issues) if i.expression == expression and text in i.message]


def test_required_section_removed(minimal: dict[str, Any]) -> None:
    sections = minimal["entry"][0]["resource"]["section"]
    del sections[2]  # allergies
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[0].resource.section",
                    "Composition.section:sectionAllergies: minimum cardinality 1, found 0")


def test_section_without_code(minimal: dict[str, Any]) -> None:
    del minimal["entry"][0]["resource"]["section"][1]["code"]
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[0].resource.section[1].code",
                    "minimum cardinality 1, found 0")


def test_allergy_without_patient(minimal: dict[str, Any]) -> None:
    del minimal["entry"][7]["resource"]["patient"]
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[7].resource.patient",
                    "AllergyIntolerance.patient: minimum cardinality 1, found 0")


def test_code_outside_required_binding(minimal: dict[str, Any]) -> None:
    minimal["entry"][1]["resource"]["gender"] = "bogus"
    issues = validate_bundle(minimal, "ips")
    found = error_at(issues, "Bundle.entry[1].resource.gender", "required binding")
    assert found and "administrative-gender" in found[0].message
    assert found[0].code == "code-invalid"


def test_broken_invariant(minimal: dict[str, Any]) -> None:
    """ait-2: an entered-in-error AllergyIntolerance must not have a clinicalStatus."""
    allergy = minimal["entry"][7]["resource"]
    allergy["verificationStatus"]["coding"][0]["code"] = "entered-in-error"
    issues = validate_bundle(minimal, "ips")
    found = error_at(issues, "Bundle.entry[7].resource", "ait-2")
    assert found and found[0].code == "invariant"


def test_section_invariant_ips_comp_1(minimal: dict[str, Any]) -> None:
    section = minimal["entry"][0]["resource"]["section"][0]
    del section["entry"]
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[0].resource.section[0]", "ips-comp-1")


def test_dangling_reference(minimal: dict[str, Any]) -> None:
    missing = "urn:uuid:00000000-0000-0000-0000-000000000000"
    minimal["entry"][5]["resource"]["subject"]["reference"] = missing
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[5].resource.subject.reference", "does not resolve")


def test_section_entry_not_in_bundle(minimal: dict[str, Any]) -> None:
    del minimal["entry"][7]
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[0].resource.section[2].entry[0].reference",
                    "section entry")


def test_max_cardinality_exceeded(minimal: dict[str, Any]) -> None:
    sections = minimal["entry"][0]["resource"]["section"]
    sections.append(dict(sections[2]))  # a second allergies section
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[0].resource.section[3]",
                    "Composition.section:sectionAllergies: maximum cardinality 1, found 2")


def test_single_element_given_as_array(minimal: dict[str, Any]) -> None:
    patient = minimal["entry"][1]["resource"]
    patient["birthDate"] = [patient.get("birthDate", "1970"), "1971"]
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[1].resource.birthDate", "not an array")


@pytest.mark.parametrize("profile", ["ips", "ips-1.1.0"])  # 1.1.0 lists only effective[x]'s extensions
def test_wrong_type_in_choice(minimal: dict[str, Any], profile: str) -> None:
    statement = minimal["entry"][5]["resource"]
    statement["effectiveBoolean"] = statement.pop("effectivePeriod") and True
    issues = validate_bundle(minimal, profile)
    assert error_at(issues, "Bundle.entry[5].resource.effective.ofType(boolean)",
                    "MedicationStatement.effective[x]: type boolean is not allowed")


def test_wrong_json_type_for_a_choice_value(minimal: dict[str, Any]) -> None:
    statement = minimal["entry"][5]["resource"]
    statement["effectivePeriod"] = "2015-03"
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[5].resource.effective.ofType(Period)",
                    "expected a JSON object")


def test_bad_primitive(minimal: dict[str, Any]) -> None:
    minimal["entry"][1]["resource"]["birthDate"] = "1970-13-45"
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[1].resource.birthDate", "not a valid date")


def test_composition_not_first(minimal: dict[str, Any]) -> None:
    minimal["entry"].append(minimal["entry"].pop(0))
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[0]", "must start with its Composition")
    assert error_at(issues, "Bundle", "bdl-11")


def test_duplicate_full_url(minimal: dict[str, Any]) -> None:
    minimal["entry"][3]["fullUrl"] = minimal["entry"][2]["fullUrl"]
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[3].fullUrl", "already used")


def test_unknown_element(minimal: dict[str, Any]) -> None:
    minimal["entry"][1]["resource"]["favouriteColour"] = "blue"
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[1].resource.favouriteColour", "unknown element")


def test_null_entry_and_unknown_resource_type(minimal: dict[str, Any]) -> None:
    minimal["entry"].append(None)
    minimal["entry"].append({"fullUrl": "urn:uuid:x", "resource": {"resourceType": "Nonsense"}})
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[8]", "null")
    assert error_at(issues, "Bundle.entry[9].resource", "unknown resourceType 'Nonsense'")


def test_patient_alone_against_ips_profile(minimal: dict[str, Any]) -> None:
    patient = minimal["entry"][1]["resource"]
    assert errors(validate_resource(patient, "ips")) == []
    del patient["name"]
    issues = validate_resource(patient, "ips")
    assert error_at(issues, "Patient.name", "Patient.name: minimum cardinality 1, found 0")


def test_claimed_ips_1_1_0_profile(minimal: dict[str, Any]) -> None:
    """A resource that claims IPS 1.1.0 is checked against the 1.1.0 definition."""
    patient = minimal["entry"][1]["resource"]
    patient["meta"] = {"profile": [
        "http://hl7.org/fhir/uv/ips/StructureDefinition/Patient-uv-ips|1.1.0"]}
    assert errors(validate_resource(patient)) == []
    del patient["birthDate"]
    assert error_at(validate_resource(patient), "Patient.birthDate", "minimum cardinality 1")


def test_not_a_bundle() -> None:
    issues = validate_bundle({"resourceType": "Patient"})  # type: ignore[arg-type]
    assert errors(issues) and "expected a Bundle" in issues[0].message
    assert errors(validate_resource(None))  # type: ignore[arg-type]


def test_safe_from_threads() -> None:
    """Several threads validating different Bundles at once get the answers they get alone."""
    from concurrent.futures import ThreadPoolExecutor

    from .conftest import example_names, ips_example

    bundles = [ips_example(n) for n in example_names()]
    bad = ips_example("bundle-minimal")
    del bad["entry"][7]["resource"]["patient"]
    bundles.append(bad)

    def run(b: dict[str, Any]) -> list[tuple[str, str | None, str]]:
        return [(i.severity, i.expression, i.message) for i in validate_bundle(b, "ips")]

    alone = [run(b) for b in bundles]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(run, bundles * 3))
    assert together == alone * 3


def test_ips_rule_enforced_through_the_bundle_entry_slice(minimal: dict[str, Any]) -> None:
    """AllergyIntolerance.code is optional in R4 but 1..1 in AllergyIntolerance-uv-ips: the entry
    is meant for the Bundle's allergyintolerance slice (the only AllergyIntolerance slice), so the
    profile's findings are reported at the resource's own location."""
    del minimal["entry"][7]["resource"]["code"]
    issues = validate_bundle(minimal, "ips")
    assert error_at(issues, "Bundle.entry[7].resource.code", "minimum cardinality 1, found 0")
    assert errors(validate_bundle(minimal, "r4")) == []
