"""Access control on every route and FHIR search, over real HTTP on SQLite
and PostgreSQL: a citizen sees their own record and nothing of anyone
else's, on reads, searches, includes, history, paging and counts."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.conftest import bearer, sample

V2 = {"Content-Type": "x-application/hl7-v2+er7"}


def _ingest(client, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    body = client.post("/ingest", content=sample(name), headers=V2).json()
    return {e["response"]["location"].split("/")[0]: e["response"]["location"].split("/")[1]
            for e in body["entry"]}


@pytest.fixture
def two_citizens(client):  # type: ignore[no-untyped-def]
    a = _ingest(client, "ORU-R01-RMGEAD.hl7")  # EVERYWOMAN EVE: one glucose result
    b = _ingest(client, "VXU.hl7")  # Elise Wong: immunizations and observations
    return client, a["Patient"], b["Patient"]


def _as(client, who: dict[str, str]):  # type: ignore[no-untyped-def]
    class As:
        def get(self, url: str, **kw: Any):  # type: ignore[no-untyped-def]
            return client.get(url, headers=who, **kw)
    return As()


def test_citizen_reads_own_record_only(two_citizens) -> None:  # type: ignore[no-untyped-def]
    client, a, b = two_citizens
    me = _as(client, bearer(client.app, patient=a))
    assert me.get(f"/fhir/Patient/{a}").status_code == 200
    theirs = me.get(f"/fhir/Patient/{b}")
    missing = me.get("/fhir/Patient/00000000-0000-0000-0000-000000000000")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    assert b not in json.dumps(theirs.json()["issue"][0]).replace(f"Patient/{b} is", "")
    for url in (f"/fhir/Patient/{b}/_history", f"/fhir/Patient/{b}/_history/1"):
        assert me.get(url).status_code == 404
    obs_b = client.get(f"/fhir/Observation?patient=Patient/{b}").json()["entry"][0]["resource"]["id"]
    assert me.get(f"/fhir/Observation/{obs_b}").status_code == 404


def test_citizen_searches_are_confined(two_citizens) -> None:  # type: ignore[no-untyped-def]
    client, a, b = two_citizens
    me = _as(client, bearer(client.app, patient=a))
    everything = client.get("/fhir/Observation?_summary=count").json()["total"]
    assert everything == 5
    mine = me.get("/fhir/Observation").json()
    assert mine["total"] == 1
    assert all(e["resource"]["subject"]["reference"] == f"Patient/{a}" for e in mine["entry"])
    assert me.get(f"/fhir/Observation?patient=Patient/{b}").json()["total"] == 0
    assert me.get("/fhir/Observation?_summary=count").json()["total"] == 1
    assert me.get("/fhir/Patient").json()["total"] == 1
    assert me.get("/fhir/Immunization").json()["total"] == 0
    incl = me.get("/fhir/Observation?_include=Observation:patient&_revinclude=Provenance:target").json()
    text = json.dumps(incl)
    assert b not in text
    kinds = sorted(e["resource"]["resourceType"] for e in incl["entry"])
    assert kinds == ["Observation", "Patient", "Provenance"]


def test_clinician_without_a_share_sees_nothing(two_citizens) -> None:  # type: ignore[no-untyped-def]
    client, a, _ = two_citizens
    doc = _as(client, bearer(client.app, practitioner="p1"))
    assert doc.get(f"/fhir/Patient/{a}").status_code == 404
    assert doc.get("/fhir/Observation").json()["total"] == 0


def _forge(client, header: dict[str, Any], claims: dict[str, Any], key: Any = None) -> str:  # type: ignore[no-untyped-def]
    from joserfc import jwt
    from joserfc.jwk import OctKey

    if header.get("alg") == "none":
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        return f"{enc(header)}.{enc(claims)}."
    if header["alg"].startswith("HS"):
        return jwt.encode(header, claims, OctKey.import_key("x" * 32))
    return jwt.encode(header, claims, key or client.app.state.auth.signing_key)


@pytest.mark.parametrize("case", ["missing", "garbage", "expired", "issuer", "audience", "none",
                                  "hmac", "other-key"])
def test_bad_tokens_are_refused_with_401(two_citizens, case: str) -> None:  # type: ignore[no-untyped-def]
    from joserfc.jwk import ECKey

    client, a, _ = two_citizens
    cfg = client.app.state.auth
    now = int(time.time())
    claims = {"iss": cfg.issuer, "aud": cfg.audience, "sub": "x", "scope": "system/*.cruds",
              "exp": now + 300}
    header = {"alg": "ES256"}
    if case == "missing":
        headers = {"Authorization": ""}
    elif case == "garbage":
        headers = {"Authorization": "Bearer not.a.jwt"}
    else:
        if case == "expired":
            claims["exp"] = now - 3600
        elif case == "issuer":
            claims["iss"] = "https://elsewhere.example"
        elif case == "audience":
            claims["aud"] = "someone-else"
        elif case == "none":
            header = {"alg": "none"}
        elif case == "hmac":
            header = {"alg": "HS256"}
        key = ECKey.generate_key("P-256", private=True) if case == "other-key" else None
        headers = {"Authorization": f"Bearer {_forge(client, header, claims, key)}"}
    for url in (f"/fhir/Patient/{a}", "/fhir/Observation", f"/fhir/Patient/{a}/_history"):
        r = client.get(url, headers=headers)
        assert r.status_code == 401, (case, url, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert a not in r.text
    r = client.post("/ingest", content=sample("ADT04-251.hl7"), headers={**V2, **headers})
    assert r.status_code == 401


def test_wrong_scope_is_403(two_citizens) -> None:  # type: ignore[no-untyped-def]
    client, a, _ = two_citizens
    narrow = bearer(client.app, patient=a, scope="patient/Patient.rs")
    assert client.get(f"/fhir/Patient/{a}", headers=narrow).status_code == 200
    assert client.get("/fhir/Observation", headers=narrow).status_code == 403
    citizen = bearer(client.app, patient=a)
    r = client.post("/ingest", content=sample("ADT04-251.hl7"), headers={**V2, **citizen})
    assert r.status_code == 403
    read_only = bearer(client.app, system="1", scope="system/*.rs")
    r = client.post("/ingest", content=sample("ADT04-251.hl7"), headers={**V2, **read_only})
    assert r.status_code == 403


def test_open_routes_need_no_token(client) -> None:  # type: ignore[no-untyped-def]
    anon = {"Authorization": ""}
    cs = client.get("/fhir/metadata", headers=anon)
    assert cs.status_code == 200 and cs.json()["fhirVersion"] == "4.0.1"
    assert any(r["type"] == "Patient" for r in cs.json()["rest"][0]["resource"])
    assert client.get("/health", headers=anon).json()["status"] == "ok"
    assert client.get("/openapi.json", headers=anon).status_code == 200
    assert client.get("/fhir/Patient", headers=anon).status_code == 401


def test_the_capability_statement_lists_what_the_routes_do(client) -> None:  # type: ignore[no-untyped-def]
    from gateway.validation import validate

    cs = client.get("/fhir/metadata", headers={"Authorization": ""}).json()
    assert [i for i in validate(cs, "r4") if i.severity in ("error", "fatal")] == []
    by_type = {r["type"]: r for r in cs["rest"][0]["resource"]}
    ops = {o["name"] for o in by_type["Patient"]["operation"]}
    assert {"summary", "everything", "export"} <= ops
    for added in ("Observation", "DocumentReference"):  # citizens add these to their record
        assert "create" in [i["code"] for i in by_type[added]["interaction"]]
    assert "create" not in [i["code"] for i in by_type["Condition"]["interaction"]]
    for rtype, op in (("ValueSet", "expand"), ("CodeSystem", "lookup"), ("ConceptMap", "translate")):
        assert [i["code"] for i in by_type[rtype]["interaction"]] == ["read", "search-type"]
        assert op in {o["name"] for o in by_type[rtype]["operation"]}
        assert client.get(f"/fhir/{rtype}?_count=1").status_code == 200
    assert {o["name"] for o in cs["rest"][0]["operation"]} == {"export", "validate"}


def test_accesses_are_audited_and_listed_to_the_citizen(two_citizens) -> None:  # type: ignore[no-untyped-def]
    client, a, b = two_citizens
    me = _as(client, bearer(client.app, patient=a))
    me.get(f"/fhir/Patient/{a}")
    client.get(f"/fhir/Patient/{a}")  # the national system reads too
    client.get(f"/fhir/Patient/{b}")
    events = me.get(f"/fhir/AuditEvent?patient=Patient/{a}").json()
    assert events["total"] >= 2
    for e in events["entry"]:
        ev = e["resource"]
        assert {"reference": f"Patient/{a}"} in [x.get("what") for x in ev["entity"]]
        assert ev["agent"][0]["who"]["identifier"]["value"]
        assert ev["outcome"] == "0" and ev["recorded"]
    assert b not in json.dumps(events)
    assert me.get(f"/fhir/AuditEvent?patient=Patient/{b}").json()["total"] == 0


def test_patient_search_pdqm(client) -> None:  # type: ignore[no-untyped-def]
    _ingest(client, "ADT-A01-01.hl7")
    _ingest(client, "ADT04-251.hl7")
    def total(q: str) -> int:
        r = client.get(f"/fhir/Patient?{q}")
        assert r.status_code == 200, r.text
        return r.json()["total"]
    assert total("family=everyman") == 1
    assert total("family=EVERY") == 1
    assert total("family:exact=every") == 0
    assert total("given=adam") == 1
    # name: any part of a name, the family name too, or given and family together
    assert total("name=everyman") == 1 and total("name=ADAM") == 1 and total("name=dr") == 1
    assert total("name=adam a every") == 1 and total("name=angela") == 0
    assert total("name:exact=everyman") == 1 and total("name:exact=every") == 0
    assert total("gender=female") == 1 and total("gender=male") == 1
    assert total("birthdate=1978-01-01") == 1
    assert total("birthdate=ge1980") == 1 and total("birthdate=lt1980") == 1
    assert total("identifier=http://hl7.org/fhir/sid/us-ssn|123456789") == 1
    assert total("identifier=|MRN12345") == 1  # "|value": an identifier without a system
    assert total("identifier=MRN12345") == 1
    assert total("family=doe,everyman") == 2
    assert total("family=doe&gender=male") == 0


def test_clinical_search_paging_elements_and_errors(client) -> None:  # type: ignore[no-untyped-def]
    _ingest(client, "VXU.hl7")
    r = client.get("/fhir/Immunization?_count=2").json()
    assert r["total"] == 3 and len(r["entry"]) == 2
    nxt = [link["url"] for link in r["link"] if link["relation"] == "next"][0]
    page2 = client.get(nxt.replace("http://testserver", "")).json()
    assert len(page2["entry"]) == 1
    ids = {e["resource"]["id"] for e in r["entry"]} | {e["resource"]["id"] for e in page2["entry"]}
    assert len(ids) == 3
    assert client.get("/fhir/Immunization?code=http://hl7.org/fhir/sid/cvx|88").json()["total"] == 2
    assert client.get("/fhir/Immunization?date=2015-06-24").json()["total"] == 1
    assert client.get("/fhir/Immunization?date=ge2014-01-01").json()["total"] == 2
    assert client.get("/fhir/Immunization?status=completed").json()["total"] == 3
    assert client.get("/fhir/Observation?code=30963-3").json()["total"] == 1
    slim = client.get("/fhir/Immunization?_elements=vaccineCode").json()["entry"][0]["resource"]
    assert set(slim) == {"resourceType", "id", "meta", "vaccineCode"}
    assert client.get("/fhir/Immunization?_lastUpdated=gt2000-01-01").json()["total"] == 3
    bad = client.get("/fhir/Immunization?nonsense=1")
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Immunization?date=notadate").status_code == 400
    assert client.get("/fhir/Immunization?_count=x").status_code == 400
    assert client.get("/fhir/Immunization?_format=xml").status_code == 406


def test_a_token_accepted_once_is_refused_once_it_expires(two_citizens) -> None:  # type: ignore[no-untyped-def]
    """Verified tokens are remembered (no signature check per request), but
    never past their expiry."""
    from dataclasses import replace

    client, a, _ = two_citizens
    strict = replace(client.app.state.auth, leeway=0)
    strict.verified.clear()
    client.app.state.auth = strict
    now = int(time.time())
    claims = {"iss": strict.issuer, "aud": strict.audience, "sub": "x", "scope": "system/*.cruds",
              "exp": now + 2}
    headers = {"Authorization": f"Bearer {_forge(client, {'alg': 'ES256'}, claims, None)}"}
    assert client.get(f"/fhir/Patient/{a}", headers=headers).status_code == 200
    assert client.get(f"/fhir/Patient/{a}", headers=headers).status_code == 200
    assert len(strict.verified) == 1
    time.sleep(3.2)
    r = client.get(f"/fhir/Patient/{a}", headers=headers)
    assert r.status_code == 401, r.text
