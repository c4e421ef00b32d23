"""Errors of the signed exchange, as :class:`gateway.errors.GatewayError`
subclasses carrying :class:`gateway.errors.Issue` values (HTTP 4xx with an
OperationOutcome, a SOAP fault on the SOAP endpoints, one line on the CLI)."""

from __future__ import annotations

from ..errors import GatewayError, Issue

__all__ = ["ExchangeError", "SignatureInvalid", "Untrusted", "AssertionRefused", "Replayed",
           "PeerUnavailable", "refuse"]


class ExchangeError(GatewayError):
    status = 400


class SignatureInvalid(ExchangeError):
    """The signature does not verify, or uses an algorithm we refuse."""

    status = 422


class Untrusted(ExchangeError):
    """The signer's certificate is unknown, expired, revoked or of another purpose."""

    status = 403


class AssertionRefused(ExchangeError):
    """The SAML assertion or client assertion is not accepted."""

    status = 401


class Replayed(ExchangeError):
    """A message id, assertion id or jti seen before within its validity window."""

    status = 409


class PeerUnavailable(ExchangeError):
    status = 502


def refuse(cls: type[ExchangeError], why: str, location: str | None = None) -> ExchangeError:
    """An error of class ``cls`` with one security issue saying ``why``."""
    code = "security" if cls is not PeerUnavailable else "exception"
    return cls(why, [Issue("error", code, why, location)])  # type: ignore[arg-type]
