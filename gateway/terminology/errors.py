"""Terminology errors: :class:`gateway.errors.GatewayError` subclasses, so the
HTTP layer renders them as an OperationOutcome with a 4xx status."""

from __future__ import annotations

from ..errors import GatewayError, Issue, IssueCode, NotFound, RejectedInput, UnprocessableInput

__all__ = [
    "TerminologyError",
    "UnknownResource",
    "BadTerminologyRequest",
    "CannotExpand",
    "BadTerminologyContent",
]


class TerminologyError(GatewayError):
    """Base of the terminology engine's errors."""


class UnknownResource(TerminologyError, NotFound):
    """A CodeSystem, ValueSet or ConceptMap that is not loaded (404)."""

    status = 404

    def __init__(self, kind: str, ref: str) -> None:
        msg = f"{kind} {ref!r} is not loaded"
        super().__init__(msg, [Issue("error", "not-found", msg)])


class BadTerminologyRequest(TerminologyError, RejectedInput):
    """A terminology operation called with missing or contradictory parameters (400)."""

    status = 400

    def __init__(self, message: str, location: str | None = None,
                 code: IssueCode = "invalid") -> None:
        super().__init__(message, [Issue("error", code, message, location)])


class CannotExpand(TerminologyError, UnprocessableInput):
    """A value set whose expansion needs content that is not available
    locally (SNOMED CT filters without SNOMED CT, for instance) (422)."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message, [Issue("error", "not-supported", message)])


class BadTerminologyContent(TerminologyError, RejectedInput):
    """A terminology package that cannot be installed (400)."""

    status = 400
