"""Sharing with a clinician over HTTP: the handshake (code, QR), the
Consent, what the clinician sees ($summary, reads, searches), ending shares,
refusals (expired, reused, wrong codes, lock), and the audit trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from gateway.access.shares import share_sessions
from tests.citizen.helpers import (
    ALLERGIES,
    MEDICATIONS,
    PROBLEMS,
    RESULTS,
    citizen,
    doctor,
    entries,
    load,
    share,
)


def _sections(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    comp = bundle["entry"][0]["resource"]
    return {s["code"]["coding"][0]["code"]: s for s in comp["section"]}


def test_handshake_consent_and_what_the_clinician_sees(client) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    dr = doctor(client)
    # before any share: nothing
    assert client.get(f"/fhir/Patient/{maria}", headers=dr).status_code == 404
    r = client.post("/share/sessions", json={}, headers=dr)
    assert r.status_code == 201
    session = r.json()
    assert len(session["code"]) >= 6 and session["expires"]
    assert client.get(f"/share/sessions/{session['id']}", headers=dr).json()["state"] == "open"
    qr = client.get(f"/share/sessions/{session['id']}/qr.svg", params={"code": session["code"]}, headers=dr)
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in qr.content
    # the citizen grants allergies and results for 30 minutes
    r = client.post(f"/share/sessions/{session['code']}/grant",
                    json={"sections": [ALLERGIES, RESULTS], "minutes": 30}, headers=citizen(client, maria))
    assert r.status_code == 201, r.text
    consent = r.json()
    assert consent["resourceType"] == "Consent" and consent["status"] == "active"
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    prov = consent["provision"]
    assert prov["type"] == "permit" and prov["actor"][0]["reference"]["reference"] == "Practitioner/dr-1"
    assert {c["coding"][0]["code"] for c in prov["code"]} == {ALLERGIES, RESULTS}
    assert prov["period"]["start"] < prov["period"]["end"]
    state = client.get(f"/share/sessions/{session['id']}", headers=dr).json()
    assert state["state"] == "granted" and state["patient"] == f"Patient/{maria}"
    # the Consent is in the citizen's record
    assert client.get(f"/fhir/Consent/{consent['id']}", headers=citizen(client, maria)).status_code == 200

    # $summary: only the granted sections; a required one not granted is withheld
    r = client.get(f"/fhir/Patient/{maria}/$summary", headers=dr)
    assert r.status_code == 200, r.text
    secs = _sections(r.json())
    assert secs[ALLERGIES].get("entry")
    assert secs[RESULTS].get("entry")
    for code in (PROBLEMS, MEDICATIONS):
        assert "entry" not in secs[code]
        assert secs[code]["emptyReason"]["coding"][0]["code"] == "withheld"
    kinds = {e["resource"]["resourceType"] for e in r.json()["entry"]}
    assert "Condition" not in kinds and "AllergyIntolerance" in kinds

    # reads and searches: granted sections only
    allergies = client.get("/fhir/AllergyIntolerance", headers=dr).json()
    assert allergies["total"] >= 1 and entries(allergies)
    conditions = client.get("/fhir/Condition", headers=dr).json()
    assert conditions["total"] == 0 and not entries(conditions)
    system_conditions = entries(client.get("/fhir/Condition", params={"patient": maria}).json())
    assert system_conditions
    assert client.get(f"/fhir/Condition/{system_conditions[0]['id']}", headers=dr).status_code == 404
    assert client.get(f"/fhir/Consent/{consent['id']}", headers=dr).status_code == 404
    # another citizen stays invisible
    assert client.get(f"/fhir/Patient/{other}", headers=dr).status_code == 404
    assert client.get(f"/fhir/Patient/{other}/$summary", headers=dr).status_code == 404
    # another clinician sees nothing
    assert client.get(f"/fhir/Patient/{maria}", headers=doctor(client, "dr-2")).status_code == 404

    # the citizen sees the clinician's accesses in the audit trail
    audit = client.get("/fhir/AuditEvent", params={"patient": maria}, headers=citizen(client, maria)).json()
    agents = [a["who"].get("reference") for ev in entries(audit) for a in ev["agent"]]
    assert "Practitioner/dr-1" in agents


def test_list_and_end_shares(client) -> None:  # type: ignore[no-untyped-def]
    maria, _ = load(client)
    me = citizen(client, maria)
    _, c1 = share(client, maria, {"sections": "all"})
    _, c2 = share(client, maria, {"sections": [ALLERGIES]}, pr="dr-2")
    active = client.get("/share/grants", headers=me).json()
    assert {e["resource"]["id"] for e in active["entry"]} == {c1["id"], c2["id"]}
    assert client.get(f"/fhir/Patient/{maria}/$summary", headers=doctor(client)).status_code == 200
    r = client.delete(f"/share/grants/{c1['id']}", headers=me)
    assert r.status_code == 200 and entries(r.json())[0]["status"] == "inactive"
    # the ended share is refused, stays as an inactive Consent
    assert client.get(f"/fhir/Patient/{maria}/$summary", headers=doctor(client)).status_code == 404
    assert client.get(f"/fhir/Consent/{c1['id']}", headers=me).json()["status"] == "inactive"
    assert client.get(f"/share/grants/{c1['id']}", headers=me).status_code in (404, 405)
    assert client.delete(f"/share/grants/{c1['id']}", headers=me).status_code == 404
    assert client.get(f"/fhir/Patient/{maria}", headers=doctor(client, "dr-2")).status_code == 200
    r = client.delete("/share/grants", headers=me)
    assert [c["id"] for c in entries(r.json())] == [c2["id"]]
    assert client.get(f"/fhir/Patient/{maria}", headers=doctor(client, "dr-2")).status_code == 404
    assert client.get("/share/grants", headers=me).json()["total"] == 0


def test_refused_codes_and_roles(client) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    dr, me = doctor(client), citizen(client, maria)
    # only clinicians open sessions, only citizens grant
    assert client.post("/share/sessions", json={}, headers=me).status_code == 403
    assert client.post("/share/sessions", json={}).status_code == 403  # a national system
    s = client.post("/share/sessions", json={}, headers=dr).json()
    assert client.post(f"/share/sessions/{s['code']}/grant", json={}, headers=dr).status_code == 403
    # bad grant bodies
    bad = client.post(f"/share/sessions/{s['code']}/grant", json={"sections": ["0000-0"]}, headers=me)
    assert bad.status_code == 400
    assert client.post(f"/share/sessions/{s['code']}/grant", json={"minutes": 10**6},
                       headers=me).status_code == 400
    # reused code
    assert client.post(f"/share/sessions/{s['code']}/grant", json={}, headers=me).status_code == 201
    again = client.post(f"/share/sessions/{s['code']}/grant", json={}, headers=citizen(client, other))
    assert again.status_code == 403 and "used" in again.text
    # a clinician cannot read another clinician's session
    assert client.get(f"/share/sessions/{s['id']}", headers=doctor(client, "dr-2")).status_code == 404
    # expired code
    s2 = client.post("/share/sessions", json={}, headers=dr).json()
    with client.app.state.store.write_engine.begin() as conn:
        conn.execute(update(share_sessions).where(share_sessions.c.id == s2["id"]).values(
            expires="2000-01-01T00:00:00Z"))
    assert client.get(f"/share/sessions/{s2['id']}", headers=dr).json()["state"] == "expired"
    r = client.post(f"/share/sessions/{s2['code']}/grant", json={}, headers=citizen(client, other))
    assert r.status_code == 403 and "expired" in r.text


def test_wrong_codes_lock_redemption(client) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    me = citizen(client, maria)
    s = client.post("/share/sessions", json={}, headers=doctor(client)).json()
    for i in range(5):
        assert client.post(f"/share/sessions/WRONG{i}XX/grant", json={}, headers=me).status_code == 403
    r = client.post(f"/share/sessions/{s['code']}/grant", json={}, headers=me)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.json()["resourceType"] == "OperationOutcome"
    # the lock is per citizen
    assert client.post(f"/share/sessions/{s['code']}/grant", json={},
                       headers=citizen(client, other)).status_code == 201


def test_shared_document_only(client) -> None:  # type: ignore[no-untyped-def]
    maria, _ = load(client)
    me = citizen(client, maria, scope="patient/*.crs")
    pdf = b"%PDF-1.4\n% a small letter\n%%EOF\n"
    up = client.post("/fhir/DocumentReference", content=pdf,
                     headers={**me, "Content-Type": "application/pdf", "X-Title": "Letter"})
    assert up.status_code == 201, up.text
    doc = up.json()
    up2 = client.post("/fhir/DocumentReference", content=pdf,
                      headers={**me, "Content-Type": "application/pdf"}).json()
    share(client, maria, {"sections": [], "documents": [doc["id"]]})
    dr = doctor(client)
    assert client.get(f"/fhir/DocumentReference/{doc['id']}", headers=dr).status_code == 200
    assert client.get(f"/fhir/DocumentReference/{up2['id']}", headers=dr).status_code == 404
    binary = doc["content"][0]["attachment"]["url"]
    assert client.get(f"/fhir/{binary}", headers=dr).status_code == 200
    assert client.get(f"/fhir/{up2['content'][0]['attachment']['url']}", headers=dr).status_code == 404
