"""Kill -9 rounds against ``gateway serve`` (the long form of
``tests/robustness/test_crash_safety.py``): clients send unique HL7 v2
messages over MLLP and HTTP at once, the server's process group gets SIGKILL
at a seeded random moment, the server restarts on the same database; at the
end every acknowledged message must be stored exactly once, nothing
half-written or invented, and SQLite must pass ``PRAGMA integrity_check``.

Run from the project root::

    .venv/bin/python bench/crash.py [--rounds 20] [--seed S] [--no-postgres] [--workers 2] [--clients 2]

Prints one line per database and the problems found; exit 1 if any.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.robustness.crash import run_rounds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", default="crash-bench")
    ap.add_argument("--workers", type=int, default=2, help="HTTP worker processes of gateway serve")
    ap.add_argument("--clients", type=int, default=2, help="MLLP clients and as many HTTP clients")
    ap.add_argument("--min-window", type=float, default=0.3, help="shortest time before a kill (s)")
    ap.add_argument("--max-window", type=float, default=3.0, help="longest time before a kill (s)")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    backends: list[tuple[str, str | None]] = [("SQLite", None)]
    pg = None
    if not args.no_postgres:
        from tests.pgserver import PostgresServer

        try:
            pg = PostgresServer(durable=True)
            pg.start()
            backends.append(("PostgreSQL", pg.new_database("crash")))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"(PostgreSQL not available: {exc})")
    failed = False
    try:
        for name, db in backends:
            home = Path(tempfile.mkdtemp(prefix="gw-crash-"))
            start = time.monotonic()
            try:
                report = run_rounds(home, db, args.rounds, f"{args.seed}-{name}",
                                    window=(args.min_window, args.max_window),
                                    clients=args.clients, workers=args.workers)
            finally:
                shutil.rmtree(home, ignore_errors=True)
            print(f"{name}: {report.rounds} kill -9 rounds in {time.monotonic() - start:.0f} s: "
                  f"{report.sent} sent, {report.acked} acknowledged, {report.unknown} without an answer "
                  f"at the kill, {report.resent} of those resent after restart ({report.resent_already_stored} "
                  f"had been stored before the kill), {report.stored_unacknowledged} unanswered and stored "
                  f"at the end, {report.refused} refused, "
                  f"{len(report.problems)} problems")
            for problem in report.problems[:50]:
                print(f"  problem: {problem}")
            failed = failed or bool(report.problems)
    finally:
        if pg is not None:
            pg.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
