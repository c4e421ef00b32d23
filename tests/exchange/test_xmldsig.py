"""XML signatures on CDA documents: round trip, attacks, python-xmlsec interop."""

from __future__ import annotations

import pytest
from lxml import etree

from gateway.exchange.errors import SignatureInvalid, Untrusted
from gateway.exchange.keys import cert_to_b64, generate
from gateway.exchange.trust import TrustStore
from gateway.exchange.xmldsig import DS, safe_parse, sign_xml, verify_xml

from .conftest import CDA

SOME_CDA = CDA[:: max(1, len(CDA) // 6)]


@pytest.mark.parametrize("path", SOME_CDA, ids=lambda p: p.name)
def test_cda_round_trip(path, ring_a, trust_b):
    signed = sign_xml(path.read_bytes(), ring_a["signing"])
    result = verify_xml(signed, trust_b)
    assert result.signer.country == "BE"
    assert etree.QName(result.signed).localname == "ClinicalDocument"


def test_rsa_sha256(home_b):
    pair = generate("signing", "DE", kind="RSA")
    store = TrustStore(home_b)
    store.add({"country": "DE", "certificates": [{"purpose": "signing", "x5c": cert_to_b64(pair.cert)}]})
    signed = sign_xml(CDA[0].read_bytes(), pair)
    assert b"rsa-sha256" in signed
    assert verify_xml(signed, store).signer.country == "DE"


@pytest.fixture
def signed_cda(ring_a):
    return sign_xml(CDA[0].read_bytes(), ring_a["signing"])


def test_one_byte_tamper(signed_cda, trust_b):
    i = signed_cda.index(b"<title>") + len(b"<title>")
    tampered = signed_cda[:i] + bytes([signed_cda[i] ^ 0x01]) + signed_cda[i + 1:]
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_xml(tampered, trust_b)


def test_untrusted_signer(signed_cda, home_b):
    with pytest.raises(Untrusted):
        verify_xml(signed_cda, TrustStore(home_b))


def _algorithm(signed: bytes, tag: str, new: str) -> bytes:
    root = etree.fromstring(signed)
    root.find(f".//{{{DS}}}{tag}").set("Algorithm", new)
    return etree.tostring(root)


@pytest.mark.parametrize("tag,alg", [
    ("SignatureMethod", "http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
    ("SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"),
    ("SignatureMethod", "http://www.w3.org/2000/09/xmldsig#hmac-sha1"),
    ("SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"),
    ("DigestMethod", "http://www.w3.org/2000/09/xmldsig#sha1"),
])
def test_downgrades_refused(signed_cda, trust_b, tag, alg):
    with pytest.raises(SignatureInvalid):
        verify_xml(_algorithm(signed_cda, tag, alg), trust_b)


def test_wrapping_extra_content_outside_signed_part(ring_a, trust_b):
    """A signed element moved into a wrapper next to forged content: only the
    signed element comes back, and an extra unsigned root is refused."""
    signed = sign_xml(CDA[0].read_bytes(), ring_a["signing"])
    inner = etree.fromstring(signed)
    wrapper = etree.Element("{urn:hl7-org:v3}ClinicalDocument")
    etree.SubElement(wrapper, "{urn:hl7-org:v3}title").text = "forged"
    wrapper.append(inner)
    with pytest.raises(SignatureInvalid):
        verify_xml(etree.tostring(wrapper), trust_b)


def test_wrapping_second_signature_refused(ring_a, trust_b, signed_cda):
    root = etree.fromstring(signed_cda)
    root.insert(0, etree.fromstring(etree.tostring(root.find(f"{{{DS}}}Signature"))))
    with pytest.raises(SignatureInvalid, match="one XML signature"):
        verify_xml(etree.tostring(root), trust_b)


def test_signed_xml_is_what_is_returned(signed_cda, trust_b):
    result = verify_xml(signed_cda, trust_b)
    assert result.signed.find(f"{{{DS}}}Signature") is None  # the enveloped signature removed


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>',
])
def test_dtd_and_entities_refused(doc):
    with pytest.raises(SignatureInvalid, match="DOCTYPE"):
        safe_parse(doc)


def test_python_xmlsec_verifies_our_signature(ring_a, signed_cda):
    xmlsec = pytest.importorskip("xmlsec")
    from cryptography.hazmat.primitives import serialization

    root = etree.fromstring(signed_cda)
    node = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
    ctx = xmlsec.SignatureContext()
    pem = ring_a["signing"].cert.public_bytes(serialization.Encoding.PEM)
    ctx.key = xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatCertPem)
    ctx.verify(node)  # raises on failure
