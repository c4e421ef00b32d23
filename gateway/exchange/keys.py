"""Key pairs and self-signed X.509 certificates, one per purpose.

Purposes: ``signing`` (documents, SAML assertions, client assertions),
``tls-client`` (mutual TLS towards peers) and ``trust-list`` (the key of a
trust anchor that signs trust lists). EC P-256 is the default; RSA keys of
2048 bits or more are accepted when loaded. A certificate's ``kid`` is the
base64url SHA-256 of its DER encoding, the ``x5t#S256`` of RFC 7515 §4.1.8.

A home keeps them in ``<home>/keys/exchange/``: ``<purpose>.key.pem``
(PKCS#8, mode 0600), ``<purpose>.cert.pem`` and ``country`` (ISO 3166
alpha-2). Each demo home makes its own keys: two homes never share an
anchor, so they trust each other only through pinned entries.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Purpose", "PURPOSES", "KeyPair", "KeyRing", "kid_of", "b64url", "generate",
           "init_keys", "load_keys", "ensure_keys", "keys_dir", "cert_from_b64", "cert_to_b64"]

Purpose = Literal["signing", "tls-client", "trust-list"]
PURPOSES: tuple[Purpose, ...] = ("signing", "tls-client", "trust-list")
MIN_RSA_BITS = 2048

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def kid_of(cert: x509.Certificate) -> str:
    """base64url(SHA-256(DER)): the certificate's ``x5t#S256``."""
    return b64url(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())


def cert_to_b64(cert: x509.Certificate) -> str:
    """Standard base64 DER, as in ``x5c`` (RFC 7515 §4.1.6)."""
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


def cert_from_b64(text: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))


@dataclass(frozen=True)
class KeyPair:
    purpose: Purpose
    key: PrivateKey
    cert: x509.Certificate

    @property
    def kid(self) -> str:
        return kid_of(self.cert)

    @property
    def jws_alg(self) -> str:
        """ES256 for P-256 keys, PS256 for RSA keys."""
        return "ES256" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "PS256"


def _check_key(key: object) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"EC keys must be P-256, not {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys need {MIN_RSA_BITS} bits or more, not {key.key_size}")
        return key
    raise ValueError(f"unsupported key type {type(key).__name__}")


def generate(purpose: Purpose, country: str, *, kind: str = "EC", days: int = 365,
             not_before: dt.datetime | None = None) -> KeyPair:
    """A new key pair with a self-signed certificate for ``purpose``."""
    key: PrivateKey
    if kind == "EC":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind.startswith("RSA"):  # "RSA" (2048 bits) or "RSA3072"
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:] or 2048))
        _check_key(key)
    else:
        raise ValueError(f"key kind {kind!r}: EC or RSA[bits]")
    start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Health-data gateway"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{country.upper()} gateway {purpose}")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=purpose == "trust-list", path_length=None),
                              critical=True))
    if purpose == "tls-client":
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                        critical=False)
    usage = dict(digital_signature=True, content_commitment=purpose == "signing",
                 key_encipherment=False, data_encipherment=False, key_agreement=False,
                 key_cert_sign=purpose == "trust-list", crl_sign=False, encipher_only=False,
                 decipher_only=False)
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    return KeyPair(purpose, key, cert)


@dataclass(frozen=True)
class KeyRing:
    """A gateway's own keys: its country and one key pair per purpose."""

    country: str
    pairs: dict[str, KeyPair]

    def __getitem__(self, purpose: Purpose) -> KeyPair:
        return self.pairs[purpose]


def keys_dir(home: Path) -> Path:
    return home / "keys" / "exchange"


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def save_pair(home: Path, pair: KeyPair) -> None:
    folder = keys_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / f"{pair.purpose}.key.pem", pair.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), 0o600)
    _write(folder / f"{pair.purpose}.cert.pem", pair.cert.public_bytes(serialization.Encoding.PEM))


def init_keys(home: Path, country: str, *, kind: str = "EC", force: bool = False) -> KeyRing:
    """Make a demo key set for ``country`` in ``home`` (refuses to overwrite unless ``force``)."""
    folder = keys_dir(home)
    if (folder / "country").exists() and not force:
        raise FileExistsError(f"keys already exist in {folder}")
    if len(country) != 2 or not country.isalpha():
        raise ValueError("country: an ISO 3166 alpha-2 code, e.g. BE")
    folder.mkdir(parents=True, exist_ok=True)
    pairs = {p: generate(p, country, kind=kind) for p in PURPOSES}
    for pair in pairs.values():
        save_pair(home, pair)
    _write(folder / "country", country.upper().encode())
    _cache.pop(str(home), None)
    return KeyRing(country.upper(), dict(pairs))


_cache: dict[str, tuple[float, KeyRing]] = {}
_lock = threading.Lock()


def load_keys(home: Path) -> KeyRing:
    """The home's key ring (cached; re-read when the country file changes)."""
    folder = keys_dir(home)
    stamp = (folder / "country").stat().st_mtime
    with _lock:
        hit = _cache.get(str(home))
        if hit and hit[0] == stamp:
            return hit[1]
    pairs: dict[str, KeyPair] = {}
    for purpose in PURPOSES:
        key_file, cert_file = folder / f"{purpose}.key.pem", folder / f"{purpose}.cert.pem"
        if not key_file.exists():
            continue
        key = _check_key(serialization.load_pem_private_key(key_file.read_bytes(), None))
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        pairs[purpose] = KeyPair(purpose, key, cert)
    ring = KeyRing((folder / "country").read_text().strip(), pairs)
    with _lock:
        _cache[str(home)] = (stamp, ring)
    return ring


def ensure_keys(home: Path, country: str = "XX") -> KeyRing:
    """The home's keys, made for ``country`` when absent (``gateway serve``)."""
    if not (keys_dir(home) / "country").exists():
        try:
            return init_keys(home, country)
        except FileExistsError:
            pass
    return load_keys(home)
