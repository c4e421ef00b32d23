"""The trust list: which peer gateways we accept, and for what.

An entry names a country, its endpoints and its certificates, each with a
purpose (``signing``, ``tls-client``, ``trust-list``), plus the entry's own
validity::

    {"country": "BE", "endpoints": {"base": "https://ncp.example.be"},
     "certificates": [{"purpose": "signing", "kid": "<x5t#S256>", "x5c": "<DER, base64>"}],
     "validFrom": "2025-01-01T00:00:00Z", "validTo": "2026-01-01T00:00:00Z"}

A published list (as the EU Digital COVID Certificate gateway's trust list)
is ``{"version": n, "issuedAt": ..., "entries": [...], "revoked": [kid...]}``
in RFC 8785 canonical JSON, signed as a compact JWS (RFC 7515) by a trust
anchor's ``trust-list`` key. Importing checks the signature against the
anchor certificate given by the operator and refuses a version not newer
than the last one imported from that anchor (no rollback).

A home keeps its pinned and imported entries in ``<home>/trust/peers.json``;
a running server re-reads the file when its modification time changes. The
gateway's own certificates are always trusted (its own entry). A certificate
is refused when unknown, revoked, outside its own or its entry's validity,
or pinned for another purpose.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from .errors import Untrusted, refuse
from .keys import PURPOSES, KeyPair, KeyRing, cert_from_b64, cert_to_b64, kid_of, load_keys

__all__ = ["TrustedCert", "PeerEntry", "TrustStore", "own_entry", "publish_list", "read_list",
           "utcnow"]

LIST_ALGORITHMS = ["ES256", "PS256"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class TrustedCert:
    country: str
    purpose: str
    cert: x509.Certificate
    kid: str
    not_before: dt.datetime
    not_after: dt.datetime


@dataclass(frozen=True)
class PeerEntry:
    country: str
    endpoints: dict[str, str]
    certs: tuple[TrustedCert, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)

    def endpoint(self, name: str = "base") -> str:
        if name not in self.endpoints:
            raise refuse(Untrusted, f"the trust list has no '{name}' endpoint for {self.country}")
        return self.endpoints[name].rstrip("/")

    def certs_for(self, purpose: str) -> list[TrustedCert]:
        return [c for c in self.certs if c.purpose == purpose]


def parse_entry(raw: dict[str, Any]) -> PeerEntry:
    """A peer entry from its JSON; certificate kids must match their DER."""
    country = str(raw["country"]).upper()
    valid_from = _parse_time(raw.get("validFrom"))
    valid_to = _parse_time(raw.get("validTo"))
    certs = []
    for item in raw.get("certificates", []):
        if item.get("purpose") not in PURPOSES:
            raise ValueError(f"{country}: unknown certificate purpose {item.get('purpose')!r}")
        cert = cert_from_b64(item["x5c"])
        kid = kid_of(cert)
        if item.get("kid", kid) != kid:
            raise ValueError(f"{country}: kid {item['kid']} does not match its certificate")
        nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
        if valid_from and valid_from > nb:
            nb = valid_from
        if valid_to and valid_to < na:
            na = valid_to
        certs.append(TrustedCert(country, item["purpose"], cert, kid, nb, na))
    return PeerEntry(country, {str(k): str(v) for k, v in raw.get("endpoints", {}).items()},
                     tuple(certs), raw)


def own_entry(ring: KeyRing, url: str | None = None, *, days: int = 365) -> dict[str, Any]:
    """This gateway's entry (signing and tls-client certificates) for a peer to pin."""
    now = utcnow()
    certs = [{"purpose": p, "kid": ring[p].kid, "x5c": cert_to_b64(ring[p].cert)}  # type: ignore[index]
             for p in ("signing", "tls-client") if p in ring.pairs]
    signing = ring.pairs["signing"].cert
    until = min(signing.not_valid_after_utc, now + dt.timedelta(days=days))
    entry: dict[str, Any] = {"country": ring.country, "endpoints": {}, "certificates": certs,
                             "validFrom": _iso(now - dt.timedelta(minutes=5)), "validTo": _iso(until)}
    if url:
        entry["endpoints"]["base"] = url.rstrip("/")
    return entry


def publish_list(anchor: KeyPair, entries: list[dict[str, Any]], version: int,
                 revoked: list[str] | None = None) -> str:
    """A trust list signed by ``anchor`` (a ``trust-list`` key): compact JWS."""
    import rfc8785
    from joserfc import jws

    from .jws import _registry, joserfc_key

    if anchor.purpose != "trust-list":
        raise ValueError("a trust list is signed with a trust-list key")
    body = {"version": version, "issuedAt": _iso(utcnow()), "entries": entries,
            "revoked": sorted(revoked or [])}
    header = {"alg": anchor.jws_alg, "typ": "trust-list+jws", "kid": anchor.kid,
              "x5t#S256": anchor.kid, "x5c": [cert_to_b64(anchor.cert)]}
    return jws.serialize_compact(header, rfc8785.dumps(body), joserfc_key(anchor.key),
                                 registry=_registry())


def read_list(token: str, anchor_cert: x509.Certificate) -> dict[str, Any]:
    """The body of a trust list whose signature verifies with ``anchor_cert``."""
    from joserfc import jws
    from joserfc.errors import JoseError

    from .jws import _registry, joserfc_public

    now = utcnow()
    if not (anchor_cert.not_valid_before_utc <= now <= anchor_cert.not_valid_after_utc):
        raise refuse(Untrusted, "the trust anchor's certificate is not valid now")
    try:
        header = json.loads(_b64d(token.strip().split(".")[0]))
        if header.get("kid") != kid_of(anchor_cert):
            raise refuse(Untrusted, "the trust list is not signed by this anchor")
        obj = jws.deserialize_compact(token.strip(), joserfc_public(anchor_cert),
                                      algorithms=LIST_ALGORITHMS, registry=_registry())
    except (JoseError, ValueError, IndexError) as exc:
        raise refuse(Untrusted, f"the trust list's signature does not verify ({type(exc).__name__})")
    body = json.loads(obj.payload)
    if not isinstance(body, dict) or not isinstance(body.get("version"), int):
        raise refuse(Untrusted, "the trust list has no version")
    return body


def _b64d(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class TrustStore:
    """A home's trust list, re-read when ``peers.json`` changes."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / "trust" / "peers.json"
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self._data: dict[str, Any] = {}
        self._peers: dict[str, PeerEntry] = {}
        self._by_kid: dict[str, TrustedCert] = {}

    # -- reading ---------------------------------------------------------
    def _load(self) -> None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = -1
        own_stamp = _own_stamp(self.home)
        key = (stamp, own_stamp)
        with self._lock:
            if self._stamp == key:
                return
            data = json.loads(self.path.read_text()) if stamp != -1 else {}
            peers = {cc: parse_entry(raw) for cc, raw in data.get("peers", {}).items()}
            ring = _ring_or_none(self.home)
            if ring is not None:
                mine = own_entry(ring)
                mine["certificates"] = [{"purpose": p, "x5c": cert_to_b64(kp.cert)}
                                        for p, kp in ring.pairs.items() if p != "trust-list"]
                mine["validFrom"] = mine["validTo"] = None
                base = data.get("self", {}).get("endpoints", {})
                mine["endpoints"] = base
                peers.setdefault(ring.country, parse_entry(mine))
            by_kid = {c.kid: c for e in peers.values() for c in e.certs}
            self._data, self._peers, self._by_kid, self._stamp = data, peers, by_kid, key

    def peers(self) -> dict[str, PeerEntry]:
        self._load()
        return dict(self._peers)

    def peer(self, country: str) -> PeerEntry:
        self._load()
        entry = self._peers.get(country.upper())
        if entry is None:
            raise refuse(Untrusted, f"{country.upper()} is not on the trust list")
        return entry

    def revoked(self) -> set[str]:
        self._load()
        return set(self._data.get("revoked", []))

    def certificate(self, kid: str, purpose: str, at: dt.datetime | None = None) -> TrustedCert:
        """The trusted certificate ``kid`` for ``purpose``, valid at ``at`` (now)."""
        self._load()
        found = self._by_kid.get(kid)
        if found is None:
            raise refuse(Untrusted, "the signer's certificate is not on the trust list")
        if kid in self._data.get("revoked", []):
            raise refuse(Untrusted, f"the signer's certificate is revoked ({found.country})")
        if found.purpose != purpose:
            raise refuse(Untrusted, f"the certificate is trusted for '{found.purpose}', not '{purpose}'")
        when = at or utcnow()
        if not (found.not_before <= when <= found.not_after):
            raise refuse(Untrusted, f"the signer's certificate is not valid now ({found.country}: "
                                    f"{_iso(found.not_before)} to {_iso(found.not_after)})")
        return found

    def by_cert(self, cert: x509.Certificate, purpose: str, at: dt.datetime | None = None) -> TrustedCert:
        return self.certificate(kid_of(cert), purpose, at)

    # -- changing ----------------------------------------------------------
    def _save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def _current(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def add(self, raw: dict[str, Any]) -> PeerEntry:
        """Pin one peer entry (replacing that country's entry)."""
        entry = parse_entry(raw)
        data = self._current()
        data.setdefault("peers", {})[entry.country] = raw
        data["version"] = int(data.get("version", 0)) + 1
        self._save(data)
        return entry

    def remove(self, country: str) -> bool:
        data = self._current()
        gone = data.get("peers", {}).pop(country.upper(), None) is not None
        if gone:
            data["version"] = int(data.get("version", 0)) + 1
            self._save(data)
        return gone

    def set_own_endpoint(self, url: str) -> None:
        data = self._current()
        data.setdefault("self", {})["endpoints"] = {"base": url.rstrip("/")}
        self._save(data)

    def import_list(self, token: str, anchor_cert: x509.Certificate) -> list[str]:
        """Import a signed trust list; returns the countries it brought."""
        body = read_list(token, anchor_cert)
        anchor = kid_of(anchor_cert)
        data = self._current()
        last = data.get("anchors", {}).get(anchor, 0)
        if body["version"] <= last:
            raise refuse(Untrusted, f"trust list version {body['version']} is not newer than "
                                    f"{last}, already imported")
        entries = [parse_entry(raw) for raw in body.get("entries", [])]
        peers = data.setdefault("peers", {})
        for entry in entries:
            peers[entry.country] = entry.raw
        data["revoked"] = sorted(set(data.get("revoked", [])) | set(body.get("revoked", [])))
        data.setdefault("anchors", {})[anchor] = body["version"]
        data["version"] = int(data.get("version", 0)) + 1
        self._save(data)
        return [e.country for e in entries]


def _own_stamp(home: Path) -> float:
    try:
        return (home / "keys" / "exchange" / "country").stat().st_mtime_ns
    except FileNotFoundError:
        return -1


def _ring_or_none(home: Path) -> KeyRing | None:
    try:
        return load_keys(home)
    except FileNotFoundError:
        return None

