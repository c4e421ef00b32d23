"""HL7 v2 ingest by concurrency: where the gateway saturates (the knee),
over MLLP and HTTP, on SQLite and PostgreSQL.

For each database and transport it starts ``gateway serve --workers N`` on
loopback and runs, for each concurrency level in turn, that many clients
sending unique ORU^R01 messages (2 OBX) one after the other for a fixed
time: MLLP clients wait for each ACK on their connection; HTTP clients post
to ``POST /ingest`` on a keep-alive connection. The clients are lean
(raw asyncio sockets, one process), so that they take as little of the
machine's cores from the server as possible.

Printed per level: acknowledged messages per second, latency p50/p95/p99
(ms), refusals (503 / AE "busy" and 429), errors, and the server's CPU time
per message (all its processes, from /proc). The knee is the lowest
concurrency whose throughput is within 5 % of the best.

Baseline, measured in the same run: ``pipeline.convert`` alone on the same
messages in this process (one core, no storage, no network); the ratio
"ingest / convert-only" says how much of one core's conversion capacity the
whole path delivers.

    .venv/bin/python bench/ingest.py [--seconds 8] [--workers 2] [--levels 1,4,8,16,32,64]
        [--transports mllp,http] [--dbs sqlite,postgres] [--window S] [--json OUT]

With ``--window S`` each level also prints a row per S seconds (its
throughput, p50, p99, slowest message and CPU per message): run one level
for minutes (``--levels 32 --seconds 120 --window 10``) to see whether the
throughput holds as the tables grow.

No assertions; clients and servers share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _clients import cpu_seconds, http_ingester, mllp_sender, percentile as _pct, process_cpu_by_pid  # noqa: E402

from tests.robustness.serving import Served, unique_message  # noqa: E402


@dataclass
class Level:
    clients: int
    latencies: list[float] = field(default_factory=list)
    busy: int = 0
    throttled: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    db_cpu_seconds: float = 0.0  # the PostgreSQL server's, while the level ran
    windows: list[dict[str, float]] = field(default_factory=list)  # with --window: one per window


def run_level(server: Served, transport: str, token: str, clients: int, seconds: float, run: int,
              db_pids: Callable[[], list[int]] = list, window: float = 0.0) -> Level:
    level = Level(clients)
    in_window: list[float] = []  # latencies of the window under way

    def record(outcome: str, ms: float) -> None:
        if outcome == "ok":
            level.latencies.append(ms)
            in_window.append(ms)
        elif outcome == "busy":
            level.busy += 1
        elif outcome == "throttled":
            level.throttled += 1
        else:
            level.errors += 1

    async def drive() -> None:
        deadline = time.monotonic() + seconds
        if transport == "mllp":
            tasks = [mllp_sender(server.mllp_port, f"K{run}M{c}X", deadline, record) for c in range(clients)]
        else:
            tasks = [http_ingester(server.port, token, f"K{run}H{c}X", deadline, record)
                     for c in range(clients)]
        if window:
            tasks.append(watch(deadline))
        await asyncio.gather(*tasks)

    async def watch(deadline: float) -> None:
        """Every ``window`` seconds: that window's throughput, p99 and CPU per message."""
        start, cpu, db = time.monotonic(), cpu_seconds([server]), process_cpu_by_pid(db_pids())
        while (now := time.monotonic()) < deadline - window / 2:
            await asyncio.sleep(min(window, deadline - now))
            now, cpu1, db1 = time.monotonic(), cpu_seconds([server]), process_cpu_by_pid(db_pids())
            done, lat = len(in_window), sorted(in_window)
            in_window.clear()
            db_cpu = sum(t - db.get(pid, 0.0) for pid, t in db1.items())
            level.windows.append({"at_s": now - t0, "per_second": done / (now - start),
                                  "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99),
                                  "max_ms": lat[-1] if lat else 0.0,
                                  "cpu_ms_per_message": (cpu1 - cpu) / done * 1000 if done else 0.0,
                                  "db_cpu_ms_per_message": db_cpu / done * 1000 if done else 0.0})
            start, cpu, db = now, cpu1, db1

    cpu0, db0, t0 = cpu_seconds([server]), process_cpu_by_pid(db_pids()), time.monotonic()
    asyncio.run(drive())
    level.seconds = time.monotonic() - t0
    level.cpu_seconds = cpu_seconds([server]) - cpu0
    # Server processes started during the level (the gateway's first
    # connections) count in full; the others from where they were.
    db1 = process_cpu_by_pid(db_pids())
    level.db_cpu_seconds = sum(t - db0.get(pid, 0.0) for pid, t in db1.items())
    return level


def convert_only(seconds: float) -> float:
    """Messages per second of pipeline.convert alone, one core, same messages."""
    from gateway.warmup import warm_conversion
    from gateway.pipeline import convert

    warm_conversion()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        convert(unique_message("BASE", n), "hl7v2")
        n += 1
    return n / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="per concurrency level")
    ap.add_argument("--workers", type=int, default=2, help="gateway serve --workers")
    ap.add_argument("--levels", default="1,4,8,16,32,64")
    ap.add_argument("--transports", default="mllp,http")
    ap.add_argument("--dbs", default="sqlite,postgres")
    ap.add_argument("--inflight", type=int, help="GATEWAY_MAX_INFLIGHT for the server (messages in "
                    "progress per process; beyond it: 503 / AE busy)")
    ap.add_argument("--window", type=float, default=0.0,
                    help="also print each level's throughput, p99 and CPU per message every WINDOW "
                         "seconds (with a long --seconds: does it hold as the tables grow?)")
    ap.add_argument("--json", help="also write the results as JSON here")
    args = ap.parse_args()
    extra_env = {"GATEWAY_MAX_INFLIGHT": str(args.inflight)} if args.inflight else {}
    levels = [int(x) for x in args.levels.split(",")]
    dbs = [{"postgresql": "postgres"}.get(x, x) for x in args.dbs.split(",")]
    if not set(dbs) <= {"sqlite", "postgres"}:
        ap.error(f"--dbs: sqlite and/or postgres, not {args.dbs}")
    if not set(args.transports.split(",")) <= {"mllp", "http"}:
        ap.error(f"--transports: mllp and/or http, not {args.transports}")
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    baseline = convert_only(min(args.seconds, 5.0))
    print(f"baseline: pipeline.convert alone, one core: {baseline:.0f} msg/s "
          f"({1000 / baseline:.2f} ms per message)")
    print(f"gateway serve --workers {args.workers}; {args.seconds:g} s per level; ORU^R01 with 2 OBX, "
          "each message unique\n")
    results: list[dict[str, object]] = []
    pg = None
    try:
        for db_name in dbs:
            db = None
            os.sync()  # the configuration before leaves no writes in flight for this one
            if db_name == "postgres":
                from tests.pgserver import PostgresServer

                try:
                    pg = PostgresServer(durable=True)
                    pg.start()
                    pg.tune_for_ingest()  # as a tuned server that has been up
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    print(f"(PostgreSQL not available: {exc})")
                    continue
            for transport in args.transports.split(","):
                os.sync()  # nor does the transport before
                if db_name == "postgres":
                    assert pg is not None
                    db = pg.new_database(f"knee_{transport}")
                home = Path(tempfile.mkdtemp(prefix="gw-knee-"))
                server = Served(home, db, workers=args.workers, env={"GATEWAY_RATE_LIMIT": "0", **extra_env})
                try:
                    server.start()
                    token = server.token() if transport == "http" else ""
                    print(f"{db_name} / {transport}")
                    print(f"  {'clients':>7}{'msg/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
                          f"{'busy':>7}{'429':>6}{'errors':>8}{'cpu ms/msg':>12}{'db ms/msg':>11}"
                          f"{'/convert':>10}")
                    rows = []
                    for i, clients in enumerate(levels):
                        lv = run_level(server, transport, token, clients, args.seconds, i,
                                       pg.pids if db_name == "postgres" and pg is not None else list,
                                       args.window)
                        done = len(lv.latencies)
                        rate = done / lv.seconds if lv.seconds else 0.0
                        row = {"clients": clients, "per_second": rate, "p50_ms": _pct(lv.latencies, 50),
                               "p95_ms": _pct(lv.latencies, 95), "p99_ms": _pct(lv.latencies, 99),
                               "busy": lv.busy, "throttled": lv.throttled, "errors": lv.errors,
                               "cpu_ms_per_message": lv.cpu_seconds / done * 1000 if done else None,
                               "db_cpu_ms_per_message": (lv.db_cpu_seconds / done * 1000
                                                         if done and db_name == "postgres" else None),
                               "ratio_to_convert_only": rate / baseline}
                        if lv.windows:
                            row["windows"] = lv.windows
                        rows.append(row)
                        cpu = f"{row['cpu_ms_per_message']:.2f}" if done else "n/a"
                        dbc = row["db_cpu_ms_per_message"]
                        dbc = f"{dbc:.2f}" if dbc is not None else "-"
                        print(f"  {clients:>7}{rate:>9.0f}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
                              f"{row['p99_ms']:>9.1f}{lv.busy:>7}{lv.throttled:>6}{lv.errors:>8}"
                              f"{cpu:>12}{dbc:>11}{rate / baseline:>10.2f}")
                        if lv.windows:
                            print(f"  {'at':>7}   (each {args.window:g} s window)")
                        for w in lv.windows:
                            dbw = f"{w['db_cpu_ms_per_message']:.2f}" if db_name == "postgres" else "-"
                            print(f"  {format(w['at_s'], '.0f') + ' s':>7}{w['per_second']:>9.0f}"
                                  f"{w['p50_ms']:>9.1f}{'':>9}{w['p99_ms']:>9.1f}{'':>21}"
                                  f"{w['cpu_ms_per_message']:>12.2f}"
                                  f"{dbw:>11}"
                                  f"   max {w['max_ms']:.0f} ms")
                    best = max(r["per_second"] for r in rows)  # type: ignore[type-var]
                    knee = next(r for r in rows if r["per_second"] >= 0.95 * best)  # type: ignore[operator]
                    print(f"  knee: {knee['clients']} clients, {knee['per_second']:.0f} msg/s, "
                          f"p99 {knee['p99_ms']:.1f} ms\n")
                    results.append({"db": db_name, "transport": transport, "workers": args.workers,
                                    "rows": rows, "knee": knee})
                finally:
                    server.stop()
                    shutil.rmtree(home, ignore_errors=True)
    finally:
        if pg is not None:
            pg.stop()
    if args.json:
        Path(args.json).write_text(json.dumps({"baseline_convert_per_second": baseline,
                                               "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
