"""Every HL7 v2 sample in fixtures/ converts, and what it converts to is
checked: by FHIR R4(B) model validation, referential integrity, golden
outputs (reviewed by hand, regenerated with UPDATE_GOLDEN=1), and field by
field against the source message."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.pipeline import convert
from tests.conftest import hl7v2_samples, refs, sample

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SAMPLES = hl7v2_samples()


def _conv(name: str):  # type: ignore[no-untyped-def]
    return convert(sample(name), now=NOW)


def _all(resources: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == rtype]


def _one(resources: list[dict[str, Any]], rtype: str) -> dict[str, Any]:
    found = _all(resources, rtype)
    assert len(found) == 1, f"expected one {rtype}, got {len(found)}"
    return found[0]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_converts_to_valid_r4_resources(path: Path) -> None:
    conv = convert(path.read_bytes(), now=NOW)
    ids = [f"{r['resourceType']}/{r['id']}" for r in conv.resources]
    assert len(ids) == len(set(ids)), "duplicate resource ids"
    for res in conv.resources:
        get_fhir_model_class(res["resourceType"]).model_validate(res)
        assert res["meta"]["source"].startswith("urn:hl7v2:")
    # every reference points at a resource of the same Bundle
    for res in conv.resources:
        for ref in refs(res):
            assert ref in ids, f"{res['resourceType']} refers to missing {ref}"
    prov = _one(conv.resources, "Provenance")
    assert {t["reference"] for t in prov["target"]} == set(ids) - {f"Provenance/{prov['id']}"}
    assert not any(i.severity in ("error", "fatal") for i in conv.issues)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_matches_its_reviewed_golden_output(path: Path) -> None:
    golden = path.with_suffix(".expected.json")
    actual = convert(path.read_bytes(), now=NOW).bundle
    if os.environ.get("UPDATE_GOLDEN") or not golden.exists():
        golden.write_bytes(orjson.dumps(actual, option=orjson.OPT_INDENT_2) + b"\n")
    assert actual == orjson.loads(golden.read_bytes())


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_conversion_is_deterministic_and_ids_are_stable(path: Path) -> None:
    data = path.read_bytes()
    a = convert(data, now=NOW)
    b = convert(data.replace(b"\n", b"\r\n"), now=NOW)  # other segment ends: same message
    assert a.digest == b.digest
    assert a.to_json() == b.to_json()


def test_adt_a01_field_by_field() -> None:
    c = _conv("ADT-A01-01.hl7")
    r = c.resources
    p = _one(r, "Patient")
    # PID-3: PATID1234^5^M11^test1&2.16.1&HCD^MR^GOOD HEALTH HOSPITAL~123456789^^^USSSA^SS
    assert p["identifier"][0]["value"] == "PATID1234"
    assert p["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123456789"}.items() <= p["identifier"][1].items()
    # PID-5: EVERYMAN&&&&Aniston^ADAM^A^III^Dr.^MD^D
    name = p["name"][0]
    assert name["family"] == "EVERYMAN" and name["given"] == ["ADAM", "A"]
    assert name["prefix"] == ["Dr."] and name["suffix"] == ["III", "MD"] and name["use"] == "usual"
    # PID-7: 198808181126+0215 -> the date, and the time in patient-birthTime
    assert p["birthDate"] == "1988-08-18" and p["gender"] == "male"
    assert p["_birthDate"]["extension"][0]["valueDateTime"] == "1988-08-18T11:26:00+02:15"
    enc = _one(r, "Encounter")
    assert enc["class"]["code"] == "AMB" or enc["class"]["code"] == "PRENC"  # PV1-2 'P' -> pre-admission
    assert enc["class"]["code"] == "PRENC"
    assert enc["status"] == "in-progress"
    assert enc["subject"]["reference"] == f"Patient/{p['id']}"
    allergy = _one(r, "AllergyIntolerance")
    # AL1|1|EA|P^PENICILLIN^ICDO|MI|CODE16|20210824
    assert allergy["code"]["coding"][0]["code"] == "P"
    assert allergy["code"]["coding"][0]["display"] == "PENICILLIN"
    assert allergy["category"] == ["environment"] and allergy["criticality"] == "low"
    assert allergy["reaction"][0]["manifestation"][0]["text"] == "CODE16"
    assert allergy["onsetDateTime"] == "2021-08-24"
    cond = _one(r, "Condition")
    # DG1|1|I9|422504002^Ischemic stroke(disorder)^SCT|Stroke|20040125114025+0420|A
    assert cond["code"]["coding"][0] == {"system": "http://snomed.info/sct", "code": "422504002",
                                         "display": "Ischemic stroke(disorder)"}
    assert cond["recordedDate"] == "2004-01-25T11:40:25+04:20"
    assert cond["verificationStatus"]["coding"][0]["code"] == "provisional"
    related = _one(r, "RelatedPerson")
    assert related["name"][0]["family"] == "Evan"
    assert related["patient"]["reference"] == f"Patient/{p['id']}"
    coverage = _one(r, "Coverage")
    assert coverage["beneficiary"]["reference"] == f"Patient/{p['id']}"
    payor = coverage["payor"][0]
    assert payor["display"] == "Blue Cross Blue Shield of Texas"
    obs = _one(r, "Observation")
    assert obs["code"]["coding"][0]["code"] == "8867-4"
    assert obs["valueQuantity"]["value"] == 60  # first of 60~120; the second is reported
    assert any(i.location == "OBX[1]-5[2]" or (i.location or "").startswith("OBX[1]-5") for i in c.issues)
    procedure = _one(r, "Procedure")
    assert procedure["code"]["coding"][0]["code"] == "76164006"
    # segments with no mapping are reported, not dropped
    assert {i.location for i in c.issues} >= {"GT1[1]", "ACC[1]", "PDA[1]", "RF1[1]"}


def test_adt_a04_v23_with_bom() -> None:
    c = _conv("ADT04-251.hl7")
    r = c.resources
    # MSH-11 'T': training data, tagged on every resource and said
    assert all({"system": "http://terminology.hl7.org/CodeSystem/v2-0103", "code": "T",
                "display": "Training"} in res["meta"]["tag"] for res in r)
    assert any(i.location == "MSH[1]-11" for i in c.issues)
    p = _one(r, "Patient")
    assert p["name"][0] == {"family": "Doe", "given": ["Jane"]}
    assert p["birthDate"] == "1978-01-01" and p["gender"] == "female"
    enc = _one(r, "Encounter")
    assert enc["status"] == "arrived" and enc["class"]["code"] == "EMER"
    assert enc["period"]["start"] == "2019-05-04T18:12:05+07:00"
    nk = _one(r, "RelatedPerson")
    assert nk["relationship"][0]["coding"][0]["code"] == "SPS"
    assert {t["value"] for t in nk["telecom"]} == {"(130) 724-0433", "(330) 274-8214"}


def test_adt_a40_merge_links_both_patients() -> None:
    r = _conv("ADT-A40-01.hl7").resources
    patients = {pt["identifier"][0]["value"]: pt for pt in _all(r, "Patient")}
    new, old = patients["12345"], patients["56789"]
    assert old["active"] is False
    assert old["link"] == [{"other": {"reference": f"Patient/{new['id']}"}, "type": "replaced-by"}]
    assert new["link"] == [{"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"}]


def test_oru_r01_results_with_units_ranges_and_flags() -> None:
    r = _conv("ORU-R01-RMGEAD.hl7").resources
    report = _one(r, "DiagnosticReport")
    obs = _one(r, "Observation")
    assert report["result"] == [{"reference": f"Observation/{obs['id']}"}]
    assert report["code"]["coding"][0]["code"] == "15545" and report["status"] == "final"
    # OBX|1|SN|1554-5^GLUCOSE^POST 12H CFST:MCNC:PT:SER/PLAS:QN||^182|mg/dl|70_105|H|||F
    assert obs["valueQuantity"] == {"value": 182, "unit": "mg/dl", "system": "http://unitsofmeasure.org",
                                    "code": "mg/dL"}
    assert obs["referenceRange"][0]["low"] == {"value": 70}
    assert obs["referenceRange"][0]["high"] == {"value": 105}
    assert obs["interpretation"][0]["coding"][0]["code"] == "H"
    assert obs["status"] == "final"
    assert report["effectiveDateTime"] == "2002-02-15T07:30:00+06:00"


def test_oru_r01_specimen_and_groups() -> None:
    c = _conv("ORU-R01-01.hl7")
    r = c.resources
    report = _one(r, "DiagnosticReport")
    specimen = _one(r, "Specimen")
    assert report["specimen"] == [{"reference": f"Specimen/{specimen['id']}"}]
    assert specimen["type"]["coding"][0]["code"] == "ASERU"
    observations = {o["id"]: o for o in _all(r, "Observation")}
    in_report = {ref["reference"].split("/")[1] for ref in report["result"]}
    assert in_report <= set(observations)
    # the CWE result of the order: Salmonella (SNOMED CT)
    salmonella = [o for o in observations.values() if "valueCodeableConcept" in o]
    assert salmonella[0]["valueCodeableConcept"]["coding"][0]["code"] == "27268008"
    # an ED OBX without an observation identifier cannot become an Observation: reported
    assert any(i.location == "OBX[2]" for i in c.issues)


def test_vxu_v04_immunizations() -> None:
    r = _conv("VXU.hl7").resources
    imms = _all(r, "Immunization")
    assert len(imms) == 3
    tenivac = [i for i in imms if i["vaccineCode"]["coding"][0]["code"] == "49281-0215-88"][0]
    assert tenivac["vaccineCode"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/ndc"
    assert tenivac["status"] == "completed" and tenivac["primarySource"] is True
    assert tenivac["occurrenceDateTime"] == "2015-06-24"
    assert tenivac["doseQuantity"] == {"value": 0.5, "unit": "mL", "system": "http://unitsofmeasure.org",
                                       "code": "mL"}
    assert tenivac["lotNumber"] == "315841" and tenivac["expirationDate"] == "2015-12-16"
    assert tenivac["route"]["coding"][0]["code"] == "C28161"
    assert tenivac["site"]["coding"][0]["code"] == "RD"
    assert tenivac["manufacturer"]["display"] == "Sanofi Pasteur"
    historical = [i for i in imms if i["vaccineCode"]["coding"][0]["code"] == "88"]
    assert len(historical) == 2 and all(i["primarySource"] is False for i in historical)
    assert all("doseQuantity" not in i for i in historical)  # 999 = unknown amount
    # the OBX under the first RXA are part of that immunization
    obs = _all(r, "Observation")
    assert len(obs) == 4 and all(o["partOf"] == [{"reference": f"Immunization/{tenivac['id']}"}] for o in obs)
    p = _one(r, "Patient")
    assert any(t.get("system") == "email" and t["value"] == "Elise.Wong@isp.com" for t in p["telecom"])
    assert {"system": "phone", "value": "(406) 5557896", "use": "home"} in p["telecom"]


def test_rde_o11_medication_request() -> None:
    r = _conv("RDE-O11-01.hl7").resources
    mr = _one(r, "MedicationRequest")
    med = _one(r, "Medication")
    assert mr["medicationReference"]["reference"] == f"Medication/{med['id']}"
    assert mr["intent"] == "order" and mr["status"] == "active"
    assert mr["identifier"][0]["value"] == "1163422591"
    assert mr["authoredOn"] == "2019-11-04T06:27:26+02:15"
    assert med["code"]["coding"][0] == {"system": "http://hl7.org/fhir/sid/ndc", "code": "0143963401",
                                        "display": "200 ML BAG : NICARDIPINE IN NACL (ISO-OS) 40 MG/200 ML IV PGBK"}
    assert med["code"]["text"] == "niCARdipine (CARDENE) in NaCl IV infusion 40 mg/200 mL (0.2 mg/mL)"
    dose = mr["dosageInstruction"][0]
    assert dose["doseAndRate"][0]["doseQuantity"]["value"] == 5
    assert dose["route"]["coding"][0]["code"] == "IV"
    assert dose["timing"]["repeat"]["boundsPeriod"]["start"] == "2019-11-04T10:30:00+02:15"
    assert len(med["ingredient"]) == 1  # RXC under RXE (the RXC under RXO belongs to the order)


def test_rds_o13_dispense_points_at_its_prescription() -> None:
    r = _conv("RDS-O13-01.hl7").resources
    md = _one(r, "MedicationDispense")
    mr = _one(r, "MedicationRequest")
    assert md["authorizingPrescription"][0]["reference"] == f"MedicationRequest/{mr['id']}"
    # RXD-7 numbers the prescription: it identifies the order, not the dispense
    assert md["authorizingPrescription"][0]["identifier"]["value"] == "PN12345"
    assert md["quantity"]["value"] == 10
    assert md["whenHandedOver"] == "2020-12-12"
    assert md["status"] == "completed"
    assert md["performer"][0]["actor"]["display"].endswith("Smith")


def test_mdm_t02_document_text() -> None:
    r = _conv("MDM-T02-03.hl7").resources
    doc = _one(r, "DocumentReference")
    att = doc["content"][0]["attachment"]
    text = base64.b64decode(att["data"]).decode()
    lines = text.split("\n")
    assert len(lines) == 29
    assert lines[0] == "Toilet cylinder crackers model step-mother visor opening communication"
    assert lines[-1] == "Reminder shofar congo vibration mother-in-law bondsman suspect"
    assert att["contentType"].startswith("text/plain") and att["size"] == len(text.encode())
    assert doc["masterIdentifier"]["value"] == "2RWRVAJ627408"
    assert doc["docStatus"] == "preliminary"


def test_ppr_pc1_problem() -> None:
    r = _conv("PC1-Problem-Add-v2.3.1.hl7").resources
    cond = _one(r, "Condition")
    assert cond["code"]["coding"][0] == {"system": "http://hl7.org/fhir/sid/icd-9-cm", "code": "596.5",
                                         "display": "BLADDER DYSFUNCTION"}
    assert cond["category"][0]["coding"][0]["code"] == "problem-list-item"
    assert cond["onsetDateTime"] == "2004-06-29"
    assert cond["identifier"] == [{"value": "26744"}]


def test_message_without_version_converts_with_a_warning() -> None:
    c = convert(b"MSH|^~\\&|A|B|C|D|20220125||REF^I12|X1|P\rPID|1||9^^^H^MR||EVERYMAN^ADAM\r", now=NOW)
    assert any(i.location == "MSH[1]-12" and i.severity == "warning" for i in c.issues)
    assert _one(c.resources, "Patient")["name"][0]["family"] == "EVERYMAN"


def test_a_note_stays_with_the_observation_it_follows() -> None:
    """NTE after OBX 1 is OBX 1's note: OBX 2 (no note of its own) does not
    borrow it, nor the report's own note after OBR."""
    msg = ("MSH|^~\\&|LIS|LAB|GW|GW|20240301080000||ORU^R01^ORU_R01|N1|P|2.5.1\r"
           "PID|1||P1^^^LAB^MR||Doe^Jane||19800101|F\r"
           "OBR|1||F1|24331-1^Lipid panel^LN|||20240301080000|||||||||||||||||F\r"
           "NTE|1||fasting sample\r"
           "OBX|1|NM|2093-3^Cholesterol^LN||190|mg/dL|||||F\r"
           "NTE|1||repeated, haemolysed\r"
           "OBX|2|NM|2571-8^Triglyceride^LN||120|mg/dL|||||F\r").encode()
    conv = convert(msg, "hl7v2")
    obs = {o["code"]["coding"][0]["code"]: o for o in conv.resources if o["resourceType"] == "Observation"}
    assert [n["text"] for n in obs["2093-3"].get("note", [])] == ["repeated, haemolysed"]
    assert "note" not in obs["2571-8"]
    texts = orjson.dumps(conv.resources).decode()
    assert texts.count("fasting sample") == 1 and texts.count("repeated, haemolysed") == 1
