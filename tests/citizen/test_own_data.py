"""The citizen's own data over HTTP: $everything, measurements and uploads
(with their refusals), kept apart in $summary."""

from __future__ import annotations

import base64

from gateway.api import citizen as citizen_api
from tests.citizen.helpers import citizen, entries, load

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
WEIGHT = {"resourceType": "Observation", "status": "final",
          "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                    "code": "vital-signs"}]}],
          "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
          "effectiveDateTime": "2024-05-01T08:00:00Z",
          "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}


def test_everything_is_the_whole_compartment_and_nothing_else(client) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    r = client.get(f"/fhir/Patient/{maria}/$everything", headers=citizen(client, maria))
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset" and bundle["total"] == len(bundle["entry"])
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "Condition", "AllergyIntolerance", "Observation"} <= kinds
    patients = {e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"}
    assert maria in patients and other not in patients and len(patients) >= 2  # the linked BE record
    assert other not in r.text
    assert client.get(f"/fhir/Patient/{other}/$everything", headers=citizen(client, maria)).status_code == 404


def test_citizen_adds_a_measurement(client) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    # the default citizen token reads and searches only
    r = client.post("/fhir/Observation", json={**WEIGHT, "subject": {"reference": f"Patient/{maria}"}},
                    headers=citizen(client, maria))
    assert r.status_code == 403
    me = citizen(client, maria, scope="patient/Observation.crs patient/*.rs")
    r = client.post("/fhir/Observation", json={**WEIGHT, "subject": {"reference": f"Patient/{other}"}}, headers=me)
    assert r.status_code == 422  # not their own Patient
    r = client.post("/fhir/Observation", json={"resourceType": "Observation", "status": "final",
                                               "subject": {"reference": f"Patient/{maria}"},
                                               "code": "not-a-concept"}, headers=me)
    assert r.status_code == 400
    r = client.post("/fhir/Observation", json={**WEIGHT, "subject": {"reference": f"Patient/{maria}"}}, headers=me)
    assert r.status_code == 201, r.text
    obs = r.json()
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "PATRPT",
            "display": "patient reported"} in obs["meta"]["tag"]
    prov = entries(client.get("/fhir/Provenance", params={"target": f"Observation/{obs['id']}"}).json(),
                   "Provenance")  # (read with the national system's token)
    assert prov and prov[0]["agent"][0]["who"]["reference"] == f"Patient/{maria}"
    # kept apart in $summary: not in the vital signs, said in the outcome
    r = client.get(f"/fhir/Patient/{maria}/$summary", params={"_outcome": "true"}, headers=me)
    doc, outcome = (p["resource"] for p in r.json()["parameter"])
    assert obs["id"] not in str(doc)
    assert any(obs["id"] in i["diagnostics"] and "patient" in i["diagnostics"] for i in outcome["issue"])
    # a national system cannot post as a citizen
    assert client.post("/fhir/Observation", json=WEIGHT).status_code == 403


def test_uploads_checked_by_type_and_size(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    me = citizen(client, maria, scope="patient/*.crs")
    r = client.post("/fhir/DocumentReference", content=PDF,
                    headers={**me, "Content-Type": "application/pdf", "X-Title": "Discharge letter"})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["content"][0]["attachment"]["contentType"] == "application/pdf"
    assert doc["meta"]["tag"][-1]["code"] == "PATRPT"
    binary = client.get(f"/fhir/{doc['content'][0]['attachment']['url']}", headers=me).json()
    assert base64.b64decode(binary["data"]) == PDF
    # the other citizen sees neither the document nor the file
    them = citizen(client, other)
    assert client.get(f"/fhir/DocumentReference/{doc['id']}", headers=them).status_code == 404
    assert client.get(f"/fhir/{doc['content'][0]['attachment']['url']}", headers=them).status_code == 404
    # a PNG sent as JSON
    sent = {"resourceType": "DocumentReference", "status": "current",
            "content": [{"attachment": {"contentType": "image/png", "data": base64.b64encode(PNG).decode(),
                                        "title": "Rash photo"}}]}
    assert client.post("/fhir/DocumentReference", json=sent, headers=me).status_code == 201
    # not what the type says
    r = client.post("/fhir/DocumentReference", content=PNG, headers={**me, "Content-Type": "application/pdf"})
    assert r.status_code == 400 and "first bytes" in r.text
    r = client.post("/fhir/DocumentReference", content=b"MZ\x90\x00", headers={**me, "Content-Type": "image/jpeg"})
    assert r.status_code == 400
    assert client.post("/fhir/DocumentReference", content=b"hello",
                       headers={**me, "Content-Type": "text/plain"}).status_code == 415
    # over the size limit
    monkeypatch.setattr(citizen_api, "MAX_UPLOAD", 1024)
    r = client.post("/fhir/DocumentReference", content=PDF + b"0" * 2048,
                    headers={**me, "Content-Type": "application/pdf"})
    assert r.status_code == 413
    # the uploads are in $everything with their files
    every = client.get(f"/fhir/Patient/{maria}/$everything", headers=me).json()
    assert len(entries(every, "DocumentReference")) == 2 and len(entries(every, "Binary")) == 2
