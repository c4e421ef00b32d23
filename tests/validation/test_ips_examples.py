"""The official HL7 IPS 2.0.0 example Bundles (fixtures/fhir/ips, CC0) validate without errors.

They are checked against the IPS Bundle profile (``ips``), against what they
claim (``auto``: the all-sections example claims IPS profiles in meta.profile)
and against base R4 only. Warnings are allowed and expected: the examples code
Condition.category with LOINC 75326-9 "Problem", which is outside the
extensible IPS binding problem-type-uv-ips (condition-category codes); the
HL7 IG publisher reports the same warnings for these examples.
"""

from __future__ import annotations

import pytest

from gateway.validation import validate_bundle

from .conftest import errors, example_names, ips_example


@pytest.mark.parametrize("name", example_names())
@pytest.mark.parametrize("profile", ["ips", "auto", "r4"])
def test_official_example_has_no_errors(name: str, profile: str) -> None:
    issues = validate_bundle(ips_example(name), profile)
    assert errors(issues) == [], [(i.expression, i.message) for i in errors(issues)]


def test_five_examples_are_there() -> None:
    assert len(example_names()) == 5


def test_known_warning_is_the_extensible_problem_type_binding() -> None:
    issues = validate_bundle(ips_example("bundle-minimal"), "ips")
    warnings = [i for i in issues if i.severity == "warning"]
    assert [(w.expression, "problem-type-uv-ips" in w.message) for w in warnings] == [
        ("Bundle.entry[4].resource.category[0]", True)]


def test_eu_ps_requires_procedures_and_devices_sections() -> None:
    """Our EU PS deltas (profiles/hl7.eu.fhir.eps#0.0.1-gateway): the minimal IPS example has
    no History of Procedures nor Medical Devices section, which the EU PS makes mandatory."""
    issues = errors(validate_bundle(ips_example("bundle-minimal"), "eps"))
    found = {(i.expression, i.message.split(":")[0]) for i in issues}
    assert ("Bundle.entry[0].resource.section",
            "Composition.section") in found or found, found
    messages = " ".join(i.message for i in issues)
    assert "sectionProceduresHx: minimum cardinality 1, found 0" in messages
    assert "sectionMedicalDevices: minimum cardinality 1, found 0" in messages
    assert errors(validate_bundle(ips_example("bundle-ips-all-sections"), "eps")) == []
