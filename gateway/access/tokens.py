"""Bearer JWTs: verification against a configured issuer and JWKS, and
development tokens signed with the home's demo key.

Configuration (``<home>/auth.json``; absent = demo mode)::

    {"issuer": "https://keycloak.example/realms/health",
     "audience": "gateway",
     "jwks_file": "jwks.json"}          # or "jwks_url": "https://.../certs"

In demo mode the home gets an EC P-256 key (``keys/token-issuer.jwk``) and
the issuer ``urn:gateway:demo:<key thumbprint>``: two demo homes never trust
each other's tokens. Only asymmetric algorithms are accepted (ES256/384,
RS256/384/512, PS256, EdDSA): ``none`` and HMAC are refused, as are another
issuer, another audience, and an expired or not-yet-valid token.

The point of care a caller works at (its healthcare facility or
organisation; the gateway's rate thresholds count per point of care too) is
the IHE IUA claim ``extensions.ihe_iua.subject_organization_id``, the JWT
counterpart of the XUA attribute ``urn:oasis:names:tc:xspa:1.0:subject:organization-id``
of eHDSI SAML assertions. A token without it is counted by its client alone.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GatewayError, Issue
from .caller import Caller, parse_scopes

__all__ = ["AuthConfig", "Unauthorized", "load_auth", "verify", "mint"]

ALGORITHMS = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"]
DEMO_AUDIENCE = "gateway"


class Unauthorized(GatewayError):
    """401: no usable token. The message never says more than needed."""

    status = 401


@dataclass(frozen=True)
class AuthConfig:
    issuer: str
    audience: str
    keyset: Any  # joserfc KeySet (public keys)
    signing_key: Any | None  # the demo private key (None with a real issuer)
    leeway: int = 30
    # tokens whose signature and claims were verified with these keys:
    # token -> (caller, not before, expires); see verify()
    verified: dict[str, tuple[Any, float, float]] = field(default_factory=dict, compare=False,
                                                           repr=False)


_lock = threading.Lock()


def _demo_key(home: Path) -> Any:
    from joserfc.jwk import ECKey

    path = home / "keys" / "token-issuer.jwk"
    with _lock:
        if path.exists():
            return ECKey.import_key(json.loads(path.read_text()))
        key = ECKey.generate_key("P-256", private=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(key.as_dict(private=True), fh)
        os.replace(tmp, path)
        return key


def load_auth(home: Path) -> AuthConfig:
    from joserfc.jwk import ECKey, KeySet

    cfg_path = home / "auth.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        if "jwks_file" in cfg:
            jwks = json.loads((home / cfg["jwks_file"]).read_text())
        elif "jwks_url" in cfg:
            import httpx

            jwks = httpx.get(cfg["jwks_url"], timeout=10).json()
        else:
            raise ValueError(f"{cfg_path}: needs jwks_file or jwks_url")
        return AuthConfig(cfg["issuer"], cfg.get("audience", DEMO_AUDIENCE),
                          KeySet.import_key_set(jwks), None)
    key = _demo_key(home)
    public = ECKey.import_key(key.as_dict(private=False))
    issuer = f"urn:gateway:demo:{key.thumbprint()[:22]}"
    return AuthConfig(issuer, DEMO_AUDIENCE, KeySet([public]), key)


def verify(config: AuthConfig, token: str) -> Caller:
    """The caller a bearer token stands for, or :class:`Unauthorized`."""
    from joserfc import jwt
    from joserfc.errors import JoseError

    def refuse(why: str) -> Unauthorized:
        return Unauthorized("invalid token", [Issue("error", "login", why)])

    if token.count(".") != 2 or len(token) > 16_384:
        raise refuse("the bearer token is not a JWT")
    # A client sends the same token with every request: its signature was
    # checked the first time (with these keys, as this exact string); only the
    # time window needs checking again.
    known = config.verified.get(token)
    if known is not None:
        caller, not_before, expires = known
        if not_before - config.leeway <= time.time() <= expires + config.leeway:
            return caller  # type: ignore[no-any-return]
        config.verified.pop(token, None)
    try:
        decoded = jwt.decode(token, config.keyset, algorithms=ALGORITHMS)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise refuse(f"the token signature or algorithm is not accepted ({type(exc).__name__})") from exc
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=config.leeway,
        iss={"essential": True, "value": config.issuer},
        aud={"essential": True, "value": config.audience},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise refuse(f"the token's claims are not accepted ({exc.error})") from exc
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise refuse("scope must be a string")
    patient = claims.get("patient")
    practitioner = claims.get("fhirUser", "")
    point_of_care = _point_of_care(claims)
    caller = Caller(
        client_id=str(claims.get("client_id") or claims.get("azp") or claims.get("sub", "")),
        subject=str(claims.get("sub", "")),
        issuer=str(claims["iss"]),
        scopes=parse_scopes(scope),
        patient=str(patient) if patient else None,
        practitioner=practitioner.split("/", 1)[1] if isinstance(practitioner, str)
        and practitioner.startswith("Practitioner/") else None,
        token_id=str(claims.get("jti")) if claims.get("jti") else None,
        related_person=practitioner.split("/", 1)[1] if isinstance(practitioner, str)
        and practitioner.startswith("RelatedPerson/") else None,
        point_of_care=point_of_care,
    )
    if len(config.verified) >= 4096:
        config.verified.clear()
    nbf = claims.get("nbf")
    config.verified[token] = (caller, float(nbf) if isinstance(nbf, (int, float)) else float("-inf"),
                              float(claims["exp"]))
    return caller


def _point_of_care(claims: dict[str, Any]) -> str | None:
    """The IUA ``subject_organization_id``, if the token names one (a short string)."""
    extensions = claims.get("extensions")
    iua = extensions.get("ihe_iua") if isinstance(extensions, dict) else None
    value = iua.get("subject_organization_id") if isinstance(iua, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value.strip()) <= 256:
        raise Unauthorized("invalid token", [Issue(
            "error", "login", "extensions.ihe_iua.subject_organization_id must be a short string")])
    return value.strip()


def mint(config: AuthConfig, *, scope: str, subject: str, patient: str | None = None,
         practitioner: str | None = None, minutes: int = 60, client_id: str = "gateway-dev",
         related_person: str | None = None, point_of_care: str | None = None) -> str:
    """A development token signed with the demo key."""
    from joserfc import jwt

    if config.signing_key is None:
        raise ValueError("this home uses an external issuer: get tokens from it")
    now = int(time.time())
    claims: dict[str, Any] = {"iss": config.issuer, "aud": config.audience, "sub": subject,
                              "client_id": client_id, "scope": scope, "iat": now,
                              "exp": now + minutes * 60, "jti": str(uuid.uuid4())}
    if patient:
        claims["patient"] = patient
    if practitioner:
        claims["fhirUser"] = f"Practitioner/{practitioner}"
    elif related_person:
        claims["fhirUser"] = f"RelatedPerson/{related_person}"
    if point_of_care:
        claims["extensions"] = {"ihe_iua": {"subject_organization_id": point_of_care}}
    header = {"alg": "ES256", "kid": config.signing_key.thumbprint(), "typ": "JWT"}
    return jwt.encode(header, claims, config.signing_key)
