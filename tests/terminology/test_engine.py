"""The in-process API: validate-code, lookup, translate, expand, on the real content."""

from __future__ import annotations

import pytest

from gateway.terminology import ConceptInfo, Membership, Translation

V2 = "http://terminology.hl7.org/CodeSystem/"
IPS = "http://hl7.org/fhir/uv/ips/ValueSet/"


def test_validate_member_not_member_not_checked(term) -> None:
    m = term.validate_code("http://hl7.org/fhir/ValueSet/administrative-gender", "female",
                           "http://hl7.org/fhir/administrative-gender")
    assert isinstance(m, Membership) and m.result == "member" and m.display == "Female"
    m = term.validate_code("http://hl7.org/fhir/ValueSet/administrative-gender", "F",
                           "http://hl7.org/fhir/administrative-gender")
    assert m.result == "not-member"
    # a SNOMED CT filter cannot be evaluated without SNOMED CT: never a silent pass
    m = term.validate_code(IPS + "allergies-intolerances-uv-ips", "716186003", "http://snomed.info/sct")
    assert m.result == "not-checked" and "SNOMED CT" in m.message
    # ... but a code of a system the value set does not draw on is outside it
    m = term.validate_code(IPS + "allergies-intolerances-uv-ips", "X1", "http://example.org/local")
    assert m.result == "not-member"
    m = term.validate_code("http://example.org/ValueSet/unknown", "x")
    assert m.result == "not-checked" and "not loaded" in m.message
    assert term.has_valueset("http://hl7.org/fhir/ValueSet/administrative-gender")
    assert term.has_valueset("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")
    assert not term.has_valueset("http://hl7.org/fhir/ValueSet/administrative-gender|0.0.1")


def test_validate_without_system_oid_and_display(term) -> None:
    vs = "urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.42.34"  # eHDSIAdministrativeGender, by OID
    assert term.validate_code(vs, "F").result == "member"
    assert term.validate_code(vs, "F", "urn:oid:2.16.840.1.113883.5.1").result == "member"
    assert term.validate_code(vs, "X", "urn:oid:2.16.840.1.113883.5.1").result == "not-member"
    m = term.validate_code(vs, "F", "urn:oid:2.16.840.1.113883.5.1", display="Banana")
    assert m.result == "member" and "differs" in m.message


def test_filters_on_a_loaded_hierarchy(term) -> None:
    # v3 ActEncounterCode: is-a _ActEncounterCode on the loaded v3-ActCode hierarchy
    vs = "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode"
    if not term.has_valueset(vs):
        pytest.skip("HL7 terminology value sets not in profiles/")
    assert term.validate_code(vs, "IMP", V2 + "v3-ActCode").result == "member"
    assert term.validate_code(vs, "ACCT", V2 + "v3-ActCode").result == "not-member"


def test_lookup_with_designations_and_parents(term) -> None:
    info = term.lookup(V2 + "v3-MaritalStatus", "M", display_language="de")
    assert isinstance(info, ConceptInfo) and info.display == "verheiratet"
    assert info.designations["el"] == "Έγγαμος" and info.designations["en"] == "Married"
    info = term.lookup("http://hl7.org/fhir/observation-status", "corrected")
    assert info is not None and info.parents == ("amended",)
    # LOINC is not shipped, but the IPS section titles have designations
    info = term.lookup("http://loinc.org", "48765-2", display_language="fr")
    assert info is not None and info.display == "Allergies et intolérances"
    assert term.lookup(V2 + "v2-0001", "nope") is None
    assert term.lookup("http://unitsofmeasure.org", "mg/dL") is not None


@pytest.mark.parametrize(("table", "code", "target_system", "target_code"), [
    ("v2-0001", "F", "http://hl7.org/fhir/administrative-gender", "female"),
    ("v2-0001", "A", "http://hl7.org/fhir/administrative-gender", "other"),
    ("v2-0002", "M", V2 + "v3-MaritalStatus", "M"),
    ("v2-0002", "A", V2 + "v3-MaritalStatus", "L"),
    ("v2-0002", "U", V2 + "v3-NullFlavor", "UNK"),
    ("v2-0085", "F", "http://hl7.org/fhir/observation-status", "final"),
    ("v2-0085", "C", "http://hl7.org/fhir/observation-status", "corrected"),
    ("v2-0085", "W", "http://hl7.org/fhir/observation-status", "entered-in-error"),
    ("v2-0078", "H", V2 + "v3-ObservationInterpretation", "H"),
    ("v2-0078", "LL", V2 + "v3-ObservationInterpretation", "LL"),
    ("v2-0004", "I", V2 + "v3-ActCode", "IMP"),
    ("v2-0200", "L", "http://hl7.org/fhir/name-use", "official"),
    ("v2-0063", "SPO", V2 + "v3-RoleCode", "SPS"),
])
def test_translate_v2_tables(term, table, code, target_system, target_code) -> None:
    found = term.translate(V2 + table, code, target_system=target_system)
    assert [(t.code, t.relationship) for t in found] == [(target_code, "equivalent")]
    assert isinstance(found[0], Translation) and found[0].conceptmap.startswith(
        "http://hl7.org/fhir/uv/v2mappings/ConceptMap/")


def test_translate_unmatched_and_relationships(term) -> None:
    # v2-to-FHIR: observation result status N (not asked) has no FHIR status
    found = term.translate(V2 + "v2-0085", "N")
    assert found and all(t.relationship == "not-related-to" and t.code is None for t in found)
    assert term.translate(V2 + "v2-0001", "ZZZ") == []
    # a non-equivalent map keeps the original and marks the target
    from gateway.terminology import Translation, coding_for

    t = Translation(system="http://snomed.info/sct", code="123", display=None, relationship="wider",
                    conceptmap="http://example.org/cm", equivalence="wider")
    c = coding_for(t)
    assert c["userSelected"] is False
    assert {"url": "https://health-gateway.eu/fhir/StructureDefinition/translation-equivalence",
            "valueCode": "wider"} in c["extension"]
    codings = term.translate_coding(V2 + "v2-0001", "F", "Female")
    assert codings[0] == {"system": V2 + "v2-0001", "code": "F", "display": "Female"}
    assert codings[1]["code"] == "female" and "userSelected" not in codings[1]


def test_ips_absent_unknown_map(term) -> None:
    found = term.translate("http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips",
                           "no-known-allergies", target_system="http://snomed.info/sct")
    assert [(t.code, t.relationship) for t in found] == [("716186003", "equivalent")]


def test_expand_filter_count_language(term) -> None:
    vs = term.expand("http://hl7.org/fhir/ValueSet/administrative-gender", display_language="de")
    assert vs["resourceType"] == "ValueSet" and vs["expansion"]["total"] == 4
    assert {c["code"]: c["display"] for c in vs["expansion"]["contains"]}["female"] == "weiblich"
    vs = term.expand("urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.42.26", filter="aller", display_language="el")
    assert [c["code"] for c in vs["expansion"]["contains"]] == ["48765-2"]
    assert vs["expansion"]["contains"][0]["display"] == "Αλλεργίες και δυσανεξίες"
    vs = term.expand("urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.42.26", count=5, offset=5)
    assert vs["expansion"]["total"] == 18 and len(vs["expansion"]["contains"]) == 5
    from gateway.terminology import CannotExpand, UnknownResource

    with pytest.raises(CannotExpand):
        term.expand(IPS + "allergies-intolerances-uv-ips")
    with pytest.raises(UnknownResource):
        term.expand("http://example.org/ValueSet/none")


def test_versions_canonical(term) -> None:
    # IPS 1.1.0 and 2.0.0 may both be loaded; url alone means the newest
    rec = term.index.value_sets.get(IPS + "medication-uv-ips")
    assert rec is not None
    if term.index.value_sets.get(IPS + "medication-uv-ips", "1.1.0") is not None:
        assert rec.version == "2.0.0"
