"""POST /ingest and the FHIR reads over real HTTP (FastAPI's TestClient) on
a real SQLite store."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import sample

V2 = {"Content-Type": "x-application/hl7-v2+er7"}


def _locations(body: dict[str, Any]) -> list[str]:
    return [e["response"]["location"] for e in body["entry"]]


def test_ingest_stores_and_answers_references_and_outcome(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/ingest", content=sample("ADT-A01-01.hl7"), headers=V2)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "transaction-response"
    locations = _locations(body)
    assert any(loc.startswith("Patient/") and loc.endswith("/_history/1") for loc in locations)
    prov = [e for e in body["entry"] if e["response"]["location"].startswith("Provenance/")][0]
    outcome = prov["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(i.get("location") == ["GT1[1]"] for i in outcome["issue"])
    # every reference can be read back
    for loc in locations:
        rtype, rid = loc.split("/")[:2]
        got = client.get(f"/fhir/{rtype}/{rid}")
        assert got.status_code == 200
        assert got.json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize("ctype", ["application/hl7-v2", "text/plain; charset=utf-8",
                                   "x-application/hl7-v2+er7"])
def test_accepted_content_types(client, ctype: str) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/ingest", content=sample("ORU-R01-RMGEAD.hl7"), headers={"Content-Type": ctype})
    assert r.status_code in (200, 201)


def test_same_message_twice_stores_one_set(client) -> None:  # type: ignore[no-untyped-def]
    data = sample("VXU.hl7")
    first = client.post("/ingest", content=data, headers=V2)
    store = client.app.state.store
    before = (store.counts(), store.ingestion_count())
    second = client.post("/ingest", content=data.replace(b"\n", b"\r"), headers=V2)
    after = (store.counts(), store.ingestion_count())
    assert first.status_code == 201 and second.status_code == 200
    assert second.headers["X-Ingestion-Replay"] == "true"
    assert second.headers["X-Ingestion-Id"] == first.headers["X-Ingestion-Id"]
    assert before == after
    assert _locations(first.json()) == _locations(second.json())


def test_update_of_the_same_admission_lands_on_the_same_encounter(client) -> None:  # type: ignore[no-untyped-def]
    admit = (b"MSH|^~\\&|ADT|HOSP|GW|GW|20240301080000+0100||ADT^A01|M1|P|2.5.1\r"
             b"PID|1||555^^^HOSP^MR||Kowalski^Jan||19700101|M\r"
             b"PV1|1|I|W1^101^A||||||||||||||||V1^^^HOSP^VN|||||||||||||||||||||||||20240301080000+0100\r")
    discharge = admit.replace(b"ADT^A01|M1", b"ADT^A03|M2").replace(
        b"20240301080000+0100\r", b"20240301080000+0100|20240305120000+0100\r")
    a = client.post("/ingest", content=admit, headers=V2).json()
    d = client.post("/ingest", content=discharge, headers=V2).json()
    enc_a = [x for x in _locations(a) if x.startswith("Encounter/")][0]
    enc_d = [x for x in _locations(d) if x.startswith("Encounter/")][0]
    assert enc_a.split("/")[1] == enc_d.split("/")[1]
    assert enc_d.endswith("/_history/2")
    rid = enc_a.split("/")[1]
    enc = client.get(f"/fhir/Encounter/{rid}").json()
    assert enc["status"] == "finished" and enc["period"]["end"] == "2024-03-05T12:00:00+01:00"
    history = client.get(f"/fhir/Encounter/{rid}/_history").json()
    assert history["total"] == 2, history
    assert client.get(f"/fhir/Encounter/{rid}/_history/1").json()["status"] == "in-progress"
    # the Patient did not change: no new version
    pat = [x for x in _locations(d) if x.startswith("Patient/")][0]
    assert pat.endswith("/_history/1")


def test_a_lab_message_does_not_erase_demographics(client) -> None:  # type: ignore[no-untyped-def]
    adt = (b"MSH|^~\\&|ADT|HOSP|GW|GW|20240301080000+0100||ADT^A04|A1|P|2.5.1\r"
           b"PID|1||777^^^HOSP^MR||Rossi^Anna||19800101|F|||Via Roma 1^^Roma^^00100^ITA\r")
    oru = (b"MSH|^~\\&|LAB|HOSP|GW|GW|20240302080000+0100||ORU^R01|L1|P|2.5.1\r"
           b"PID|1||777^^^HOSP^MR||Rossi^Anna\r"
           b"OBR|1||F1|2345-7^Glucose^LN\rOBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L|||||F\r")
    a = client.post("/ingest", content=adt, headers=V2).json()
    client.post("/ingest", content=oru, headers=V2)
    pid = [x for x in _locations(a) if x.startswith("Patient/")][0].split("/")[1]
    patient = client.get(f"/fhir/Patient/{pid}").json()
    assert patient["address"][0]["city"] == "Roma" and patient["birthDate"] == "1980-01-01"


def test_merge_old_id_still_resolves(client) -> None:  # type: ignore[no-untyped-def]
    old = (b"MSH|^~\\&|Ntierprise|Ntierprise Clinic|GW|GW|20190423150000+0215||ADT^A04|X1|P|2.8\r"
           b"PID|1||56789^^^BCBS^MR||Test^Old||20180205|F\r")
    first = client.post("/ingest", content=old, headers=V2).json()
    old_id = [x for x in _locations(first) if x.startswith("Patient/")][0].split("/")[1]
    client.post("/ingest", content=sample("ADT-A40-01.hl7"), headers=V2)
    got = client.get(f"/fhir/Patient/{old_id}").json()
    assert got["active"] is False and got["link"][0]["type"] == "replaced-by"
    assert got["name"][0]["family"] == "Test" and got["meta"]["versionId"] == "2"
    survivor = client.get("/fhir/" + got["link"][0]["other"]["reference"]).json()
    assert survivor["link"][0] == {"other": {"reference": f"Patient/{old_id}"}, "type": "replaces"}


@pytest.mark.parametrize(
    "body, ctype, status, location",
    [
        (b"PID|1||123\r", "x-application/hl7-v2+er7", 400, "MSH[1]"),
        (b"PID|1||123\r", "application/octet-stream", 415, "byte 0"),
        (b"MSH|^~\\&|A|B|C|D|20240101||\rPID|1\r", "x-application/hl7-v2+er7", 400, "MSH[1]-9"),
        (b"MSH|^~\r", "x-application/hl7-v2+er7", 400, "MSH[1]-2"),
        (b"   ", "x-application/hl7-v2+er7", 400, None),
        (b"{}", "application/json", 415, "Content-Type"),
    ],
)
def test_bad_input_gets_a_located_operation_outcome(client, body: bytes, ctype: str, status: int,  # type: ignore[no-untyped-def]
                                                   location: str | None) -> None:
    r = client.post("/ingest", content=body, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    if location:
        assert outcome["issue"][0]["location"] == [location]
    assert client.app.state.store.ingestion_count() == 0


def test_body_too_large_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    big = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5\r" + b"NTE|1||" + b"x" * (21 * 1024 * 1024)
    r = client.post("/ingest", content=big, headers=V2)
    assert r.status_code == 413 and r.json()["resourceType"] == "OperationOutcome"


def test_strict_mode_refuses_what_hl7apy_finds_wrong(client) -> None:  # type: ignore[no-untyped-def]
    bad = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01^ADT_A01|X|P|2.5\rPV1|1|I\rPID|1||1^^^H^MR||Doe^J\r"
    assert client.post("/ingest", content=bad, headers=V2).status_code == 201
    r = client.post("/ingest?strict=true", content=bad.replace(b"|X|", b"|Y|"), headers=V2)
    assert r.status_code == 400 and "strict" in r.json()["issue"][0]["diagnostics"]


def test_strict_mode_accepts_a_message_that_keeps_to_the_standard(client) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    ok = (Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2" / "fhir-converter"
          / "ADT01-23.hl7").read_bytes()
    r = client.post("/ingest?strict=true", content=ok, headers=V2)
    assert r.status_code == 201, r.text


def test_reads_unknown_and_bad(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/fhir/Patient/does-not-exist").status_code == 404
    r = client.get("/fhir/Patient/bad$id")
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/patient/x").status_code == 400
    assert client.get("/nowhere").json()["resourceType"] == "OperationOutcome"


def test_health_and_openapi(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert "/ingest" in spec["paths"]
