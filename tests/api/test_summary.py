"""IPS $summary over real HTTP: one document from several sources and
countries, each fact once, nothing dropped silently, confined to the caller."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from tests.conftest import bearer

V2 = {"Content-Type": "x-application/hl7-v2+er7"}
NATIONAL = "urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.1.3"  # a national id namespace

HOSPITAL_PT = (
    "MSH|^~\\&|SONHO|HSJ^2.16.620.1.101.10.1^ISO|GW|GW|20240301080000+0000||ADT^A01|PT1|P|2.5.1\r"
    f"PID|1||P-778^^^HSJ&2.16.620.1.101.10.1&ISO^MR~123456789^^^&{NATIONAL[8:]}&ISO^NI||"
    "Silva^Maria^^^^^L||19700512|F\r"
    "PV1|1|I|W1\r"
    "AL1|1|DA|PEN^Penicilina^L^91936005^Allergy to penicillin^SCT|SV|urticaria|20100101\r"
    "DG1|1||I10^Hipertensao^I10|Hypertension|20150101+0000|F\r"
    "DG1|2||E11^Diabetes^I10|Diabetes|20160101+0000|F|||||||||||||||D\r"
)
LAB_BE = (
    "MSH|^~\\&|LIS|UZB^2.16.56.1.1^ISO|GW|GW|20240310080000+0100||ORU^R01|BE1|P|2.5.1\r"
    f"PID|1||B-55^^^UZB&2.16.56.1.1&ISO^MR~123456789^^^&{NATIONAL[8:]}&ISO^NI||Silva^Maria||19700512|F\r"
    "OBR|1||L1|2345-7^Glucose^LN|||20240309080000+0100\r"
    "OBX|1|NM|2345-7^Glucose^LN||6.1|mmol/L^^UCUM|3.9-5.5|H|||F|||20240309080000+0100\r"
    "OBR|2||L2|2345-7^Glucose^LN|||20240301080000+0100\r"
    "OBX|1|NM|2345-7^Glucose^LN||5.2|mmol/L^^UCUM|3.9-5.5|N|||F|||20240301080000+0100\r"
)
ALLERGY_BE = (
    "MSH|^~\\&|EHR|UZB^2.16.56.1.1^ISO|GW|GW|20240311080000+0100||ADT^A08|BE2|P|2.5.1\r"
    f"PID|1||B-55^^^UZB&2.16.56.1.1&ISO^MR~123456789^^^&{NATIONAL[8:]}&ISO^NI||Silva^Maria||19700512|F\r"
    "AL1|1|DA|91936005^Allergy to penicillin^SCT|SV\r"
)
OTHER_CITIZEN = (
    "MSH|^~\\&|SONHO|HSJ^2.16.620.1.101.10.1^ISO|GW|GW|20240301080000+0000||ADT^A01|PT2|P|2.5.1\r"
    "PID|1||P-999^^^HSJ&2.16.620.1.101.10.1&ISO^MR||Costa^Joao^^^^^L||19800101|M\r"
    "AL1|1|FA|256349002^Peanut^SCT|SV\r"
)


def _load(client) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    ids = []
    for msg in (HOSPITAL_PT, LAB_BE, ALLERGY_BE, OTHER_CITIZEN):
        r = client.post("/ingest", content=msg.encode(), headers=V2)
        assert r.status_code == 201, r.text
        ids.append([e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                    if e["response"]["location"].startswith("Patient/")][0])
    return ids[0], ids[1], ids[3]


def _resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_summary_merges_sources_and_validates_structurally(client) -> None:  # type: ignore[no-untyped-def]
    pt, be, _ = _load(client)
    assert pt != be  # two sources, two Patients, linked by the national id
    linked = client.get(f"/fhir/Patient/{pt}").json()["link"]
    assert {"other": {"reference": f"Patient/{be}"}, "type": "seealso"} in linked

    r = client.get(f"/fhir/Patient/{pt}/$summary?_outcome=true")
    assert r.status_code == 200, r.text
    params = r.json()
    bundle = params["parameter"][0]["resource"]
    outcome = params["parameter"][1]["resource"]
    Bundle.model_validate(bundle)
    assert bundle["type"] == "document" and bundle["timestamp"] and bundle["identifier"]["value"]
    comp = bundle["entry"][0]["resource"]
    assert comp["resourceType"] == "Composition" and comp["subject"] == {"reference": f"Patient/{pt}"}
    sections = {s["code"]["coding"][0]["code"]: s for s in comp["section"]}
    # the required sections are always there
    assert {"11450-4", "48765-2", "10160-0"} <= set(sections)
    assert sections["10160-0"]["emptyReason"]["coding"][0]["code"] == "unavailable"
    # the penicillin allergy from Portugal and from Belgium: once, with both sources
    allergies = sections["48765-2"]["entry"]
    assert len(allergies) == 1
    prov = [p for p in _resources(bundle, "Provenance")
            if p["target"] == [allergies[0]]]
    assert len(prov) == 1 and len(prov[0]["entity"]) == 2
    # the diabetes diagnosis deleted at the source (DG1-21 'D') is left out and said
    problems = [e["reference"] for e in sections["11450-4"]["entry"]]
    assert len(problems) == 1
    assert any("entered in error" in i["diagnostics"] for i in outcome["issue"])
    # results: the latest glucose, the earlier value in the narrative
    results = sections["30954-2"]
    kinds = sorted(e["reference"].split("/")[0] for e in results["entry"])
    assert kinds == ["DiagnosticReport", "Observation"]  # the latest report and its result
    assert "6.1" in results["text"]["div"] and "5.2" in results["text"]["div"]
    # every reference resolves inside the document; fullUrls are unique
    full = [e["fullUrl"] for e in bundle["entry"]]
    assert len(full) == len(set(full))
    present = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    text = json.dumps(bundle)
    import re
    for ref in set(re.findall(r'"reference": "([A-Za-z]+/[A-Za-z0-9\-.]+)"', text)):
        assert ref in present, ref
    # everything about the patient refers to the document's Patient, not the linked one
    assert f"Patient/{be}" not in text
    assert r.headers["X-Summary-Errors"] == "0"


def test_summary_by_identifier_and_access(client) -> None:  # type: ignore[no-untyped-def]
    pt, _, other = _load(client)
    r = client.get(f"/fhir/Patient/$summary?identifier={NATIONAL}|123456789")
    assert r.status_code == 200 and r.json()["type"] == "document"
    citizen = bearer(client.app, patient=pt)
    assert client.get(f"/fhir/Patient/{pt}/$summary", headers=citizen).status_code == 200
    theirs = client.get(f"/fhir/Patient/{other}/$summary", headers=citizen)
    assert theirs.status_code == 404 and "Costa" not in theirs.text
    by_id = client.get("/fhir/Patient/$summary?identifier=urn:oid:2.16.620.1.101.10.1|P-999",
                       headers=citizen)
    assert by_id.status_code == 404
    assert client.get("/fhir/Patient/$summary").status_code == 400
    events = client.get(f"/fhir/AuditEvent?patient=Patient/{pt}", headers=citizen).json()
    assert any(e["resource"]["subtype"][0]["code"] == "operation" for e in events["entry"])


def test_conflicting_demographics_stay_two_patients(client) -> None:  # type: ignore[no-untyped-def]
    _load(client)
    conflict = ALLERGY_BE.replace("19700512|F", "19700513|F").replace("|BE2|", "|BE3|").replace(
        "B-55", "B-56")
    r = client.post("/ingest", content=conflict.encode(), headers=V2)
    assert r.status_code == 201
    prov = [e for e in r.json()["entry"] if e["response"]["location"].startswith("Provenance/")][0]
    issues = prov["response"]["outcome"]["issue"]
    assert any(i["code"] == "conflict" and "birthDate" in i["diagnostics"] for i in issues)
