"""The conformance suite over fixtures/, run once per test session, and its
summary table shown at the end of the test run."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.conformance import SuiteReport, run_suite
from gateway.conformance.console import render_summary
from tests.conftest import FIXTURES

SUMMARY = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def fixtures_report(request: pytest.FixtureRequest) -> SuiteReport:
    report = run_suite([FIXTURES])
    request.config.stash[SUMMARY] = render_summary(report)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    text = terminalreporter.config.stash.get(SUMMARY, None)
    if text:
        terminalreporter.section("conformance suite over fixtures/")
        terminalreporter.write(text)
