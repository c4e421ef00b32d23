"""The JSON report (``--json OUT.json``): every fact of the run, for tools.

Shape: ``{"report": "gateway-conformance", "version": 1, "generated",
"roots", "profile", "validation", "problems", "totals", "by_format",
"by_source", "cases": [...]}``; each case has its findings as FHIR
OperationOutcomes (``outcome`` for conversion or refusal, ``validation``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import Issue
from ..fhir.jsonio import dumps_pretty
from ..fhir.outcome import issue_json, operation_outcome
from .model import ERRORS, CaseResult, SuiteReport, Totals

__all__ = ["VERSION", "case_json", "report_json", "write_json"]

VERSION = 1


def _totals(t: Totals) -> dict[str, Any]:
    out = asdict(t)
    out["seconds"] = round(t.seconds, 4)
    return out


def _severities(issues: list[Issue]) -> dict[str, int]:
    return {"errors": sum(1 for i in issues if i.severity in ERRORS),
            "warnings": sum(1 for i in issues if i.severity == "warning"),
            "information": sum(1 for i in issues if i.severity == "information")}


def case_json(r: CaseResult) -> dict[str, Any]:
    """One case: what it is, what happened, and whether that was expected."""
    expectation = [p.name for p in (r.case.expect_yaml, r.case.expected_json) if p is not None]
    validation: dict[str, Any] = {"run": r.validation is not None, "note": r.validation_note}
    if r.validation is not None:
        validation.update(_severities(r.validation))
        validation["outcome"] = operation_outcome(r.validation, ok_text="valid: no issues found")
    return {
        "path": r.case.label,
        "format": r.format,
        "source": r.case.source,
        "detected": r.detected,
        "status": r.status,
        "result": "pass" if r.passed else "fail",
        "expectation": expectation,
        "failures": list(r.failures),
        "resources": dict(r.resources),
        "resource_total": r.resource_total,
        "conversion": {**_severities(r.issues),
                       "outcome": operation_outcome(r.issues, ok_text="no findings")},
        "validation": validation,
        "unmapped": [issue_json(i) for i in r.unmapped],
        "seconds": round(r.seconds, 4),
        "convert_seconds": round(r.convert_seconds, 4),
        "validate_seconds": round(r.validate_seconds, 4),
    }


def report_json(report: SuiteReport) -> dict[str, Any]:
    return {
        "report": "gateway-conformance",
        "version": VERSION,
        "generated": report.generated,
        "roots": report.roots,
        "profile": report.profile,
        "validation": report.validation,
        "problems": report.problems,
        "seconds": round(report.seconds, 3),
        "totals": _totals(report.totals),
        "by_format": {k: _totals(v) for k, v in report.by_format().items()},
        "by_source": {k: _totals(v) for k, v in report.by_source().items()},
        "resource_types": dict(sorted(report.resource_types().items())),
        "cases": [case_json(r) for r in report.results],
    }


def write_json(report: SuiteReport, path: Path) -> None:
    path.write_bytes(dumps_pretty(report_json(report)))
