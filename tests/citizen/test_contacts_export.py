"""Trusted contacts (invite, accept once, read what was granted, revoke) and
the Bulk Data ``$export`` of the research cohort, over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import update

from gateway.access.contacts import contact_invites
from tests.citizen.helpers import ALLERGIES, RESULTS, citizen, entries, load

PREFER = {"Prefer": "respond-async"}


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _invite(client: Any, pid: str, **body: Any) -> dict[str, Any]:
    r = client.post("/share/contacts", json={"name": "Ana Silva", **body}, headers=citizen(client, pid))
    assert r.status_code == 201, r.text
    return r.json()


def _accept(client: Any, link: str) -> Any:
    return client.post(_path(link), headers={"Authorization": ""})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_contact_invite_accept_read_revoke(client) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    linked = client.app.state.store.linked_patients(maria)
    made = _invite(client, maria, relationship="SPS", sections=[ALLERGIES])
    person, consent = made["relatedPerson"], made["consent"]
    assert person["resourceType"] == "RelatedPerson" and person["patient"]["reference"] == f"Patient/{maria}"
    assert person["relationship"][0]["coding"][0]["code"] == "SPS"
    assert consent["status"] == "active" and "end" not in consent["provision"]["period"]
    assert consent["provision"]["actor"][0]["reference"]["reference"] == f"RelatedPerson/{person['id']}"
    assert "/share/contacts/accept?token=" in made["invitation"]

    r = _accept(client, made["invitation"])
    assert r.status_code == 200, r.text
    assert r.json()["fhirUser"] == f"RelatedPerson/{person['id']}"
    contact = _bearer(r.json()["access_token"])
    assert _accept(client, made["invitation"]).status_code == 403  # single use

    # the granted section, in Maria's linked records only
    allergies = entries(client.get("/fhir/AllergyIntolerance", headers=contact).json(), "AllergyIntolerance")
    assert allergies and all(a["patient"]["reference"].split("/")[1] in linked for a in allergies)
    assert "256349002" not in json.dumps(allergies)  # the other citizen's peanut allergy
    assert client.get(f"/fhir/Patient/{maria}", headers=contact).status_code == 200
    assert client.get(f"/fhir/Patient/{other}", headers=contact).status_code == 404
    patients = entries(client.get("/fhir/Patient", headers=contact).json(), "Patient")
    assert {p["id"] for p in patients} <= linked and other not in {p["id"] for p in patients}
    # not the results section
    assert not entries(client.get("/fhir/Observation", headers=contact).json(), "Observation")
    everything = client.get(f"/fhir/Patient/{maria}/$everything", headers=contact).json()
    assert {r["resourceType"] for r in entries(everything)} <= {"Patient", "AllergyIntolerance"}
    summary = client.get(f"/fhir/Patient/{maria}/$summary", headers=contact)
    if summary.status_code == 200:
        comp = summary.json()["entry"][0]["resource"]
        shown = {s["code"]["coding"][0]["code"] for s in comp["section"] if s.get("entry")}
        assert RESULTS not in shown
    # the contact cannot act as the citizen
    assert client.get("/share/contacts", headers=contact).status_code == 403
    assert client.post("/share/contacts", json={"name": "x"}, headers=contact).status_code == 403

    # audited with the RelatedPerson as agent, visible to Maria
    audit = entries(client.get("/fhir/AuditEvent?_count=200", headers=citizen(client, maria)).json())
    assert any(a["agent"][0]["who"].get("reference") == f"RelatedPerson/{person['id']}" for a in audit)

    listed = client.get("/share/contacts", headers=citizen(client, maria)).json()
    assert [c["id"] for c in entries(listed, "Consent")] == [consent["id"]]
    assert entries(listed, "RelatedPerson")[0]["id"] == person["id"]
    # the other citizen can neither see nor revoke Maria's contact
    assert not entries(client.get("/share/contacts", headers=citizen(client, other)).json())
    assert client.delete(f"/share/contacts/{consent['id']}",
                         headers=citizen(client, other)).status_code == 404

    r = client.delete(f"/share/contacts/{consent['id']}", headers=citizen(client, maria))
    assert r.status_code == 200, r.text
    assert entries(r.json(), "Consent")[0]["status"] == "inactive"
    # the unexpired token now sees nothing
    assert client.get(f"/fhir/Patient/{maria}", headers=contact).status_code == 404
    assert not entries(client.get("/fhir/AllergyIntolerance", headers=contact).json())
    assert not entries(client.get("/share/contacts", headers=citizen(client, maria)).json())
    assert client.delete(f"/share/contacts/{consent['id']}",
                         headers=citizen(client, maria)).status_code == 404


def test_invitation_refusals(client) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    h = citizen(client, maria)
    assert client.post("/share/contacts", json={"sections": "all"}, headers=h).status_code == 400
    assert client.post("/share/contacts", json={"name": "A", "sections": ["nope"]}, headers=h).status_code == 400
    assert client.post("/share/contacts", json={"name": "A", "relationship": "spouse!"},
                       headers=h).status_code == 400
    assert client.post("/share/contacts/accept?token=not-a-real-token",
                       headers={"Authorization": ""}).status_code == 403
    assert client.post("/share/contacts/accept", headers={"Authorization": ""}).status_code == 403

    expired = _invite(client, maria, sections="all", minutes=60)
    token = expired["invitation"].split("token=", 1)[1]
    with client.app.state.store.write_engine.begin() as conn:
        conn.execute(update(contact_invites).where(contact_invites.c.consent == expired["consent"]["id"])
                     .values(expires="2000-01-01T00:00:00Z"))
    assert _accept(client, expired["invitation"]).status_code == 403
    r = client.post("/share/contacts/accept", json={"token": token}, headers={"Authorization": ""})
    assert r.status_code == 403
    # a fresh link for the same contact works once
    again = client.post(f"/share/contacts/{expired['consent']['id']}/invitation", headers=h)
    assert again.status_code == 201, again.text
    r = _accept(client, again.json()["invitation"])
    assert r.status_code == 200
    contact = _bearer(r.json()["access_token"])
    assert client.get(f"/fhir/Patient/{other}", headers=contact).status_code == 404
    assert entries(client.get("/fhir/AllergyIntolerance", headers=contact).json())
    assert _accept(client, again.json()["invitation"]).status_code == 403

    # a revoked contact's pending invitation dies with it
    pending = _invite(client, maria, sections=[ALLERGIES])
    assert client.delete(f"/share/contacts/{pending['consent']['id']}", headers=h).status_code == 200
    assert _accept(client, pending["invitation"]).status_code == 403


def _poll(client: Any, url: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        r = client.get(_path(url))
        if r.status_code != 202 or time.monotonic() > deadline:
            return r
        assert r.headers.get("X-Progress")
        time.sleep(0.1)


def test_bulk_export_of_research_cohort(client) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    assert client.post("/research/consent", json={"categories": "all"},
                       headers=citizen(client, maria)).status_code == 201

    assert client.get("/fhir/Patient/$export").status_code == 400  # no Prefer: respond-async
    assert client.get("/fhir/Patient/$export", headers={**PREFER, **citizen(client, maria)}).status_code == 403
    assert client.get("/fhir/Patient/$export?_outputFormat=text/csv", headers=PREFER).status_code == 400
    assert client.get("/fhir/Patient/$export?_since=2020-01-01", headers=PREFER).status_code == 400

    r = client.get("/fhir/Patient/$export?_type=Patient,AllergyIntolerance,Condition&_project=study-1",
                   headers=PREFER)
    assert r.status_code == 202, r.text
    status_url = r.headers["Content-Location"]
    assert "/fhir/$export-status/" in status_url
    done = _poll(client, status_url)
    assert done.status_code == 200, done.text
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True and manifest["transactionTime"]
    assert "$export" in manifest["request"]
    types = {o["type"] for o in manifest["output"]}
    assert "Patient" in types and types <= {"Patient", "AllergyIntolerance", "Condition"}

    files: dict[str, list[dict[str, Any]]] = {}
    for out in manifest["output"]:
        # requiresAccessToken: a citizen's token is refused
        assert client.get(_path(out["url"]), headers=citizen(client, maria)).status_code == 403
        f = client.get(_path(out["url"]))
        assert f.status_code == 200 and f.headers["content-type"].startswith("application/fhir+ndjson")
        files[out["type"]] = [json.loads(line) for line in f.text.splitlines() if line.strip()]
        assert len(files[out["type"]]) == out["count"]
    # only the consenting citizen, de-identified
    assert len(files["Patient"]) == 1
    pseudonym = files["Patient"][0]["id"]
    assert pseudonym not in client.app.state.store.linked_patients(maria) and "name" not in files["Patient"][0]
    for rtype, items in files.items():
        for res in items:
            ref = (res.get("subject") or res.get("patient") or {}).get("reference")
            assert rtype == "Patient" or ref == f"Patient/{pseudonym}"
    text = json.dumps(files)
    assert "256349002" not in text and "91936005" in text  # the other citizen's allergy is not there
    assert other not in text and maria not in text and "Costa" not in text

    r = client.delete(_path(status_url))
    assert r.status_code == 202
    assert client.get(_path(status_url)).status_code == 404
    assert client.get(_path(manifest["output"][0]["url"])).status_code == 404

    # a second job, cancelled straight away; the system-level kick-off works too
    r = client.get("/fhir/$export", headers=PREFER)
    assert r.status_code == 202
    assert client.delete(_path(r.headers["Content-Location"])).status_code == 202
    assert client.get(_path(r.headers["Content-Location"])).status_code == 404
    ops = client.get("/fhir/metadata").json()["rest"][0]
    assert any(o["name"] == "export" for o in ops.get("operation", []))
