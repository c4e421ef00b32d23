"""Signed FHIR Bundles: ``Bundle.signature`` holding a detached JWS.

What is signed (RFC 7515, RFC 8785):

- the payload is the RFC 8785 (JCS) canonical JSON of the Bundle without
  ``id``, ``meta`` and ``signature`` (those change in transit or are the
  signature itself); array order is kept, so reordered entries do not verify;
- the JWS is an ordinary compact JWS with the payload part left empty
  (detached content, RFC 7515 appendix F; not the unencoded ``b64: false``
  variant of RFC 7797): ``BASE64URL(header)..BASE64URL(signature)``;
- the protected header carries ``alg`` (ES256 for P-256 keys, PS256 for
  RSA), ``x5c`` (the signer's certificate), ``kid`` = ``x5t#S256`` (the
  base64url SHA-256 of that certificate, also the trust list's key id) and
  ``sigT`` (signing time, as in ETSI JAdES);
- ``Bundle.signature``: ``type`` author's signature (ASTM E1762), ``when``,
  ``who`` (the signing gateway), ``sigFormat`` ``application/jose`` and
  ``data`` (base64 of the compact JWS).

**Decimal precision.** RFC 8785 serialises numbers as IEEE-754 doubles, so
``12.50`` and ``12.5`` canonicalise alike, while in FHIR the trailing zero
is significant (precision). The signer therefore lists every number whose
written form differs from its canonical form (JSON pointer → text, e.g.
``{"/entry/3/resource/valueQuantity/value": "12.50"}``) and puts the
base64url SHA-256 of that map's canonical JSON in the protected header as
``decp`` (absent when every number is already canonical). The verifier
builds the same map from the text it received (numbers are parsed keeping
their text, :func:`loads_precise`) and refuses the document when it differs:
rewriting ``12.5`` as ``12.50`` (or back) breaks the signature. Numbers in
in-memory Bundles (no source text) are taken as Python writes them, which
is what the gateway's JSON writer sends. Verify the bytes received, not a
re-serialisation.

Verification refuses ``none``, HMAC and any algorithm other than ES256 and
PS256, a ``b64``/``crit`` header, a certificate that is not on the trust
list for ``signing`` (or expired, revoked, of another purpose), an ``x5c``
that differs from the trusted certificate, and any change to the payload.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..fhir.jsonio import PreciseFloat, loads_precise
from .errors import SignatureInvalid, refuse
from .keys import KeyPair, b64url, cert_from_b64, cert_to_b64, kid_of
from .trust import TrustStore, utcnow

__all__ = ["sign_bundle", "verify_bundle", "loads_precise", "signing_input", "precision_map",
           "VerifiedSignature", "joserfc_key", "joserfc_public", "ALGORITHMS"]

ALGORITHMS = ("ES256", "PS256")
SIG_TYPE = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1",
            "display": "Author's Signature"}
EXCLUDED = ("id", "meta", "signature")


@functools.lru_cache(maxsize=64)
def joserfc_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Any:
    from joserfc.jwk import ECKey, RSAKey

    return ECKey.import_key(key) if isinstance(key, ec.EllipticCurvePrivateKey) else RSAKey.import_key(key)


@functools.lru_cache(maxsize=256)
def joserfc_public(cert: x509.Certificate) -> Any:
    from joserfc.jwk import ECKey, RSAKey

    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return ECKey.import_key(pub)
    if isinstance(pub, rsa.RSAPublicKey):
        return RSAKey.import_key(pub)
    raise refuse(SignatureInvalid, "the signer's key type is not supported")


@functools.lru_cache(maxsize=1)
def _registry() -> Any:
    """joserfc's registry, knowing our ``sigT`` and ``decp`` header parameters."""
    from joserfc.jws import JWSRegistry
    from joserfc.registry import HeaderParameter

    registry = JWSRegistry(header_registry={
        "sigT": HeaderParameter("signing time (ETSI JAdES)", "str"),
        "decp": HeaderParameter("digest of decimal texts", "str")}, algorithms=list(ALGORITHMS))
    registry.max_header_length = 8192  # x5c with an RSA certificate is ~1.5 KB
    registry.max_payload_length = 64 * 1024 * 1024  # large summaries; the HTTP layer limits bodies
    return registry


def _canonical_number(value: float) -> str:
    import rfc8785

    return rfc8785.dumps(value).decode()


def precision_map(node: Any, path: str = "") -> dict[str, str]:
    """JSON pointer → written text of every number not in RFC 8785 form."""
    found: dict[str, str] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            if path == "" and k in EXCLUDED:
                continue
            found.update(precision_map(v, f"{path}/{k.replace('~', '~0').replace('/', '~1')}"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found.update(precision_map(v, f"{path}/{i}"))
    elif isinstance(node, float):
        text = node.text if isinstance(node, PreciseFloat) else repr(node)
        if text != _canonical_number(node):
            found[path] = text
    return found


def _precision_digest(bundle: dict[str, Any]) -> str | None:
    import rfc8785

    found = precision_map(bundle)
    return b64url(hashlib.sha256(rfc8785.dumps(found)).digest()) if found else None


def signing_input(bundle: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of the Bundle without id, meta and signature."""
    import rfc8785

    try:
        return rfc8785.dumps({k: v for k, v in bundle.items() if k not in EXCLUDED})
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise refuse(SignatureInvalid, f"the Bundle cannot be canonicalised (RFC 8785): {exc}") from exc


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def sign_bundle(bundle: dict[str, Any], pair: KeyPair, *, country: str | None = None,
                when: dt.datetime | None = None) -> dict[str, Any]:
    """The Bundle with ``signature`` set (a new dict; the input is not changed)."""
    from joserfc import jws

    if pair.purpose != "signing":
        raise ValueError("documents are signed with a signing key")
    if bundle.get("resourceType") != "Bundle":
        raise refuse(SignatureInvalid, "only Bundles are signed")
    stamp = _iso(when or utcnow())
    header: dict[str, Any] = {"alg": pair.jws_alg, "kid": pair.kid, "x5t#S256": pair.kid,
                              "x5c": [cert_to_b64(pair.cert)], "sigT": stamp}
    digest = _precision_digest(bundle)
    if digest:
        header["decp"] = digest
    compact = jws.serialize_compact(header, signing_input(bundle), joserfc_key(pair.key),
                                    algorithms=[pair.jws_alg], registry=_registry())
    head, _, sig = compact.split(".")
    detached = f"{head}..{sig}"
    who = country or _country(pair.cert)
    signed = dict(bundle)
    signed["signature"] = {
        "type": [SIG_TYPE], "when": stamp,
        "who": {"identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:gateway:{who}"},
                "display": f"{who} gateway"},
        "sigFormat": "application/jose",
        "data": base64.b64encode(detached.encode("ascii")).decode("ascii"),
    }
    return signed


def _country(cert: x509.Certificate) -> str:
    from cryptography.x509.oid import NameOID

    attrs = cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return str(attrs[0].value) if attrs else "XX"


@dataclass(frozen=True)
class VerifiedSignature:
    country: str
    kid: str
    alg: str
    signed_at: str


def _b64url_json(part: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError as exc:
        raise refuse(SignatureInvalid, "the JWS header is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise refuse(SignatureInvalid, "the JWS header is not a JSON object")
    return value


def verify_bundle(bundle: dict[str, Any], trust: TrustStore) -> VerifiedSignature:
    """Check ``Bundle.signature`` against the trust list; raise if not valid and trusted."""
    from joserfc import jws
    from joserfc.errors import JoseError

    sig = bundle.get("signature")
    if not isinstance(sig, dict) or not sig.get("data"):
        raise refuse(SignatureInvalid, "the Bundle is not signed", "Bundle.signature")
    if sig.get("sigFormat") != "application/jose":
        raise refuse(SignatureInvalid, "Bundle.signature.sigFormat must be application/jose")
    try:
        compact = base64.b64decode(sig["data"], validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise refuse(SignatureInvalid, "Bundle.signature.data is not base64 of a JWS") from exc
    parts = compact.split(".")
    if len(parts) != 3 or parts[1] != "":
        raise refuse(SignatureInvalid, "the JWS must be compact with a detached (empty) payload")
    header = _b64url_json(parts[0])
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise refuse(SignatureInvalid, f"JWS algorithm {alg!r} is not accepted (ES256, PS256 only)")
    if "b64" in header or "crit" in header:
        raise refuse(SignatureInvalid, "JWS 'b64'/'crit' headers are not accepted")
    chain = header.get("x5c")
    if not isinstance(chain, list) or not chain:
        raise refuse(SignatureInvalid, "the JWS header has no x5c certificate")
    try:
        cert = cert_from_b64(chain[0])
    except ValueError as exc:
        raise refuse(SignatureInvalid, "the x5c certificate cannot be read") from exc
    kid = kid_of(cert)
    if header.get("kid") != kid or header.get("x5t#S256", kid) != kid:
        raise refuse(SignatureInvalid, "the JWS kid does not name its x5c certificate")
    trusted = trust.certificate(kid, "signing")
    try:
        jws.deserialize_compact(compact, joserfc_public(trusted.cert), algorithms=[alg],
                                registry=_registry(), payload=signing_input(bundle))
    except (JoseError, ValueError) as exc:
        raise refuse(SignatureInvalid, "the signature does not match the Bundle "
                                       f"({type(exc).__name__})") from exc
    if header.get("decp") != _precision_digest(bundle):
        raise refuse(SignatureInvalid, "the written precision of a decimal changed after signing")
    return VerifiedSignature(trusted.country, kid, alg, str(header.get("sigT", "")))
