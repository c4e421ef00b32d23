"""The conformance suite over fixtures/, in-process: every case must meet
its expectation (and none may crash the gateway). The summary table is
printed at the end of the test run (and with a failure)."""

from __future__ import annotations

from gateway.conformance import SuiteReport
from gateway.conformance.console import render_summary


def test_every_fixture_meets_its_expectation(fixtures_report: SuiteReport) -> None:
    print(render_summary(fixtures_report))
    assert not fixtures_report.problems, fixtures_report.problems
    failed = {r.case.label: r.failures for r in fixtures_report.failed}
    assert not failed, failed


def test_every_format_folder_is_run(fixtures_report: SuiteReport) -> None:
    formats = fixtures_report.by_format()
    assert {"hl7v2", "cda", "fhir"} <= set(formats)
    assert formats["hl7v2"].with_expectation == formats["hl7v2"].cases
    assert formats["hl7v2"].converted == formats["hl7v2"].cases
    assert fixtures_report.totals.crashed == 0


def test_companion_files_are_not_cases(fixtures_report: SuiteReport) -> None:
    labels = [r.case.label for r in fixtures_report.results]
    assert not [x for x in labels if x.endswith((".expected.json", ".ms-reference.json",
                                                 ".expect.yaml", ".tsv", ".md"))]
    assert any(x.endswith("ADT04-251.hl7") for x in labels)


def test_the_whole_run_is_fast(fixtures_report: SuiteReport) -> None:
    assert fixtures_report.seconds < 60
