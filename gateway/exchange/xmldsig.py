"""XML signatures (W3C XML-DSig 1.1) on CDA documents and SAML assertions.

- Enveloped signatures, exclusive canonicalisation
  (``http://www.w3.org/2001/10/xml-exc-c14n#``), SHA-256 digests, and
  ``rsa-sha256`` or ``ecdsa-sha256`` signature methods; SHA-1 and HMAC are
  refused at verification (signxml's ``SignatureConfiguration``).
- The signer's certificate travels in ``KeyInfo/X509Data``, but it is only
  used to find the trusted certificate with the same SHA-256 in our trust
  list (purpose ``signing``); the signature is then checked against that
  trusted certificate (``x509_cert``), never against a public CA bundle.
- Only the XML the verifier returns as signed is used afterwards: callers
  get :attr:`VerifiedXml.signed` and must not read the input tree again
  (signature-wrapping attacks add unsigned content next to signed content).
- Input is parsed with a safe parser: no DTDs, no entity expansion, no
  network; a document carrying a DOCTYPE is refused outright.

Keys and certificates are passed to signxml as loaded objects, not PEM.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from lxml import etree

from .errors import SignatureInvalid, refuse
from .keys import KeyPair
from .trust import TrustedCert, TrustStore

__all__ = ["DS", "safe_parse", "sign_xml", "sign_element", "verify_xml", "VerifiedXml",
           "signer_certificate", "EXC_C14N"]

DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          dtd_validation=False, huge_tree=False, remove_blank_text=False)


def safe_parse(data: bytes) -> Any:
    """The root element of ``data``; DOCTYPEs (DTDs, entities) are refused."""
    head = data[:4096].lstrip()
    if b"<!DOCTYPE" in data[:65536] or b"<!ENTITY" in data[:65536]:
        raise refuse(SignatureInvalid, "XML with a DOCTYPE or entity declarations is refused")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise refuse(SignatureInvalid, f"the XML cannot be read: {exc}") from exc
    if root.getroottree().docinfo.doctype or not head:
        raise refuse(SignatureInvalid, "XML with a DOCTYPE is refused")
    return root


def _signer(pair: KeyPair) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec
    from signxml import DigestAlgorithm, SignatureMethod, XMLSigner

    method = (SignatureMethod.ECDSA_SHA256 if isinstance(pair.key, ec.EllipticCurvePrivateKey)
              else SignatureMethod.RSA_SHA256)
    return XMLSigner(signature_algorithm=method, digest_algorithm=DigestAlgorithm.SHA256,
                     c14n_algorithm=EXC_C14N)


def sign_element(element: Any, pair: KeyPair, *, id_attribute: str | None = None) -> Any:
    """Sign ``element`` in place of itself (enveloped); returns the signed element.

    With ``id_attribute`` (SAML: ``ID``) the reference is ``#<id>``; a
    ``ds:Signature Id="placeholder"`` child, if present, marks where the
    signature goes (SAML wants it right after ``Issuer``).
    """
    if pair.purpose != "signing":
        raise ValueError("XML is signed with a signing key")
    ref = None
    if id_attribute:
        ref = "#" + element.get(id_attribute)
    return _signer(pair).sign(element, key=pair.key, cert=[pair.cert], reference_uri=ref,
                              id_attribute=id_attribute)


def sign_xml(data: bytes, pair: KeyPair) -> bytes:
    """A CDA (or any) document with an enveloped signature over the whole document."""
    root = safe_parse(data)
    for old in root.findall(f"{{{DS}}}Signature"):
        root.remove(old)
    signed = sign_element(root, pair)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


@dataclass(frozen=True)
class VerifiedXml:
    signed: Any  # the element the signature covers (use only this)
    signer: TrustedCert


def signer_certificate(root: Any) -> Any:
    """The certificate in the (single) top-level signature's KeyInfo."""
    from cryptography import x509

    sigs = [s for s in root.iter(f"{{{DS}}}Signature")]
    if len(sigs) != 1:
        raise refuse(SignatureInvalid, f"expected one XML signature, found {len(sigs)}")
    certs = sigs[0].findall(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
    if len(certs) != 1:
        raise refuse(SignatureInvalid, "the XML signature must carry exactly one X509Certificate")
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join((certs[0].text or "").split())))
    except ValueError as exc:
        raise refuse(SignatureInvalid, "the XML signature's certificate cannot be read") from exc


def _config() -> Any:
    from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod

    return SignatureConfiguration(
        require_x509=True, expect_references=1,
        signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.ECDSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}))


def verify_xml(data: bytes | Any, trust: TrustStore, *, id_attribute: str | None = None) -> VerifiedXml:
    """Verify the enveloped signature of ``data`` against the trust list."""
    from signxml import XMLVerifier
    from signxml.exceptions import InvalidInput, InvalidSignature

    root = safe_parse(data) if isinstance(data, (bytes, bytearray)) else data
    cert = signer_certificate(root)
    trusted = trust.by_cert(cert, "signing")
    try:
        result = XMLVerifier().verify(root, x509_cert=trusted.cert, id_attribute=id_attribute,
                                      expect_config=_config(), parser=_PARSER)
    except (InvalidSignature, InvalidInput) as exc:
        raise refuse(SignatureInvalid, f"the XML signature does not verify: {exc}") from exc
    signed = result.signed_xml  # type: ignore[union-attr]
    if signed is None:
        raise refuse(SignatureInvalid, "the XML signature covers nothing")
    return VerifiedXml(signed, trusted)
