"""Issues to FHIR OperationOutcome (R4 section 12.17), in one place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import Issue

__all__ = ["operation_outcome", "issue_json"]


def issue_json(issue: Issue) -> dict[str, Any]:
    out: dict[str, Any] = {
        "severity": issue.severity,
        "code": issue.code,
        "diagnostics": issue.message,
    }
    if issue.location:
        out["location"] = [issue.location]
    if issue.expression:
        out["expression"] = [issue.expression]
    return out


def operation_outcome(issues: Iterable[Issue], *, ok_text: str | None = None) -> dict[str, Any]:
    """An OperationOutcome with one ``issue`` per :class:`Issue`.

    An outcome must have at least one issue: with none, one information issue
    says ``ok_text`` (default "All OK")."""
    items = [issue_json(i) for i in issues]
    if not items:
        items = [{"severity": "information", "code": "informational",
                  "diagnostics": ok_text or "All OK"}]
    return {"resourceType": "OperationOutcome", "issue": items}
