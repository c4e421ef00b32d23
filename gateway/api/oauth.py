"""``POST /auth/token``: access tokens for peer gateways, following SMART
Backend Services (hl7.org/fhir/smart-app-launch/backend-services.html) with
``private_key_jwt`` client authentication (RFC 7523 §2.2, RFC 7521 §4.2).

The request (``application/x-www-form-urlencoded``)::

    grant_type=client_credentials
    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<JWT>          scope=<optional, space separated>

The client assertion is a JWT signed (ES256 or PS256) with the peer's
``signing`` key; its header ``kid`` is the certificate's ``x5t#S256``, the key
id of the trust list. It is accepted when:

- the certificate is on the trust list for ``signing``, valid, not revoked,
  and belongs to the country named by ``iss`` = ``sub`` = the client id
  (``urn:gateway:<CC>``; a bare ``<CC>`` is read the same way);
- the signature verifies with that certificate (never a key from the JWT);
- ``aud`` is this endpoint's URL; ``exp`` is present, not passed and at most
  five minutes ahead (SMART); ``iat``, if present, is not in the future;
- ``jti`` was not seen before (:mod:`gateway.exchange.replay`, shared by
  every replica through the store).

The access token is minted by the gateway's own issuer
(:func:`gateway.access.tokens.mint`) for five minutes, with
``client_id`` = the peer and system scopes for the cross-border flows:
reading a citizen's summary (PDQm, MHD) by default, and delivering an
eDispensation when ``system/MedicationDispense.c`` is asked for. Refusals
answer as RFC 6749 §5.2 says (``{"error": "invalid_client", ...}``), while
being :class:`gateway.errors.GatewayError` values with ``Issue`` details.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..access.tokens import mint
from ..errors import GatewayError, Issue
from ..exchange.context import exchange_for
from ..exchange.errors import AssertionRefused, ExchangeError, Replayed

__all__ = ["ALLOWED_SCOPES", "ASSERTION_TYPE", "READ_SCOPES", "TOKEN_PATH", "router"]

router = APIRouter()

TOKEN_PATH = "/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
READ_SCOPES = ("system/Patient.rs", "system/DocumentReference.rs", "system/Bundle.r",
               "system/Binary.r")
ALLOWED_SCOPES = READ_SCOPES + ("system/MedicationDispense.c",)
ALGORITHMS = ["ES256", "PS256"]
MAX_ASSERTION_LIFETIME = 300  # seconds (SMART Backend Services)
LEEWAY = 30
TOKEN_MINUTES = 5
MAX_BODY = 16 * 1024


class TokenRequestRefused(ExchangeError):
    """RFC 6749 ``invalid_request`` / ``unsupported_grant_type`` / ``invalid_scope``."""

    status = 400


class ClientRefused(AssertionRefused):
    """RFC 6749 ``invalid_client``: the client assertion is not accepted."""

    status = 401


def _refuse(cls: type[ExchangeError], why: str, location: str | None = None) -> ExchangeError:
    return cls(why, [Issue("error", "security" if cls is not TokenRequestRefused else "invalid",
                           why, location)])


def _oauth_error(exc: GatewayError) -> JSONResponse:
    if isinstance(exc, TokenRequestRefused):
        code = {"grant_type": "unsupported_grant_type", "scope": "invalid_scope"}.get(
            exc.issues[0].location or "", "invalid_request") if exc.issues else "invalid_request"
    elif isinstance(exc, (AssertionRefused, Replayed, ExchangeError)):
        code = "invalid_client"
    else:
        code = "invalid_request"
    status = 401 if code == "invalid_client" else 400
    why = exc.issues[0].message if exc.issues else str(exc)
    return JSONResponse({"error": code, "error_description": why}, status_code=status,
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _b64json(part: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError as exc:
        raise _refuse(ClientRefused, "the client assertion is not a JWT") from exc
    if not isinstance(value, dict):
        raise _refuse(ClientRefused, "the client assertion is not a JWT")
    return value


def _country_of(client_id: str) -> str:
    cc = client_id.removeprefix("urn:gateway:").upper()
    if len(cc) != 2 or not cc.isalpha():
        raise _refuse(ClientRefused, "iss/sub must name a peer gateway (urn:gateway:CC)")
    return cc


def token_urls(request: Request, ex: Any) -> set[str]:
    """The audiences we answer to: this endpoint as reached, and as published."""
    urls = {str(request.base_url).rstrip("/") + TOKEN_PATH}
    own = ex.trust.peers().get(ex.country)
    if own is not None and own.endpoints.get("base"):
        urls.add(own.endpoints["base"].rstrip("/") + TOKEN_PATH)
    return urls


def check_client_assertion(request: Request, ex: Any, assertion: str,
                           now: float | None = None) -> str:
    """The country of the peer whose client assertion this is, or refuse."""
    from joserfc import jwt
    from joserfc.errors import JoseError

    from ..exchange.jws import joserfc_public

    now = time.time() if now is None else now
    parts = assertion.split(".")
    if len(parts) != 3 or len(assertion) > 8192:
        raise _refuse(ClientRefused, "the client assertion is not a compact JWT")
    header, claims = _b64json(parts[0]), _b64json(parts[1])
    if header.get("alg") not in ALGORITHMS:
        raise _refuse(ClientRefused, f"algorithm {header.get('alg')!r} is not accepted (ES256, PS256)")
    kid = header.get("kid") or header.get("x5t#S256")
    if not isinstance(kid, str) or not kid:
        raise _refuse(ClientRefused, "the client assertion has no kid (x5t#S256)")
    client = claims.get("iss")
    if not isinstance(client, str) or claims.get("sub") != client:
        raise _refuse(ClientRefused, "iss and sub must both be the client id")
    country = _country_of(client)
    ex.trust.peer(country)  # unknown peer: Untrusted
    trusted = ex.trust.certificate(kid, "signing")
    if trusted.country != country:
        raise _refuse(ClientRefused, f"the signing key belongs to {trusted.country}, not {country}")
    try:
        jwt.decode(assertion, joserfc_public(trusted.cert), algorithms=[header["alg"]])
    except (JoseError, ValueError) as exc:
        raise _refuse(ClientRefused, "the client assertion's signature does not verify "
                                     f"({type(exc).__name__})") from exc
    aud = claims.get("aud")
    audiences = set(aud) if isinstance(aud, list) else {aud}
    if not audiences & token_urls(request, ex):
        raise _refuse(ClientRefused, "the client assertion is meant for another audience (aud)")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)):
        raise _refuse(ClientRefused, "the client assertion has no exp")
    if exp < now - LEEWAY:
        raise _refuse(ClientRefused, "the client assertion is expired")
    if exp > now + MAX_ASSERTION_LIFETIME + LEEWAY:
        raise _refuse(ClientRefused, "the client assertion's exp is more than 5 minutes ahead")
    if iat is not None and (not isinstance(iat, (int, float)) or iat > now + LEEWAY):
        raise _refuse(ClientRefused, "the client assertion is issued in the future (iat)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise _refuse(ClientRefused, "the client assertion has no jti")
    ex.replay.check("jti", f"{country}:{jti}", float(exp) + LEEWAY, now,
                    issued_at=float(iat) if iat is not None else None)
    return country


def _scopes(requested: str | None) -> str:
    if not requested:
        return " ".join(READ_SCOPES)
    words = requested.split()
    refused = [w for w in words if w not in ALLOWED_SCOPES]
    if refused:
        raise _refuse(TokenRequestRefused, f"scope {refused[0]!r} is not granted to peer gateways",
                      "scope")
    return " ".join(dict.fromkeys(words))


@router.post(TOKEN_PATH, summary="Access token for a peer gateway (SMART Backend Services, "
                                 "private_key_jwt)", tags=["exchange"])
async def token(request: Request) -> JSONResponse:
    try:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise _refuse(TokenRequestRefused, "the token request is too large")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise _refuse(TokenRequestRefused, "the token request must be form-encoded")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            raise _refuse(TokenRequestRefused, "grant_type must be client_credentials", "grant_type")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _refuse(TokenRequestRefused, f"client_assertion_type must be {ASSERTION_TYPE}")
        if not form.get("client_assertion"):
            raise _refuse(TokenRequestRefused, "client_assertion is required")
        scope = _scopes(form.get("scope"))
        ex = exchange_for(request.app.state.settings.home)
        country = check_client_assertion(request, ex, form["client_assertion"])
        client_id = f"urn:gateway:{country}"
        try:
            access = mint(request.app.state.auth, scope=scope, subject=client_id,
                          client_id=client_id, minutes=TOKEN_MINUTES)
        except ValueError as exc:  # an external issuer: we cannot mint
            raise _refuse(TokenRequestRefused, str(exc)) from exc
    except GatewayError as exc:
        return _oauth_error(exc)
    return JSONResponse({"access_token": access, "token_type": "bearer",
                         "expires_in": TOKEN_MINUTES * 60, "scope": scope},
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
