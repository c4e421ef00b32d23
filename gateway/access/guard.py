"""Authentication for every route, in one place (an app-wide dependency),
so that a route cannot forget it; scope checks per interaction.

Open without a token: ``/fhir/metadata``, ``/health``, the API docs, and
``/soap/xca``, whose callers are authenticated by a signed SAML assertion,
and ``/auth/token``, whose callers are authenticated by a signed client
assertion (RFC 7523).
"""

from __future__ import annotations

from fastapi import Request

from ..errors import Forbidden, Issue
from .caller import Caller
from .tokens import Unauthorized, verify

__all__ = ["authenticate", "require", "OPEN_PATHS", "caller_of"]

OPEN_PATHS = frozenset({"/fhir/metadata", "/health", "/docs", "/docs/oauth2-redirect",
                        "/openapi.json", "/redoc", "/",
                        "/soap/xca",  # SOAP: the signed SAML assertion authenticates (api/xca.py)
                        "/auth/token",  # a signed client assertion authenticates (api/oauth.py)
                        "/share/contacts/accept",  # the one-time invitation token authenticates
                        # /app pages: the token comes in a cookie, verified by gateway.web.pages
                        "/app", "/app/signin", "/app/signout", "/app/share", "/app/measure",
                        "/app/grants/end", "/app/clinician", "/app/clinician/session"})


async def authenticate(request: Request) -> None:
    """Attach the verified :class:`Caller` to the request, or refuse (401)."""
    if request.url.path in OPEN_PATHS:
        request.state.caller = None
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("authentication required",
                           [Issue("error", "login", "a bearer token is required")])
    request.state.caller = verify(request.app.state.auth, token.strip())


def caller_of(request: Request) -> Caller:
    caller = getattr(request.state, "caller", None)
    if caller is None:
        raise Unauthorized("authentication required",
                           [Issue("error", "login", "a bearer token is required")])
    return caller


def require(request: Request, resource_type: str, perm: str) -> Caller:
    """The caller, if a scope allows ``perm`` on ``resource_type``; else 403."""
    caller = caller_of(request)
    if not caller.can(resource_type, perm):
        raise Forbidden("insufficient scope", [Issue(
            "error", "forbidden",
            f"the token's scopes do not allow '{perm}' on {resource_type}")])
    return caller
