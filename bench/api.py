"""HTTP API throughput: HL7 v2 ingestion over HTTP against a running gateway
(uvicorn, 2 worker processes) on SQLite and on PostgreSQL, next to the conversion-only rate of
the same messages in the same run; and ``$summary`` latency for citizens
with about 50 and 500 resources.

Run from the project root: ``.venv/bin/python bench/api.py [--messages N]
[--concurrency C] [--no-postgres]``. Prints a table; no assertions.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from gateway.pipeline import convert  # noqa: E402

TEMPLATE = (
    "MSH|^~\\&|LIS|LAB^2.16.840.1.113883.19.1^ISO|GW|GW|20240301080000+0100||ORU^R01^ORU_R01|{ctrl}|P|2.5.1\r"
    "PID|1||{pid}^^^LAB&2.16.840.1.113883.19.1&ISO^MR||Doe{pid}^Jane||19800101|F\r"
    "OBR|1||{ctrl}F|24331-1^Lipid panel^LN|||202403010800+0100||||||||||||||||F\r"
    "{obx}"
)
OBX = "OBX|{n}|NM|{code}^Analyte {code}^LN||{value}|mg/dL^^UCUM|70-99|N|||F|||202403010800+0100\r"


def message(i: int, patient: int, obx: int = 3) -> bytes:
    rows = "".join(OBX.format(n=k + 1, code=f"{1000 + k}-{k % 10}", value=80 + (i + k) % 20)
                   for k in range(obx))
    return TEMPLATE.format(ctrl=f"B{i:07d}", pid=f"P{patient:06d}", obx=rows).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, home: Path, db: str | None, workers: int = 2) -> None:
        self.port = free_port()
        env = {**os.environ, "GATEWAY_HOME": str(home)}
        if db:
            env["GATEWAY_DB"] = db
        # migrate (and make the demo key) once before the workers start
        subprocess.run([sys.executable, "-c", "from gateway.api.asgi import create; create()"],
                       env=env, cwd=ROOT, check=True)
        # gateway serve runs uvicorn in each worker process on its own
        # SO_REUSEPORT socket (uvicorn's --workers shares one inherited socket,
        # on which asyncio does not set TCP_NODELAY: 40 ms per request here)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--workers", str(workers),
             "--port", str(self.port), "--home", str(home)] + (["--db", db] if db else []),
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        token = subprocess.run([sys.executable, "-m", "gateway.cli", "token", "--system", "--home", str(home)],
                               capture_output=True, text=True, cwd=ROOT, env=env, check=True).stdout.strip()
        self.headers = {"Authorization": f"Bearer {token}"}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def ingest_rate(server: Server, messages: list[bytes], concurrency: int) -> tuple[float, int]:
    headers = {**server.headers, "Content-Type": "x-application/hl7-v2+er7"}
    failures = 0
    with httpx.Client(base_url=server.base, headers=headers, timeout=60,
                      limits=httpx.Limits(max_connections=concurrency)) as client:
        def post(m: bytes) -> int:
            return client.post("/ingest", content=m).status_code
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for status in pool.map(post, messages):
                failures += status not in (200, 201)
        elapsed = time.perf_counter() - start
    return len(messages) / elapsed, failures


def summary_latency(server: Server, patient_number: int, n_messages: int, obx: int, rounds: int) -> tuple[float, float, int]:
    headers = {**server.headers, "Content-Type": "x-application/hl7-v2+er7"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
        for i in range(n_messages):
            client.post("/ingest", content=message(900_000 + patient_number * 1000 + i, patient_number, obx))
        found = client.get(f"/fhir/Patient?family=Doe{patient_number:06d}".replace("Doe", "doeP")).json()
        pid = found["entry"][0]["resource"]["id"]
        resources = client.get(f"/fhir/Observation?patient=Patient/{pid}&_summary=count").json()["total"]
        client.get(f"/fhir/Patient/{pid}/$summary")
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            r = client.get(f"/fhir/Patient/{pid}/$summary")
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], resources


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}")
    msgs = [message(i, i % 300) for i in range(args.messages)]
    start = time.perf_counter()
    for m in msgs:
        convert(m).to_json()
    conv_rate = len(msgs) / (time.perf_counter() - start)
    print(f"messages: {len(msgs)} ORU^R01 (3 OBX each, 300 patients); concurrency {args.concurrency}")
    print(f"\n{'measure':<44}{'SQLite':>14}{'PostgreSQL':>14}")
    print(f"{'conversion only, in process (msg/s)':<44}{conv_rate:>14.0f}{conv_rate:>14.0f}")
    results: dict[str, dict[str, str]] = {}
    backends = [("SQLite", None)]
    pg = None
    if not args.no_postgres:
        from tests.pgserver import PostgresServer
        try:
            pg = PostgresServer(durable=True)
            pg.start()
            backends.append(("PostgreSQL", pg.new_database("bench")))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"(PostgreSQL not available: {exc})")
    for name, db in backends:
        home = Path(tempfile.mkdtemp(prefix="gw-bench-"))
        server = Server(home, db)
        try:
            rate, failures = ingest_rate(server, msgs, args.concurrency)
            m50, p50, n50 = summary_latency(server, 100_001, 16, 3, args.rounds)
            m500, p500, n500 = summary_latency(server, 100_002, 100, 5, args.rounds)
            results[name] = {
                "ingest": f"{rate:.0f}" + (f" ({failures} failed)" if failures else ""),
                "ratio": f"{rate / conv_rate:.2f}",
                "s50": f"{m50:.1f} / {p50:.1f}", "s500": f"{m500:.1f} / {p500:.1f}",
                "n50": str(n50), "n500": str(n500),
            }
        finally:
            server.stop()
            shutil.rmtree(home, ignore_errors=True)
    if pg is not None:
        pg.stop()
    def row(label: str, key: str) -> None:
        print(f"{label:<44}{results.get('SQLite', {}).get(key, 'n/a'):>14}"
              f"{results.get('PostgreSQL', {}).get(key, 'n/a'):>14}")
    row("HTTP ingest, uvicorn 2 workers (msg/s)", "ingest")
    row("  ratio to conversion only", "ratio")
    row("$summary ~50 resources: median / p95 (ms)", "s50")
    row("  observations in that record", "n50")
    row("$summary ~500 resources: median / p95 (ms)", "s500")
    row("  observations in that record", "n500")


if __name__ == "__main__":
    main()
