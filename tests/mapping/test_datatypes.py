"""Value transforms, exercised through whole (small) messages, so that the
mapping files are part of what is tested."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.mapping.hl7v2.datatypes import hl7_datetime
from gateway.pipeline import convert

MSH = "MSH|^~\\&|APP|FAC|RAPP|RFAC|20240102101500+0100||{type}|{ctrl}|P|2.5.1\r"


def one(resources: list[dict[str, Any]], rtype: str) -> dict[str, Any]:
    found = [r for r in resources if r["resourceType"] == rtype]
    assert len(found) == 1, f"{len(found)} {rtype}"
    return found[0]


def seg(name: str, fields: dict[int, str]) -> str:
    """One segment from {field number: value}."""
    values = [""] * (max(fields) + 1)
    values[0] = name
    for n, v in fields.items():
        values[n] = v
    return "|".join(values) + "\r"


def conv(segments: str, type_: str = "ADT^A01", ctrl: str = "C1"):  # type: ignore[no-untyped-def]
    return convert((MSH.format(type=type_, ctrl=ctrl) + segments).encode())


@pytest.mark.parametrize(
    "text, default_tz, expected",
    [
        ("2024", None, "2024"),
        ("202403", None, "2024-03"),
        ("20240315", None, "2024-03-15"),
        ("202403151030+0100", None, "2024-03-15T10:30:00+01:00"),
        ("20240315103005.123-0500", None, "2024-03-15T10:30:05.123-05:00"),
        ("2024031510", "+0200", "2024-03-15T10:00:00+02:00"),
        ("20240315103000+0000", None, "2024-03-15T10:30:00+00:00"),
    ],
)
def test_hl7_datetime(text: str, default_tz: str | None, expected: str) -> None:
    value, problem = hl7_datetime(text, default_tz)
    assert value == expected and problem is None


def test_time_without_any_zone_is_cut_to_the_date_and_said() -> None:
    value, problem = hl7_datetime("202403151030", None)
    assert value == "2024-03-15" and problem and "time zone" in problem


@pytest.mark.parametrize("bad", ["2024-03-15", "20241315", "20240230x", "abc", "20240315256000"])
def test_bad_dates(bad: str) -> None:
    value, problem = hl7_datetime(bad, None)
    assert value is None and problem


def test_patient_demographics() -> None:
    pid = seg("PID", {
        1: "1", 3: "123^^^HOSP&1.2.3.4&ISO^MR~987654321^^^USSSA^SS",
        5: "Garcia&&&&Lopez^Maria^Elena^Jr^Dr^^L", 6: "Perez", 7: "19800115", 8: "F",
        11: "Calle Mayor 1^Piso 2^Madrid^^28013^ESP^H",
        13: "^PRN^PH^^34^91^5551234~^NET^Internet^maria@example.org", 14: "^WPN^CP^^^^6001234",
        15: "es^Spanish^ISO639", 24: "N", 28: "ESP^Spain^ISO3166_1", 29: "20240101+0100", 30: "Y"})
    c = conv(pid)
    p = one(c.resources, "Patient")
    assert p["identifier"][0] == {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
        "system": "urn:oid:1.2.3.4", "value": "123"}
    assert p["identifier"][1]["system"] == "http://hl7.org/fhir/sid/us-ssn"
    name = p["name"][0]
    assert name["use"] == "official" and name["family"] == "Garcia"
    assert name["given"] == ["Maria", "Elena"] and name["prefix"] == ["Dr"] and name["suffix"] == ["Jr"]
    assert name["_family"]["extension"][0]["valueString"] == "Lopez"
    assert p["birthDate"] == "1980-01-15" and p["gender"] == "female"
    assert p["address"][0] == {"use": "home", "line": ["Calle Mayor 1", "Piso 2"], "city": "Madrid",
                               "postalCode": "28013", "country": "ESP"}
    telecom = {t["value"]: t for t in p["telecom"]}
    assert telecom["+34 (91) 5551234"]["use"] == "home"
    assert telecom["maria@example.org"]["system"] == "email"
    assert telecom["6001234"] == {"system": "phone", "use": "mobile", "value": "6001234"}
    assert p["communication"][0]["language"]["coding"][0]["code"] == "es"
    assert p["deceasedDateTime"] == "2024-01-01"
    assert "deceasedBoolean" not in p
    assert p["multipleBirthBoolean"] is False
    mothers = [e for e in p["extension"] if e["url"].endswith("patient-mothersMaidenName")]
    assert mothers[0]["valueString"] == "Perez"
    nationality = [e for e in p["extension"] if e["url"].endswith("patient-nationality")]
    assert nationality[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "ESP"


def test_unknown_table_code_is_reported_not_invented() -> None:
    c = conv("PID|1||1^^^A^MR||Doe^J||19800101|Q\r")
    assert "gender" not in one(c.resources, "Patient")
    assert any(i.location == "PID[1]-8" and "not in table" in i.message for i in c.issues)


def test_coded_value_keeps_original_and_adds_translation() -> None:
    c = conv("PID|1||1^^^A^MR||Doe^J\rPV1|1|I\rAL1|1|DA|70618^Penicillin^RXNORM|SV|hives|20200101\r")
    a = one(c.resources, "AllergyIntolerance")
    assert a["code"]["coding"] == [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                    "code": "70618", "display": "Penicillin"}]
    assert a["category"] == ["medication"] and a["criticality"] == "high"
    assert a["reaction"][0]["manifestation"][0]["text"] == "hives"
    enc = one(c.resources, "Encounter")
    assert enc["class"]["code"] == "IMP"


def test_observation_value_types() -> None:
    c = conv(
        "PID|1||1^^^A^MR||Doe^J\r"
        "OBR|1|P1|F1^LAB|24331-1^Lipid panel^LN|||20240101080000+0100||||||||||||||||F\r"
        "OBX|1|NM|2093-3^Cholesterol^LN||185|mg/dL^^UCUM|<200|N|||F\r"
        "OBX|2|SN|2345-7^Glucose^LN||>^100|mg/dl|70-99|H|||F\r"
        "OBX|3|SN|5000-0^Titer^LN||^1^:^64||||||F\r"
        "OBX|4|CWE|600-7^Culture^LN||27268008^Salmonella^SCT||||||F\r"
        "OBX|5|TX|8251-1^Note^LN||line one~line two||||||F\r"
        "OBX|6|DT|8665-2^LMP^LN||20231201||||||F\r"
        "OBX|7|ED|11502-2^Report^LN||^application^pdf^Base64^JVBERi0=||||||F\r",
        type_="ORU^R01^ORU_R01",
    )
    obs = {o["code"]["coding"][0]["code"]: o for o in c.resources if o["resourceType"] == "Observation"}
    assert obs["2093-3"]["valueQuantity"] == {"value": 185, "unit": "mg/dL",
                                              "system": "http://unitsofmeasure.org", "code": "mg/dL"}
    assert obs["2093-3"]["referenceRange"][0] == {"text": "<200", "high": {"value": 200}}
    assert obs["2093-3"]["interpretation"][0]["coding"][0]["code"] == "N"
    assert obs["2345-7"]["valueQuantity"]["comparator"] == ">"
    assert obs["2345-7"]["valueQuantity"]["code"] == "mg/dL"  # known spelling, mapped to UCUM
    assert obs["5000-0"]["valueRatio"] == {"numerator": {"value": 1}, "denominator": {"value": 64}}
    assert obs["600-7"]["valueCodeableConcept"]["coding"][0]["system"] == "http://snomed.info/sct"
    assert obs["8251-1"]["valueString"] == "line one\nline two"
    assert obs["8665-2"]["valueDateTime"] == "2023-12-01"
    att = obs["11502-2"]["extension"][0]
    assert att["valueAttachment"] == {"contentType": "application/pdf", "data": "JVBERi0="}
    report = one(c.resources, "DiagnosticReport")
    assert len(report["result"]) == 7
    assert report["effectiveDateTime"] == "2024-01-01T08:00:00+01:00"
    assert all(o["effectiveDateTime"] == report["effectiveDateTime"] for o in obs.values())


def test_unmapped_fields_and_segments_are_reported_with_locations() -> None:
    c = conv("PID|1||1^^^A^MR||Doe^J|||||||||||||||||||||||||||||||||||extra\r"
             "ZXY|1|site specific\rGT1|1||Guarantor^G\r")
    locations = {i.location: i for i in c.issues}
    assert "ZXY[1]" in locations and locations["ZXY[1]"].severity == "warning"
    assert locations["GT1[1]"].severity == "information"  # administrative segment
    assert any(loc and loc.startswith("PID[1]-") for loc in locations)


def test_message_type_without_a_mapping_converts_patient_and_reports_the_rest() -> None:
    c = conv("PID|1||77^^^A^MR||Doe^J\rPV1|1|O\rSCH|1|2\r", type_="BAR^P01")
    kinds = {r["resourceType"] for r in c.resources}
    assert {"Patient", "Encounter", "Provenance"} <= kinds
    assert any(i.location == "MSH[1]-9" for i in c.issues)
    assert any(i.location == "SCH[1]" for i in c.issues)


def test_an_order_becomes_a_service_request_with_its_status_priority_and_reasons() -> None:
    c = conv("PID|1||77^^^A^MR||Doe^J\rPV1|1|O\r"
             "ORC|CA|P-1^PLACER|F-1^FILLER||CA||||202401021030|||0042^Who^Ann\r"
             "TQ1|1||||||202401031200||S\r"
             "OBR|1|P-1^PLACER|F-1^FILLER|24725-4^CT Head^LN\r"
             "NTE|1||fasting\r"
             "DG1|1||S06.9^Intracranial injury^I10\r"
             "OBX|1|NM|8867-4^Heart rate^LN||72|/min^^UCUM|||||F\r", type_="OML^O21")
    sr = next(r for r in c.resources if r["resourceType"] == "ServiceRequest")
    assert sr["status"] == "revoked" and sr["intent"] == "order" and sr["priority"] == "stat"
    assert sr["code"]["coding"][0]["code"] == "24725-4"
    assert [i["type"]["coding"][0]["code"] for i in sr["identifier"]][:2] == ["PLAC", "FILL"]
    assert sr["authoredOn"].startswith("2024-01-02T10:30")
    assert sr["occurrenceDateTime"].startswith("2024-01-03T12:00")
    assert sr["requester"]["display"].startswith("Ann")
    assert sr["note"] == [{"text": "fasting"}]
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in c.resources}
    assert by_ref[sr["reasonReference"][0]["reference"]]["resourceType"] == "Condition"
    assert by_ref[sr["supportingInfo"][0]["reference"]]["code"]["coding"][0]["code"] == "8867-4"
    assert not any(i.location == "MSH[1]-9" for i in c.issues)  # a mapped message type


def test_two_results_with_one_code_and_sub_id_in_an_order_stay_two_observations() -> None:
    """The standard wants OBX-3 + OBX-4 unique within an order; senders repeat them (an
    image and its reading). Both values are kept, the repeat is reported, and a resend
    of the same message gives the same ids."""
    segments = ("PID|1||77^^^A^MR||Doe^J\rOBR|1|P1^ORD|F1^LAB|24331-1^Lipid^LN\r"
                "OBX|1|NM|2093-3^Chol^LN|1|180|mg/dL^^UCUM|||||F\r"
                "OBX|2|NM|2093-3^Chol^LN|1|190|mg/dL^^UCUM|||||F\r")
    c = conv(segments, type_="ORU^R01")
    obs = [r for r in c.resources if r["resourceType"] == "Observation"]
    assert sorted(o["valueQuantity"]["value"] for o in obs) == [180, 190]
    report = next(r for r in c.resources if r["resourceType"] == "DiagnosticReport")
    assert len(report["result"]) == 2
    assert any(i.location == "OBX[2]" and i.severity == "warning" and "same key" in i.message
               for i in c.issues)
    again = conv(segments, type_="ORU^R01", ctrl="C2")
    assert sorted(o["id"] for o in obs) == sorted(
        r["id"] for r in again.resources if r["resourceType"] == "Observation")


def test_a_scheduling_message_becomes_an_appointment_with_its_participants() -> None:
    segments = ("SCH|A-1^SCHED|F-9^FILL||||Add|ROUTINE^Routine visit|FOLLOWUP\r"
                "TQ1|1||||||202403011030+0100|202403011100+0100\r"
                "NTE|1||Bring your medication list\r"
                "PID|1||77^^^A^MR||Doe^J\r"
                "RGS|1\r"
                "AIP|1||0042^Who^Ann|GP^General practitioner^L||||||||Booked\r"
                "AIL|1||WARD^12^1^CLINIC|||||||||Booked\r")
    booked = conv(segments, type_="SIU^S12")
    appt = next(r for r in booked.resources if r["resourceType"] == "Appointment")
    patient = next(r for r in booked.resources if r["resourceType"] == "Patient")
    assert appt["status"] == "booked"
    assert appt["start"] == "2024-03-01T10:30:00+01:00" and appt["end"] == "2024-03-01T11:00:00+01:00"
    assert appt["reasonCode"][0]["coding"][0]["code"] == "ROUTINE"
    assert appt["comment"] == "Bring your medication list"
    actors = [p["actor"]["reference"].split("/")[0] for p in appt["participant"]]
    assert actors == ["Patient", "Practitioner", "Location"]
    assert appt["participant"][0]["actor"]["reference"] == f"Patient/{patient['id']}"
    assert {p["status"] for p in appt["participant"]} == {"accepted"}
    # the cancellation of the same appointment: same resource, cancelled
    cancelled = conv(segments, type_="SIU^S15", ctrl="C2")
    again = next(r for r in cancelled.resources if r["resourceType"] == "Appointment")
    assert again["id"] == appt["id"] and again["status"] == "cancelled"


def test_a_referral_becomes_a_service_request_with_its_reasons() -> None:
    c = conv("RF1|A|S|Rad||O|R-1^GP|20240301|20240401||S^Second opinion^HL70336\r"
             "PID|1||77^^^A^MR||Doe^J\r"
             "DG1|1||K63.3^Ulcer of intestine^I10\r", type_="REF^I12")
    sr = next(r for r in c.resources if r["resourceType"] == "ServiceRequest")
    assert sr["status"] == "active" and sr["priority"] == "stat" and sr["intent"] == "order"
    assert sr["category"][0]["coding"][0]["code"] == "3457005"  # a patient referral
    assert sr["identifier"][0]["value"] == "R-1" and sr["authoredOn"] == "2024-03-01"
    assert sr["occurrencePeriod"] == {"end": "2024-04-01"}
    assert sr["reasonCode"][0]["coding"][0]["code"] == "S"
    condition = next(r for r in c.resources if r["resourceType"] == "Condition")
    assert sr["reasonReference"] == [{"reference": f"Condition/{condition['id']}"}]
