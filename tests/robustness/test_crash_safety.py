"""Kill -9 while messages arrive over MLLP and HTTP at once, on SQLite and on
PostgreSQL (five seeded rounds each; ``bench/crash.py`` runs longer): every
acknowledged message is stored exactly once, nothing is half-written or
invented, and SQLite's integrity check passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.robustness.crash import run_rounds

ROUNDS = 5


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_loses_nothing_that_was_acknowledged(backend: str, tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    db = None
    if backend == "postgresql":
        db = request.getfixturevalue("postgres").new_database(f"crash{tmp_path.name.replace('-', '')}")
    report = run_rounds(tmp_path / "home", db, ROUNDS, seed=f"crash-{backend}")
    print(f"{backend}: {report}")
    assert not report.problems, "\n".join(report.problems[:20])
    assert report.refused == 0
    assert report.acked > ROUNDS, "too few messages were acknowledged to prove anything"
