"""Two gateways on loopback (BE = A, PT = B), each with its own home and
keys, trusting each other through pinned trust-list entries: B identifies a
citizen at A over SOAP (ITI-38/39 with a signed SAML assertion), retrieves
the signed summary, verifies it and stores it. Plus the SOAP attack suite."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from lxml import etree

from gateway.exchange.context import exchange_for
from gateway.exchange.errors import ExchangeError
from gateway.exchange.keys import init_keys
from gateway.exchange.retrieve import retrieve
from gateway.exchange.saml import issue_assertion
from gateway.exchange.trust import TrustStore, own_entry
from gateway.exchange.xca import NS, envelope, find_documents_request
from gateway.records import Store
from gateway.settings import Settings

from .conftest import IDENT, b_retrieves


def test_b_retrieves_summary_from_a_over_soap(gateways):
    _, _, b_home = gateways
    with b_retrieves(b_home, "soap") as (_, b_store):
        assert any("urn:gateway:BE" in str(p) for p in b_store.search("Provenance"))


def test_untrusted_requester_gets_a_fault(gateways, tmp_path):
    a, _, _ = gateways
    stranger = tmp_path / "c"
    init_keys(stranger, "FR")
    TrustStore(stranger).add(own_entry(exchange_for(a.app.state.settings.home).keys, a.url))
    with pytest.raises(ExchangeError, match="refused"):
        retrieve(stranger, Store(Settings.resolve(stranger).db_url), "BE", IDENT)


def _post(a, body: bytes) -> httpx.Response:
    return httpx.post(f"{a.url}/soap/xca", content=body,
                      headers={"content-type": "application/soap+xml"}, timeout=10)


def _request(b_home: Path, *, message_id: str | None = None, assertion=None, **kw) -> bytes:
    ex = exchange_for(b_home)
    sec = etree.Element(f"{{{NS['wsse']}}}Security", nsmap={"wsse": NS["wsse"]})
    sec.append(assertion if assertion is not None else issue_assertion(ex, "urn:gateway:BE", subject="dr-x", **kw))
    return envelope(find_documents_request(IDENT), "urn:ihe:iti:2007:CrossGatewayQuery",
                    message_id=message_id or f"urn:uuid:{uuid.uuid4()}", security=sec)


def test_soap_attacks(gateways):
    import datetime as dt

    a, _, b_home = gateways
    ok = _post(a, _request(b_home))
    assert ok.status_code == 200 and b"ExtrinsicObject" in ok.content
    # no assertion, no token
    assert b"SAML assertion is required" in _post(a, envelope(
        find_documents_request(IDENT), "x", message_id="urn:uuid:1")).content
    # replayed message id (same assertion reused is also refused)
    body = _request(b_home, message_id="urn:uuid:fixed")
    assert _post(a, body).status_code == 200
    again = _post(a, body)
    assert again.status_code == 400 and b"already used" in again.content
    # expired assertion
    old = issue_assertion(exchange_for(b_home), "urn:gateway:BE", subject="dr-x",
                          now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    assert b"expired" in _post(a, _request(b_home, assertion=old)).content
    # wrong audience, bad purpose
    wrong = issue_assertion(exchange_for(b_home), "urn:gateway:DE", subject="dr-x")
    assert b"another audience" in _post(a, _request(b_home, assertion=wrong)).content
    assert b"purpose of use" in _post(a, _request(b_home, purpose="MARKETING")).content
    # tampered assertion: role changed after signing
    signed = issue_assertion(exchange_for(b_home), "urn:gateway:BE", subject="dr-x")
    signed.find(f".//{{{'urn:oasis:names:tc:SAML:2.0:assertion'}}}AttributeValue").text = "admin"
    assert b"does not verify" in _post(a, _request(b_home, assertion=signed)).content
    # wrapping: a forged, unsigned assertion wrapping the signed one
    genuine = issue_assertion(exchange_for(b_home), "urn:gateway:BE", subject="dr-x")
    forged = etree.fromstring(etree.tostring(genuine))
    for s in forged.findall(f"{{{'http://www.w3.org/2000/09/xmldsig#'}}}Signature"):
        forged.remove(s)
    forged.find(f"{{{'urn:oasis:names:tc:SAML:2.0:assertion'}}}Subject")[0].text = "attacker"
    forged.append(genuine)
    r = _post(a, _request(b_home, assertion=forged))
    assert r.status_code == 400 and b"Fault" in r.content
    # DTD in the envelope
    assert b"DOCTYPE" in _post(a, b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>').content


def test_summary_over_http_is_signed(gateways):
    from gateway.access.tokens import mint
    from gateway.exchange.jws import loads_precise, verify_bundle

    a, a_home, _ = gateways
    token = mint(a.app.state.auth, scope="system/*.rs", subject="t")
    h = {"authorization": f"Bearer {token}"}
    r = httpx.get(f"{a.url}/fhir/Patient/$summary", params={"identifier": IDENT}, headers=h, timeout=30)
    assert r.status_code == 200
    assert verify_bundle(loads_precise(r.content), TrustStore(a_home)).country == "BE"
    r = httpx.get(f"{a.url}/fhir/Patient/$summary", params={"identifier": IDENT, "_outcome": "true"},
                  headers=h, timeout=30)
    bundle = loads_precise(r.content)["parameter"][0]["resource"]
    assert verify_bundle(bundle, TrustStore(a_home)).country == "BE"


@pytest.fixture
def tight(monkeypatch):
    """A's thresholds, small: a point of care may send 5 requests (then one
    every 1000 s); a person may read the records of one patient per hour."""
    monkeypatch.setenv("GATEWAY_CARE_RATE_LIMIT", "0.001")
    monkeypatch.setenv("GATEWAY_CARE_RATE_BURST", "5")
    monkeypatch.setenv("GATEWAY_DISTINCT_PATIENTS", "1")


GERMAN = "urn:oid:1.2.276.0.76.4.8|X123456789"  # the other citizen of the demo data


def _threshold_events(a_home: Path, text: str) -> list[dict]:
    store = Store(Settings.resolve(a_home).db_url)
    try:
        return [e for e in store.search("AuditEvent") if text in str(e.get("outcome", "")) + str(e)]
    finally:
        store.close()


def test_xca_counts_the_vouched_person_their_point_of_care_and_answers_429(tight, gateways):
    a, a_home, b_home = gateways
    b_store = Store(Settings.resolve(b_home).db_url)
    try:
        # a clinician at B reads one citizen's summary, then tries another's
        done = retrieve(b_home, b_store, "BE", IDENT, via="soap", requester="dr-x",
                        point_of_care="urn:oid:2.16.620.1.1")
        assert done.signer == "BE"
        with pytest.raises(ExchangeError, match="distinct-patient threshold") as refused:
            retrieve(b_home, b_store, "BE", GERMAN, via="soap", requester="dr-x")
        assert "dr-x" in str(refused.value)
        # another clinician is counted on their own
        assert retrieve(b_home, b_store, "BE", GERMAN, via="soap", requester="dr-y").signer == "BE"
    finally:
        b_store.close()
    # the refusal is in A's audit trail, for the patient concerned
    assert _threshold_events(a_home, "distinct-patient threshold")
    # one facility's requests share a bucket: 5, then 429 with Retry-After
    care = [_post(a, _request(b_home, organization="urn:oid:2.16.620.9")) for _ in range(6)]
    assert [r.status_code for r in care] == [200] * 5 + [429]
    assert int(care[-1].headers["Retry-After"]) >= 1
    assert b"Fault" in care[-1].content and b"point of care" in care[-1].content
    assert _post(a, _request(b_home, organization="urn:oid:2.16.620.10")).status_code == 200
    assert _threshold_events(a_home, "urn:oid:2.16.620.9")
