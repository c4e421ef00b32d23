"""Children of a typed element that the profile's snapshot does not list.

The IPS 1.1.0 snapshot lists ``MedicationStatement.effective[x].id`` and
``.extension`` (with a data-absent-reason slice) but not Period's ``start``
and ``end``: those come from Period itself (FHIR R4 section 5.1.0.12), while
the listed children keep the profile's rules. Entry 5 of the minimal example
is a MedicationStatement with ``effectivePeriod: {"start": "2015-03"}``.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.validation import validate_bundle
from gateway.validation.structure import compile_profile, with_type_elements

from .conftest import errors, ips_example

IPS_1_1_0 = "http://hl7.org/fhir/uv/ips/StructureDefinition/MedicationStatement-uv-ips|1.1.0"
PERIOD = "Bundle.entry[5].resource.effective.ofType(Period)"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def at(issues: list[Any], expression: str, text: str = "") -> list[Any]:
    return [i for i in errors(issues) if i.expression == expression and text in i.message]


@pytest.mark.parametrize("name", ["IPS-examples-Bundle-01", "bundle-minimal"])
def test_effective_period_is_allowed_by_ips_1_1_0(name: str) -> None:
    issues = validate_bundle(ips_example(name), "ips-1.1.0")
    assert [i for i in issues if "unknown element" in i.message] == []
    assert errors(issues) == [], [(i.expression, i.message) for i in errors(issues)]


def test_unknown_child_of_the_chosen_type_is_still_reported(minimal: dict[str, Any]) -> None:
    minimal["entry"][5]["resource"]["effectivePeriod"]["bogus"] = 1
    issues = validate_bundle(minimal, "ips-1.1.0")
    assert at(issues, PERIOD + ".bogus",
              "unknown element 'bogus' in MedicationStatement.effective[x]")
    assert not [i for i in issues if "'start'" in i.message]


def test_the_types_own_rules_apply_to_its_unlisted_children(minimal: dict[str, Any]) -> None:
    minimal["entry"][5]["resource"]["effectivePeriod"] = {"start": "March 2015"}
    assert at(validate_bundle(minimal, "ips-1.1.0"), PERIOD + ".start", "not a valid dateTime")
    minimal["entry"][5]["resource"]["effectivePeriod"] = {"start": "2016", "end": "2015"}
    assert at(validate_bundle(minimal, "ips-1.1.0"), PERIOD, "per-1")


def test_the_profiles_rules_still_apply_to_its_listed_children(minimal: dict[str, Any]) -> None:
    absent = {"url": DATA_ABSENT, "valueCode": "unknown"}
    minimal["entry"][5]["resource"]["effectivePeriod"]["extension"] = [absent, dict(absent)]
    issues = validate_bundle(minimal, "ips-1.1.0")
    assert at(issues, PERIOD + ".extension[1]", "MedicationStatement.effective[x]"
              ".extension:data-absent-reason: maximum cardinality 1")


def test_a_known_ips_1_1_0_failure_still_fails() -> None:
    """The "no information" example uses section.emptyReason, which IPS 2.0.0 allows for the
    required sections but IPS 1.1.0 does not (each needs an entry)."""
    issues = validate_bundle(ips_example("bundle-no-info-required-sections"), "ips-1.1.0")
    assert at(issues, "Bundle.entry[0].resource.section[2].entry",
              "sectionMedications.entry: minimum cardinality 1, found 0")


def test_with_type_elements_adds_only_unlisted_names() -> None:
    rule = compile_profile(IPS_1_1_0).by_id["MedicationStatement.effective[x]"]
    period = compile_profile("http://hl7.org/fhir/StructureDefinition/Period").root
    merged = with_type_elements(rule, period)
    assert {"id", "extension", "start", "end"} <= set(merged.keys)
    assert merged.keys["extension"][0] is rule.keys["extension"][0]  # the profile's, sliced
    assert merged.keys["start"][0] is period.keys["start"][0]
    assert "start" not in rule.keys  # the compiled profile is left as it was
    element = compile_profile("http://hl7.org/fhir/StructureDefinition/Element").root
    assert with_type_elements(rule, element) is rule
