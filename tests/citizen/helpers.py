"""Shared setup for the citizen tests: two citizens from real HL7 v2
messages, and tokens for them and for a clinician."""

from __future__ import annotations

from typing import Any

from tests.api.test_summary import ALLERGY_BE, HOSPITAL_PT, LAB_BE, OTHER_CITIZEN
from tests.conftest import bearer

V2 = {"Content-Type": "x-application/hl7-v2+er7"}
PROBLEMS, ALLERGIES, MEDICATIONS, RESULTS = "11450-4", "48765-2", "10160-0", "30954-2"
VITALS = "8716-3"


def load(client: Any) -> tuple[str, str]:
    """Maria (PT + BE records, linked) and another citizen; Maria's PT id."""
    ids = []
    for msg in (HOSPITAL_PT, LAB_BE, ALLERGY_BE, OTHER_CITIZEN):
        r = client.post("/ingest", content=msg.encode(), headers=V2)
        assert r.status_code == 201, r.text
        ids.append([e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                    if e["response"]["location"].startswith("Patient/")][0])
    return ids[0], ids[3]


def citizen(client: Any, pid: str, scope: str = "patient/*.rs") -> dict[str, str]:
    return bearer(client.app, patient=pid, scope=scope)


def doctor(client: Any, pr: str = "dr-1") -> dict[str, str]:
    return bearer(client.app, practitioner=pr)


def share(client: Any, pid: str, body: dict[str, Any], pr: str = "dr-1") -> tuple[str, dict[str, Any]]:
    """A clinician opens a session, the citizen grants; the session id and Consent."""
    r = client.post("/share/sessions", json={}, headers=doctor(client, pr))
    assert r.status_code == 201, r.text
    s = r.json()
    r = client.post(f"/share/sessions/{s['code']}/grant", json=body, headers=citizen(client, pid))
    assert r.status_code == 201, r.text
    return s["id"], r.json()


def entries(bundle: dict[str, Any], rtype: str | None = None) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])
            if rtype is None or e["resource"]["resourceType"] == rtype]
