"""The FHIR side of the cross-border flow, as the requesting gateway:

1. an access token from the peer's ``/auth/token`` with a client assertion
   signed by our ``signing`` key (SMART Backend Services, RFC 7523
   ``private_key_jwt``: ``iss`` = ``sub`` = ``urn:gateway:<our country>``,
   ``aud`` = the token URL, ``exp`` 5 minutes, a fresh ``jti``, header
   ``kid`` = ``x5t#S256`` of our signing certificate);
2. PDQm ITI-78: ``GET /fhir/Patient?identifier=system|value``;
3. MHD ITI-67: ``GET /fhir/DocumentReference?patient=<id>&type=http://loinc.org|60591-5``;
4. MHD ITI-68: ``GET`` the DocumentReference's ``attachment.url`` (only on
   the peer's own base URL: the token is never sent elsewhere);
5. verify the JWS against the trust list and store with a Provenance naming
   the peer (:func:`gateway.exchange.retrieve.store_document`).

The peer's base URL comes from its trust-list entry (``endpoints.base``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from .context import Exchange
from .errors import ExchangeError, PeerUnavailable, refuse

__all__ = ["PS_TYPE", "TOKEN_PATH", "FHIRPeer", "client_assertion", "get_token"]

TOKEN_PATH = "/auth/token"
PS_TYPE = "http://loinc.org|60591-5"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def client_assertion(ex: Exchange, token_url: str, *, lifetime: int = 300,
                     now: float | None = None, jti: str | None = None,
                     issuer: str | None = None) -> str:
    """A client assertion JWT (RFC 7523 §3) signed with our signing key."""
    from joserfc import jwt

    from .jws import joserfc_key

    pair = ex.keys["signing"]
    now = time.time() if now is None else now
    client = issuer or ex.urn
    header = {"alg": pair.jws_alg, "kid": pair.kid, "typ": "JWT"}
    claims = {"iss": client, "sub": client, "aud": token_url, "iat": int(now),
              "exp": int(now) + lifetime, "jti": jti or str(uuid.uuid4())}
    return jwt.encode(header, claims, joserfc_key(pair.key), algorithms=[pair.jws_alg])


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        detail = response.text[:300]
        cls = PeerUnavailable if response.status_code >= 500 else ExchangeError
        raise refuse(cls, f"{what}: HTTP {response.status_code} {detail}")
    return response


def get_token(ex: Exchange, base: str, *, scope: str | None = None,
              client: httpx.Client | None = None) -> str:
    """An access token from the peer at ``base`` (client credentials grant)."""
    url = base.rstrip("/") + TOKEN_PATH
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(ex, url)}
    if scope:
        form["scope"] = scope
    try:
        if client is not None:
            r = client.post(url, data=form)
        else:
            r = httpx.post(url, data=form, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise refuse(PeerUnavailable, f"token endpoint unreachable ({type(exc).__name__})") from exc
    token = _check(r, "token request refused").json().get("access_token")
    if not isinstance(token, str) or not token:
        raise refuse(ExchangeError, "the token endpoint gave no access_token")
    return token


class FHIRPeer:
    """A peer gateway reached over FHIR (PDQm, MHD), with a backend-services token."""

    def __init__(self, ex: Exchange, peer: str) -> None:
        self.ex = ex
        self.peer = peer.upper()
        self.base = ex.trust.peer(self.peer).endpoint("base")
        self.http = httpx.Client(timeout=TIMEOUT, headers={"accept": "application/fhir+json"})
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FHIRPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, url: str, what: str, **params: str) -> httpx.Response:
        if not (url == self.base or url.startswith(self.base + "/")):
            raise refuse(ExchangeError, f"{what}: {url} is not on {self.peer}'s base URL")
        if self._token is None:
            self._token = get_token(self.ex, self.base, client=self.http)
        try:
            r = self.http.get(url, params=params or None,
                              headers={"authorization": f"Bearer {self._token}"})
        except httpx.HTTPError as exc:
            raise refuse(PeerUnavailable, f"{what}: {self.peer} unreachable ({type(exc).__name__})") from exc
        return _check(r, what)

    def find_patient(self, identifier: str) -> dict[str, Any] | None:
        """PDQm ITI-78: the first active Patient with this identifier."""
        bundle = self._get(f"{self.base}/fhir/Patient", "PDQm query", identifier=identifier).json()
        found = [e["resource"] for e in bundle.get("entry", [])
                 if (e.get("resource") or {}).get("resourceType") == "Patient"]
        active = [p for p in found if p.get("active", True) is not False] or found
        return active[0] if active else None

    def find_summaries(self, patient_id: str) -> list[dict[str, Any]]:
        """MHD ITI-67: current DocumentReferences of type Patient Summary."""
        bundle = self._get(f"{self.base}/fhir/DocumentReference", "MHD query",
                           patient=patient_id, type=PS_TYPE, status="current").json()
        return [e["resource"] for e in bundle.get("entry", [])
                if (e.get("resource") or {}).get("resourceType") == "DocumentReference"]

    def retrieve(self, ref: dict[str, Any]) -> tuple[str, str, bytes]:
        """MHD ITI-68: (unique id, mime type, bytes) of the referenced document."""
        attachment = ((ref.get("content") or [{}])[0]).get("attachment") or {}
        url = attachment.get("url")
        if not isinstance(url, str) or not url:
            raise refuse(ExchangeError, "the DocumentReference has no attachment url")
        r = self._get(url, "MHD retrieve")
        uid = (ref.get("masterIdentifier") or {}).get("value") or ref.get("id") or url
        mime = r.headers.get("content-type", attachment.get("contentType", "")).split(";")[0]
        return str(uid), mime, r.content
