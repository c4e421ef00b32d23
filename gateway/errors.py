"""Issues as values, and the gateway's one error hierarchy.

Every reader and mapping step collects :class:`Issue` values instead of
logging and returning ``None``. An issue names both ends: where in the source
(``PID[1]-3[2].1`` for HL7 v2, an XPath with a line for XML) and, when known,
where in the target (a FHIRPath such as ``Patient.name[0]``). One function,
:func:`gateway.fhir.outcome.operation_outcome`, turns issues into
``OperationOutcome.issue`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["fatal", "error", "warning", "information"]

# FHIR IssueType codes we use (http://hl7.org/fhir/R4/valueset-issue-type.html).
IssueCode = Literal[
    "invalid",
    "structure",
    "required",
    "value",
    "code-invalid",
    "not-supported",
    "duplicate",
    "informational",
    "incomplete",
    "exception",
    "too-long",
    "conflict",
    "not-found",
    "processing",
    "login",
    "security",
    "forbidden",
]


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding about a message: severity, code, human text and locations."""

    severity: Severity
    code: IssueCode
    message: str
    location: str | None = None  # where in the source, e.g. "OBX[4]-5.2"
    expression: str | None = None  # where in the target, a FHIRPath

    def render(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{self.severity}: {where}{self.message}"


@dataclass(slots=True)
class Issues:
    """An ordered collection of issues with helpers for the common severities."""

    items: list[Issue] = field(default_factory=list)

    def add(self, issue: Issue) -> None:
        self.items.append(issue)

    def error(self, message: str, location: str | None = None, code: IssueCode = "invalid") -> None:
        self.items.append(Issue("error", code, message, location))

    def warning(
        self, message: str, location: str | None = None, code: IssueCode = "informational"
    ) -> None:
        self.items.append(Issue("warning", code, message, location))

    def info(
        self, message: str, location: str | None = None, code: IssueCode = "informational"
    ) -> None:
        self.items.append(Issue("information", code, message, location))

    def extend(self, other: "Issues | list[Issue]") -> None:
        self.items.extend(other.items if isinstance(other, Issues) else other)

    @property
    def has_errors(self) -> bool:
        return any(i.severity in ("fatal", "error") for i in self.items)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose.

    It carries issues so that each boundary (HTTP, MLLP, CLI) can render the
    same facts in its own form: an OperationOutcome, an ERR segment, one line.
    """

    status: int = 400

    def __init__(self, message: str, issues: list[Issue] | None = None) -> None:
        super().__init__(message)
        self.issues: list[Issue] = issues or [Issue("error", "invalid", message)]

    @property
    def location(self) -> str | None:
        for issue in self.issues:
            if issue.location:
                return issue.location
        return None


class RejectedInput(GatewayError):
    """The input cannot be read or converted at all (bad syntax, unknown format)."""

    status = 400


class UnprocessableInput(GatewayError):
    """The input was read but is semantically unusable (e.g. no patient)."""

    status = 422


class UnsupportedFormat(GatewayError):
    """No reader recognises the input."""

    status = 415


class NotFound(GatewayError):
    status = 404


class Conflict(GatewayError):
    status = 409


class PayloadTooLarge(GatewayError):
    status = 413


class Forbidden(GatewayError):
    status = 403
