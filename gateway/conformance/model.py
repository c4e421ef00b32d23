"""The values the conformance suite passes around: a case found on disk, the
result of running it, and totals over a group of results.

Plain dataclasses, no behaviour beyond counting, so every report (console,
JSON, HTML) reads the same facts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import Issue

__all__ = ["ERRORS", "Case", "CaseResult", "Status", "SuiteReport", "Totals"]

Status = Literal["converted", "refused", "crashed", "unreadable"]
ERRORS = ("error", "fatal")


@dataclass(frozen=True, slots=True)
class Case:
    """One input file of the suite and the expectation files beside it."""

    path: Path
    label: str  # the path as shown in reports: the root as given, then the path below it
    format: str | None  # the format folder it sits in (hl7v2, cda, fhir), if any
    source: str  # the folders below the format folder: a country or a source ("ehdsi-ps/AT")
    expect_yaml: Path | None = None
    expected_json: Path | None = None

    @property
    def has_expectation(self) -> bool:
        return self.expect_yaml is not None or self.expected_json is not None


@dataclass(slots=True)
class CaseResult:
    """What happened to one case, and whether that is what was expected."""

    case: Case
    status: Status
    detected: str | None = None  # the format detected from the content
    resources: dict[str, int] = field(default_factory=dict)  # resources produced, per type
    issues: list[Issue] = field(default_factory=list)  # conversion findings, or the refusal
    validation: list[Issue] | None = None  # None: validation did not run
    validation_note: str = ""  # why validation did not run, or the profile used
    unmapped: list[Issue] = field(default_factory=list)  # the fidelity report
    failures: list[str] = field(default_factory=list)  # unmet expectations, crash summary
    seconds: float = 0.0
    convert_seconds: float = 0.0
    validate_seconds: float = 0.0

    @property
    def format(self) -> str:
        """The format the case is counted under: its folder, else what was detected."""
        return self.case.format or self.detected or "unknown"

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def resource_total(self) -> int:
        return sum(self.resources.values())

    def count(self, severities: tuple[str, ...], validation: bool = False) -> int:
        pool = (self.validation or []) if validation else self.issues
        return sum(1 for i in pool if i.severity in severities)


@dataclass(slots=True)
class Totals:
    """Counts over a group of case results (a format, a source, everything)."""

    cases: int = 0
    converted: int = 0
    refused: int = 0
    crashed: int = 0  # crashed or unreadable: the suite could not get an answer
    passed: int = 0
    failed: int = 0
    with_expectation: int = 0
    resources: int = 0
    validation_errors: int = 0
    validation_warnings: int = 0
    validated: int = 0
    unmapped: int = 0
    seconds: float = 0.0

    def add(self, r: CaseResult) -> None:
        self.cases += 1
        if r.status == "converted":
            self.converted += 1
        elif r.status == "refused":
            self.refused += 1
        else:
            self.crashed += 1
        if r.passed:
            self.passed += 1
        else:
            self.failed += 1
        self.with_expectation += r.case.has_expectation
        self.resources += r.resource_total
        if r.validation is not None:
            self.validated += 1
            self.validation_errors += r.count(ERRORS, validation=True)
            self.validation_warnings += r.count(("warning",), validation=True)
        self.unmapped += len(r.unmapped)
        self.seconds += r.seconds

    @classmethod
    def of(cls, results: list[CaseResult]) -> Totals:
        t = cls()
        for r in results:
            t.add(r)
        return t


@dataclass(slots=True)
class SuiteReport:
    """The whole run: every case result, the folders that could not be read."""

    roots: list[str]
    results: list[CaseResult]
    problems: list[str] = field(default_factory=list)  # directories that could not be read
    profile: str = "auto"
    validation: str = "run"  # "run", or "not run: <reason>"
    generated: str = ""  # ISO instant the run started
    seconds: float = 0.0

    @property
    def totals(self) -> Totals:
        return Totals.of(self.results)

    def by_format(self) -> dict[str, Totals]:
        return _grouped(self.results, lambda r: r.format)

    def by_source(self) -> dict[str, Totals]:
        return _grouped(self.results, lambda r: f"{r.format}/{r.case.source}")

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    def resource_types(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for r in self.results:
            out.update(r.resources)
        return out


def _grouped(results: list[CaseResult], key: Callable[[CaseResult], str]) -> dict[str, Totals]:
    groups: dict[str, Totals] = {}
    for r in results:
        groups.setdefault(key(r), Totals()).add(r)
    return dict(sorted(groups.items()))
