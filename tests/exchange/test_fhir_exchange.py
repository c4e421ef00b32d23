"""Two gateways on loopback over FHIR (BE = A, PT = B): B gets a token from
A's ``/auth/token`` with a client assertion signed by its own key
(SMART Backend Services, RFC 7523), identifies the citizen (PDQm ITI-78),
finds (MHD ITI-67) and retrieves (ITI-68) the signed summary, verifies it and
stores it. Plus the token endpoint's refusals, and the replay memory shared
by two stores on one database."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from gateway.exchange.context import exchange_for
from gateway.exchange.errors import Replayed
from gateway.exchange.fhir_client import ASSERTION_TYPE, client_assertion
from gateway.exchange.keys import init_keys
from gateway.exchange.replay import ReplayGuard
from gateway.records import Store

from .conftest import DEMO, IDENT, b_retrieves


def test_b_retrieves_summary_from_a_over_fhir(gateways):
    a, _, b_home = gateways
    with b_retrieves(b_home, "fhir") as (done, b_store):
        assert done.document.startswith("urn:gateway:BE:summary:")
        provs = b_store.search("Provenance")
        assert any("urn:gateway:BE" in str(p) and done.document in str(p) for p in provs)
    # A audited the peer's reads under the peer's client id
    events = a.store.search("AuditEvent", limit=500)
    assert any("urn:gateway:PT" in str(e) for e in events)


def _token(a, assertion: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, **extra}
    return httpx.post(f"{a.url}/auth/token", data=form, timeout=10)


def test_token_endpoint_and_mhd(gateways):
    a, _, b_home = gateways
    b = exchange_for(b_home)
    url = f"{a.url}/auth/token"
    r = _token(a, client_assertion(b, url))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert "system/DocumentReference.rs" in body["scope"]
    h = {"authorization": f"Bearer {body['access_token']}"}
    found = httpx.get(f"{a.url}/fhir/Patient", params={"identifier": IDENT}, headers=h).json()
    pid = found["entry"][0]["resource"]["id"]
    refs = httpx.get(f"{a.url}/fhir/DocumentReference",
                     params={"patient": pid, "type": "http://loinc.org|60591-5"}, headers=h).json()
    assert refs["total"] == 1
    ref = refs["entry"][0]["resource"]
    assert ref["type"]["coding"][0]["code"] == "60591-5" and ref["subject"]["reference"] == f"Patient/{pid}"
    doc = httpx.get(ref["content"][0]["attachment"]["url"], headers=h)
    assert doc.status_code == 200 and doc.json()["signature"]["sigFormat"] == "application/jose"
    none = httpx.get(f"{a.url}/fhir/DocumentReference",
                     params={"patient": "nobody", "type": "http://loinc.org|60591-5"}, headers=h).json()
    assert none["total"] == 0
    # the peer's token reads, it does not write
    msg = sorted(DEMO.glob("*.hl7"))[0].read_bytes()
    r = httpx.post(f"{a.url}/ingest", content=msg,
                   headers={**h, "content-type": "x-application/hl7-v2+er7"})
    assert r.status_code == 403
    # a scope outside what peers get
    assert _token(a, client_assertion(b, url), scope="system/*.cruds").json()["error"] == "invalid_scope"


def test_token_endpoint_refusals(gateways, tmp_path):
    a, _, b_home = gateways
    b = exchange_for(b_home)
    url = f"{a.url}/auth/token"

    def refused(r: httpx.Response, why: str) -> None:
        assert r.status_code in (400, 401), r.text
        assert why in r.json()["error_description"], r.json()

    # unknown peer: a gateway A never pinned
    stranger = tmp_path / "c"
    init_keys(stranger, "FR")
    refused(_token(a, client_assertion(exchange_for(stranger), url)), "not on the trust list")
    # B claims to be FR with its own key: the key is B's
    refused(_token(a, client_assertion(b, url, issuer="urn:gateway:FR")), "not on the trust list")
    # bad signature: the payload changed after signing
    head, payload, sig = client_assertion(b, url).split(".")
    other = client_assertion(b, url).split(".")[1]
    refused(_token(a, f"{head}.{other}.{sig}"), "does not verify")
    # a signature by another key under B's kid
    forged = client_assertion(exchange_for(stranger), url).split(".")
    refused(_token(a, f"{head}.{forged[1]}.{forged[2]}"), "")
    # expired, and too long-lived
    refused(_token(a, client_assertion(b, url, now=time.time() - 900)), "expired")
    refused(_token(a, client_assertion(b, url, lifetime=3600)), "5 minutes")
    # replayed jti
    once = client_assertion(b, url, jti="jti-" + uuid.uuid4().hex)
    assert _token(a, once).status_code == 200
    refused(_token(a, once), "already used")
    # wrong audience
    refused(_token(a, client_assertion(b, "https://elsewhere.example/auth/token")), "audience")
    # wrong grant type, missing assertion type
    r = httpx.post(url, data={"grant_type": "password"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = httpx.post(url, data={"grant_type": "client_credentials", "client_assertion": once}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_replay_refused_across_two_stores_on_one_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    one, two = Store(url), Store(url)
    try:
        first, second = ReplayGuard(one), ReplayGuard(two)
        until = time.time() + 300
        first.check("jti", "PT:abc", until)
        with pytest.raises(Replayed, match="already used"):
            second.check("jti", "PT:abc", until)
        with pytest.raises(Replayed, match="stale"):
            second.check("jti", "PT:old", time.time() - 3600)
        with pytest.raises(Replayed, match="future"):
            second.check("jti", "PT:later", until, issued_at=time.time() + 3600)
        # once its window has passed, the id may be used again
        second.check("message", "PT:m1", time.time() + 1, now=time.time())
        first.check("message", "PT:m1", time.time() + 600, now=time.time() + 5)
    finally:
        one.close()
        two.close()


def test_replay_refused_across_two_stores_on_postgresql(postgres):
    url = postgres.new_database(f"replay{uuid.uuid4().hex[:8]}")
    one, two = Store(url), Store(url)
    try:
        ReplayGuard(one).check("assertion", "PT:_a1", time.time() + 300)
        with pytest.raises(Replayed):
            ReplayGuard(two).check("assertion", "PT:_a1", time.time() + 300)
    finally:
        one.close()
        two.close()
