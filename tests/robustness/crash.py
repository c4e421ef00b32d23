"""Kill -9 rounds against ``gateway serve``, shared by the test and
``bench/crash.py``: clients send unique HL7 v2 messages over MLLP and HTTP
at once, the server's process group gets SIGKILL at a seeded random moment,
the server restarts on the same database, and at the end the store must hold
every acknowledged message exactly once, nothing half-written, nothing that
was never sent, and (SQLite) pass ``PRAGMA integrity_check``."""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.fhir.jsonio import loads
from gateway.mllp import Frame, FrameDecoder, frame
from gateway.pipeline import convert
from tests.robustness.serving import Served, unique_message


@dataclass(slots=True)
class Sent:
    data: bytes
    digest: str
    keys: list[tuple[str, str]]  # (type, id) of the message's own resources
    channel: str
    state: str = "sending"  # sending | acked | refused | unknown


@dataclass
class Ledger:
    messages: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new(self, tag: str, n: int, channel: str) -> Sent:
        data = unique_message(tag, n)
        conv = convert(data, "hl7v2")
        own = [(r["resourceType"], r["id"]) for r in conv.resources
               if r["resourceType"] in ("Patient", "Observation", "DiagnosticReport", "Provenance")]
        sent = Sent(data, conv.digest, own, channel)
        with self.lock:
            self.messages.append(sent)
        return sent

    def count(self, state: str) -> int:
        return sum(1 for m in self.messages if m.state == state)


def _mllp_client(port: int, ledger: Ledger, tag: str, stop: threading.Event) -> None:
    sent: Sent | None = None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            decoder = FrameDecoder()
            n = 0
            while not stop.is_set():
                n += 1
                sent = ledger.new(tag, n, "mllp")
                sock.sendall(frame(sent.data))
                reply = None
                while reply is None:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed")
                    frames = [e.payload for e in decoder.feed(chunk) if isinstance(e, Frame)]
                    reply = frames[0] if frames else None
                sent.state = "acked" if b"MSA|AA|" in reply else "refused"
    except OSError:
        if sent is not None and sent.state == "sending":
            sent.state = "unknown"


def _http_client(base: str, token: str, ledger: Ledger, tag: str, stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "x-application/hl7-v2+er7"}
    n = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        while not stop.is_set():
            n += 1
            sent = ledger.new(tag, n, "http")
            try:
                r = client.post("/ingest", content=sent.data)
            except httpx.HTTPError:
                sent.state = "unknown"
                return
            sent.state = "acked" if r.status_code in (200, 201) else "refused"


def _resend(base: str, token: str, ledger: Ledger, limit: int) -> tuple[int, int]:
    """Send again what got no answer; every answer must be a success. Returns
    how many were resent and how many of those had been stored already (the
    kill came between the commit and the answer)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "x-application/hl7-v2+er7"}
    again = [m for m in ledger.messages if m.state == "unknown"][:limit]
    replays = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for m in again:
            r = client.post("/ingest", content=m.data)
            assert r.status_code in (200, 201), r.text
            assert r.headers["x-ingestion-id"] == m.digest
            replays += r.headers.get("x-ingestion-replay") == "true"
            m.state = "acked"
    return len(again), replays


@dataclass
class CrashReport:
    rounds: int
    sent: int
    acked: int
    unknown: int
    refused: int
    resent: int
    resent_already_stored: int
    stored_unacknowledged: int
    problems: list[str]


def run_rounds(home: Path, db: str | None, rounds: int, seed: str, *, window: tuple[float, float] = (0.4, 1.5),
               clients: int = 2, workers: int = 2) -> CrashReport:
    """Run ``rounds`` kill -9 rounds and check the store (see the module doc)."""
    rng = random.Random(seed)
    ledger = Ledger()
    server = Served(home, db, workers=workers)
    token = ""
    resent = already = 0
    for round_no in range(rounds):
        server.start()
        token = token or server.token()
        sent_again, replays = _resend(server.base, token, ledger, 5)
        resent, already = resent + sent_again, already + replays
        stop = threading.Event()
        threads = []
        for c in range(clients):
            threads.append(threading.Thread(target=_mllp_client, args=(
                server.mllp_port, ledger, f"R{round_no}M{c}X", stop), daemon=True))
            threads.append(threading.Thread(target=_http_client, args=(
                server.base, token, ledger, f"R{round_no}H{c}X", stop), daemon=True))
        for t in threads:
            t.start()
        time.sleep(rng.uniform(*window))
        server.kill()
        stop.set()
        for t in threads:
            t.join(60)
    for m in ledger.messages:
        if m.state == "sending":
            m.state = "unknown"
    problems, stored_unacked = check_store(server, ledger)
    return CrashReport(rounds, len(ledger.messages), ledger.count("acked"), ledger.count("unknown"),
                       ledger.count("refused"), resent, already, stored_unacked, problems)


def check_store(server: Served, ledger: Ledger) -> tuple[list[str], int]:
    """The checks, on the database of a stopped server."""
    from sqlalchemy import func, select, text

    from gateway.records import Store
    from gateway.records.schema import ingestions, resources, versions
    from gateway.settings import Settings

    store = Store(server.db or Settings.resolve(server.home).db_url)
    problems: list[str] = []
    stored_unacked = 0
    try:
        with store.engine.connect() as conn:
            stored = {row.id: row.result for row in conn.execute(select(ingestions.c.id, ingestions.c.result))}
            present = {(t, i) for t, i in conn.execute(select(resources.c.resource_type, resources.c.id))}
            version_counts = {(t, i): n for t, i, n in conn.execute(
                select(versions.c.resource_type, versions.c.id, func.count())
                .group_by(versions.c.resource_type, versions.c.id))}
            if store.url.startswith("sqlite"):
                check = conn.execute(text("PRAGMA integrity_check")).scalar_one()
                if check != "ok":
                    problems.append(f"PRAGMA integrity_check: {check}")
        by_digest = {m.digest: m for m in ledger.messages}
        for digest in stored:
            if digest not in by_digest:
                problems.append(f"an ingestion nobody sent: {digest}")
        for m in ledger.messages:
            complete = all(k in present for k in m.keys)
            partial = any(k in present for k in m.keys)
            if m.digest in stored:
                if m.state != "acked":
                    stored_unacked += 1
                if not complete:
                    problems.append(f"{m.digest[:12]}: logged but resources missing (half-written)")
                result = loads(stored[m.digest])
                for t, i, *_ in result["entries"]:
                    if (t, i) not in present:
                        problems.append(f"{m.digest[:12]}: answer names {t}/{i}, which is not stored")
                for key in m.keys:
                    if version_counts.get(key, 0) != 1:
                        problems.append(f"{m.digest[:12]}: {key} has {version_counts.get(key, 0)} versions")
            else:
                if m.state == "acked":
                    problems.append(f"{m.digest[:12]}: acknowledged over {m.channel} but not stored")
                if partial:
                    problems.append(f"{m.digest[:12]}: resources stored without the ingestion (half-written)")
    finally:
        store.close()
    return problems, stored_unacked
