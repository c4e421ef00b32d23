"""Fields whose FHIR element carries the meaning HL7 v2 gives them (the
HL7 V2-to-FHIR IG's segment maps and concept maps), checked on small whole
messages: a unit sent as text, address validity dates, the admission type,
patient classes with no v3 equivalent, allergen types, procedure performer
and reason, specimen accession number, ordering provider."""

from __future__ import annotations

from typing import Any

from tests.mapping.test_datatypes import conv, one, seg

PID = seg("PID", {1: "1", 3: "P1^^^HOSP&1.2.3.4&ISO^MR", 5: "Doe^Jane", 7: "19800115", 8: "F"})


def _findings(c: Any) -> list[str]:
    return [f"{i.get('location', [''])[0]}: {i['diagnostics']}" for i in c.outcome()["issue"]]


def _observation(units: str) -> dict[str, Any]:
    c = conv(PID + seg("OBR", {1: "1", 3: "F1", 4: "2345-7^Glucose^LN", 25: "F"})
             + seg("OBX", {1: "1", 2: "NM", 3: "2345-7^Glucose^LN", 5: "5.4", 6: units, 11: "F"}),
             "ORU^R01")
    return one(c.resources, "Observation")


def test_a_unit_sent_as_text_only_is_kept() -> None:
    assert _observation("^mmol/L")["valueQuantity"] == {
        "value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
    assert _observation("^per big box")["valueQuantity"] == {"value": 5.4, "unit": "per big box"}


def test_iso_and_ansi_units_are_ucum_only_where_the_spelling_is_known() -> None:
    kept = _observation("MEQ/L^^ISO+")["valueQuantity"]
    assert kept == {"value": 5.4, "unit": "MEQ/L"}  # not a UCUM code (that is meq/L)
    assert _observation("mg/dL^^UCUM")["valueQuantity"]["code"] == "mg/dL"


def test_address_dates_are_its_effective_and_expiration_dates() -> None:
    pid = seg("PID", {1: "1", 3: "P1^^^HOSP&1.2.3.4&ISO^MR", 5: "Doe^Jane",
                      11: "Main St 1^^Leuven^^3000^BEL^H^^^^^^20200101^20231231"})
    address = one(conv(pid).resources, "Patient")["address"][0]
    assert address["period"] == {"start": "2020-01-01", "end": "2023-12-31"}
    old = seg("PID", {1: "1", 3: "P1^^^HOSP&1.2.3.4&ISO^MR", 5: "Doe^Jane",
                      11: "Main St 1^^Leuven^^3000^BEL^H^^^^^20000110&20000120"})  # v2.3: XAD-12 range
    assert one(conv(old).resources, "Patient")["address"][0]["period"] == {
        "start": "2000-01-10", "end": "2000-01-20"}


def test_admission_type_is_the_encounter_type_and_patient_classes_keep_their_meaning() -> None:
    enc = one(conv(PID + seg("PV1", {1: "1", 2: "R", 4: "L", 19: "V1"})).resources, "Encounter")
    assert enc["type"] == [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0007",
                                        "code": "L"}]}]
    assert "priority" not in enc  # labour and delivery is not "elective"
    assert enc["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0004", "code": "R",
                            "display": "Recurring patient"}  # not an inpatient stay
    inpatient = one(conv(PID + seg("PV1", {1: "1", 2: "I", 19: "V2"}), ctrl="C2").resources, "Encounter")
    assert inpatient["class"]["code"] == "IMP"


def test_allergen_types_without_a_category_get_none() -> None:
    def category(kind: str) -> Any:
        c = conv(PID + seg("AL1", {1: "1", 2: kind, 3: "^Latex"}), ctrl=kind)
        return one(c.resources, "AllergyIntolerance").get("category")
    assert category("DA") == ["medication"] and category("FA") == ["food"]
    assert category("AA") == ["biologic"]  # animal allergy
    assert category("MA") is None and category("MC") is None  # miscellaneous: not a drug allergy


def test_procedure_practitioner_performs_and_associated_diagnosis_is_the_reason() -> None:
    c = conv(PID + seg("PR1", {1: "1", 3: "76164006^Biopsy of colon^SCT", 5: "20240101",
                               12: "1234^Surgeon^Sam", 15: "799008^Sigmoid colon ulcer^SCT"}))
    proc = one(c.resources, "Procedure")
    assert proc["reasonCode"] == [{"coding": [{"system": "http://snomed.info/sct", "code": "799008",
                                               "display": "Sigmoid colon ulcer"}]}]
    actor = proc["performer"][0]["actor"]
    assert actor["display"] == "Sam Surgeon" and actor["reference"].startswith("Practitioner/")


def test_specimen_accession_number_and_the_ordering_provider_of_a_result() -> None:
    c = conv(PID + seg("OBR", {1: "1", 3: "F1", 4: "2345-7^Glucose^LN", 16: "555^Primary^Pat", 25: "F"})
             + seg("OBX", {1: "1", 2: "NM", 3: "2345-7^Glucose^LN", 5: "5.4", 11: "F"})
             + seg("SPM", {1: "1", 2: "S1", 4: "BLD^Blood^HL70487", 30: "ACC-30", 31: "OTHER-31"}),
             "ORU^R01")
    specimen = one(c.resources, "Specimen")
    assert specimen["accessionIdentifier"]["value"] == "ACC-30"
    both = conv(PID + seg("OBR", {1: "1", 3: "F1", 4: "2345-7^Glucose^LN", 25: "F"})
                + seg("SPM", {1: "1", 2: "PL-1^FI-1", 4: "BLD^Blood^HL70487"}), "ORU^R01", ctrl="C2")
    assert [i["value"] for i in one(both.resources, "Specimen")["identifier"]] == ["FI-1"]
    assert any("placer specimen id 'PL-1' not kept" in f for f in _findings(both))  # reported
    assert "OTHER-31" in [i["value"] for i in specimen["identifier"]]
    report = one(c.resources, "DiagnosticReport")
    assert "performer" not in report  # the ordering provider did not perform the report
    assert any(f.startswith("OBR[1]-16") and "not mapped" in f for f in _findings(c))  # reported, not lost
