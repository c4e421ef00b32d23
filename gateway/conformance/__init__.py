"""The conformance suite: every fixture through detection, conversion,
profile validation and a comparison with its expectation, with a report
people read.

    from gateway.conformance import run_suite
    report = run_suite(["fixtures"])          # a SuiteReport
    report.failed, report.by_format(), report.by_source()

Layout and expectation files: ``fixtures/README.md``. Modules, one job each:
``discovery`` (which files are cases), ``expectations`` (``.expect.yaml``),
``golden`` (``.expected.json``), ``running`` (one case, the suite),
``unmapped`` (the fidelity report), ``validating`` (the optional validator),
``report_json``, ``report_html``, ``console`` (progress bar, tables) and
``command`` (``gateway conformance``).
"""

from __future__ import annotations

from .model import Case, CaseResult, SuiteReport, Totals
from .running import run_case, run_suite

__all__ = ["Case", "CaseResult", "SuiteReport", "Totals", "run_case", "run_suite"]
