"""Load: MLLP and HTTP clients at once against ``gateway serve`` on loopback,
for a fixed time, on SQLite and PostgreSQL, one replica and two.

Each HTTP client loops over a mix of requests (by weight: ingest an ORU^R01,
search Patients by family name, search a patient's Observations, ``$summary``
of a patient); each MLLP client sends ORU^R01 messages one after the other
on one connection and waits for each ACK. Every message is unique (its own
patient and control id). Two replicas are two ``gateway serve`` processes
(each with ``--workers N``) on different ports against one PostgreSQL
database; clients are spread over them.

Reported per configuration and kind of request: count, throughput, latency
p50/p95/p99 (ms), errors (503 busy and 429 throttled counted apart), and
the servers' resident memory before and after. Rate
limiting is turned off for the run (``GATEWAY_RATE_LIMIT=0``): every client
uses the same token, so one client id would otherwise meet the per-client
limit. No assertions; clients and servers share the machine's cores.

Run from the project root::

    .venv/bin/python bench/load.py [--seconds 20] [--workers 2] [--http-clients 16]
        [--mllp-clients 4] [--configs sqlite,postgres,postgres-2] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx

from _clients import mllp_sender, percentile, rss_mb

from tests.robustness.serving import Served, unique_message

MIX = {"ingest": 4, "search-patient": 2, "search-observation": 2, "summary": 1}
PRELOAD = 40


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)

    def ok(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds * 1000)

    def failed(self, kind: str, status: int | None) -> None:
        bucket = self.busy if status == 503 else self.throttled if status == 429 else self.errors
        bucket[kind] = bucket.get(kind, 0) + 1


_pct = percentile


async def http_client(base: str, token: str, tag: str, patients: list[tuple[str, str]], stats: Stats,
                      deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    kinds = [k for k, w in MIX.items() for _ in range(w)]
    headers = {"Authorization": f"Bearer {token}"}
    n = 0
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        while time.monotonic() < deadline:
            kind = rng.choice(kinds)
            pid, family = rng.choice(patients)
            start = time.perf_counter()
            try:
                if kind == "ingest":
                    n += 1
                    r = await client.post("/ingest", content=unique_message(tag, n),
                                          headers={"Content-Type": "x-application/hl7-v2+er7"})
                elif kind == "search-patient":
                    r = await client.get("/fhir/Patient", params={"family": family})
                elif kind == "search-observation":
                    r = await client.get("/fhir/Observation", params={"patient": f"Patient/{pid}", "_count": "20"})
                else:
                    r = await client.get(f"/fhir/Patient/{pid}/$summary")
            except httpx.HTTPError:
                stats.failed(kind, None)
                continue
            if r.status_code < 300:
                stats.ok(kind, time.perf_counter() - start)
            else:
                stats.failed(kind, r.status_code)


async def mllp_client(port: int, tag: str, stats: Stats, deadline: float) -> None:
    def record(outcome: str, ms: float) -> None:
        if outcome == "ok":
            stats.ok("mllp-ingest", ms / 1000)
        else:
            stats.failed("mllp-ingest", 503 if outcome == "busy" else None)

    await mllp_sender(port, tag, deadline, record)


def preload(servers: list[Served], token: str) -> list[tuple[str, str]]:
    """Patients with a few observations each, for the searches and $summary."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "x-application/hl7-v2+er7"}
    patients = []
    with httpx.Client(base_url=servers[0].base, headers=headers, timeout=60) as client:
        for i in range(PRELOAD):
            r = client.post("/ingest", content=unique_message("PRE", i, observations=5))
            r.raise_for_status()
            pid = next(e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                       if e["response"]["location"].startswith("Patient/"))
            patients.append((pid, f"DoePRE{i}"))
    return patients


async def drive(servers: list[Served], token: str, patients: list[tuple[str, str]], seconds: float,
                http_clients: int, mllp_clients: int) -> tuple[Stats, float]:
    stats = Stats()
    start = time.monotonic()
    deadline = start + seconds
    tasks = []
    for c in range(http_clients):
        server = servers[c % len(servers)]
        tasks.append(http_client(server.base, token, f"H{c}X", patients, stats, deadline, seed=c))
    for c in range(mllp_clients):
        server = servers[c % len(servers)]
        tasks.append(mllp_client(server.mllp_port, f"M{c}X", stats, deadline))
    await asyncio.gather(*tasks)
    return stats, time.monotonic() - start


def run_config(name: str, db: str | None, replicas: int, args: argparse.Namespace) -> dict[str, object]:
    home = Path(tempfile.mkdtemp(prefix="gw-load-"))
    env = {"GATEWAY_RATE_LIMIT": "0"}
    servers = [Served(home, db, workers=args.workers, env=env) for _ in range(replicas)]
    try:
        for server in servers:
            server.start()
        token = servers[0].token()
        patients = preload(servers, token)
        rss_before = rss_mb(servers)
        stats, elapsed = asyncio.run(drive(servers, token, patients, args.seconds, args.http_clients,
                                           args.mllp_clients))
        rss_after = rss_mb(servers)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(home, ignore_errors=True)
    rows = {}
    for kind in [*MIX, "mllp-ingest"]:
        lat = stats.latencies.get(kind, [])
        rows[kind] = {"count": len(lat), "per_second": len(lat) / elapsed,
                      "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95), "p99_ms": _pct(lat, 99),
                      "errors": stats.errors.get(kind, 0), "busy_503": stats.busy.get(kind, 0),
                      "throttled_429": stats.throttled.get(kind, 0)}
    every = [x for v in stats.latencies.values() for x in v]
    rows["all"] = {"count": len(every), "per_second": len(every) / elapsed, "p50_ms": _pct(every, 50),
                   "p95_ms": _pct(every, 95), "p99_ms": _pct(every, 99),
                   "errors": sum(stats.errors.values()), "busy_503": sum(stats.busy.values()),
                   "throttled_429": sum(stats.throttled.values())}
    return {"config": name, "replicas": replicas, "workers": args.workers, "seconds": round(elapsed, 1),
            "mean_latency_ms": statistics.fmean(every) if every else None,
            "rss_mb_before": round(rss_before), "rss_mb_after": round(rss_after), "rows": rows}


def print_table(result: dict[str, object]) -> None:
    print(f"\n{result['config']}: {result['replicas']} replica(s) x {result['workers']} HTTP workers, "
          f"{result['seconds']} s; server memory {result['rss_mb_before']} MB before, "
          f"{result['rss_mb_after']} MB after")
    print(f"  {'request':<20}{'count':>8}{'per s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}{'503':>6}{'429':>6}")
    for kind, row in result["rows"].items():  # type: ignore[attr-defined]
        print(f"  {kind:<20}{row['count']:>8}{row['per_second']:>9.1f}{row['p50_ms']:>9.1f}"
              f"{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['errors']:>8}{row['busy_503']:>6}"
              f"{row['throttled_429']:>6}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=2, help="HTTP worker processes per gateway serve")
    ap.add_argument("--http-clients", type=int, default=16)
    ap.add_argument("--mllp-clients", type=int, default=4)
    ap.add_argument("--configs", default="sqlite,postgres,postgres-2",
                    help="comma-separated: sqlite, postgres (one replica), postgres-2 (two replicas)")
    ap.add_argument("--json", help="also write the results as JSON here")
    args = ap.parse_args()
    wanted = args.configs.split(",")
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    print(f"load: {args.http_clients} HTTP clients (mix {MIX}) and {args.mllp_clients} MLLP clients, "
          f"{args.seconds:g} s per configuration, {PRELOAD} preloaded patients")
    pg = None
    results = []
    try:
        if any(c.startswith("postgres") for c in wanted):
            from tests.pgserver import PostgresServer

            try:
                pg = PostgresServer(durable=True)
                pg.start()
                pg.tune_for_ingest()  # as a tuned server that has been up
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"(PostgreSQL not available: {exc})")
                pg = None
        for config in wanted:
            if config == "sqlite":
                results.append(run_config("SQLite", None, 1, args))
            elif config in ("postgres", "postgres-2") and pg is not None:
                replicas = 2 if config == "postgres-2" else 1
                db = pg.new_database(f"load{len(results)}")
                results.append(run_config("PostgreSQL", db, replicas, args))
            else:
                continue
            print_table(results[-1])
    finally:
        if pg is not None:
            pg.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
