"""A database that does not answer: another session holds a lock on the
resource table, as a long maintenance job or a stuck transaction would.
Callers are told 503 (HTTP) or AE (MLLP) once the statement deadline passes,
not kept waiting; nothing is half-written, and the same message sent again
once the database answers is stored once. Real PostgreSQL, real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.api.limits import Limits
from gateway.ingest import mllp_handler
from gateway.records.store import database_unavailable
from gateway.settings import Settings
from tests.conftest import bearer
from tests.robustness.serving import unique_message

HL7 = {"Content-Type": "application/hl7-v2"}
SAFETY_NET = 120.0  # the lock is let go by then whatever happens, so a failing test ends


class _Lock:
    """An ACCESS EXCLUSIVE lock on ``resource`` held by another session."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn)
        self.conn.execute("LOCK TABLE resource IN ACCESS EXCLUSIVE MODE")
        self._timer = threading.Timer(SAFETY_NET, self.release)
        self._timer.start()

    def release(self) -> None:
        self._timer.cancel()
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


@pytest.fixture
def gateway(tmp_path: Path, postgres: Any) -> Iterator[tuple[TestClient, str]]:
    url = postgres.new_database(f"deadline_{tmp_path.name[-12:].replace('-', '_')}")
    app = create_app(Settings.resolve(tmp_path / "home", url), limits=Limits(db_timeout=1.0))
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with TestClient(app, headers=bearer(app, system="1")) as client:
        yield client, dsn
    app.state.store.close()


def _count(dsn: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


def test_http_callers_are_told_503_when_the_database_does_not_answer(
        gateway: tuple[TestClient, str]) -> None:
    client, dsn = gateway
    assert client.post("/ingest", content=unique_message("dl", 0), headers=HL7).status_code == 201
    stored = _count(dsn, "SELECT count(*) FROM resource")
    lock = _Lock(dsn)
    try:
        r = client.post("/ingest", content=unique_message("dl", 1), headers=HL7)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        issue = r.json()["issue"][0]
        assert issue["code"] == "transient" and "within 1 s" in issue["diagnostics"]
        read = client.get("/fhir/Patient")
        assert read.status_code == 503 and read.json()["resourceType"] == "OperationOutcome"
    finally:
        lock.release()
    # nothing of the refused message was written, and it goes in once sent again
    assert _count(dsn, "SELECT count(*) FROM resource") == stored
    assert _count(dsn, "SELECT count(*) FROM ingestion") == 1
    again = client.post("/ingest", content=unique_message("dl", 1), headers=HL7)
    assert again.status_code == 201
    assert client.post("/ingest", content=unique_message("dl", 1), headers=HL7).status_code == 200
    assert _count(dsn, "SELECT count(*) FROM ingestion") == 2
    assert client.get("/fhir/Patient").json()["total"] == 2


def test_mllp_senders_are_told_to_resend_when_the_database_does_not_answer(
        gateway: tuple[TestClient, str]) -> None:
    client, dsn = gateway
    store = client.app.state.store  # type: ignore[attr-defined]
    handle = mllp_handler(store, threading.BoundedSemaphore(8))

    async def send(n: int) -> list[bytes]:
        # several at once: one batch on the event loop, refused together
        return list(await asyncio.gather(*(handle(unique_message("mllp-dl", n + k))
                                           for k in range(3))))

    lock = _Lock(dsn)
    try:
        acks = asyncio.run(send(0))
    finally:
        lock.release()
    for ack in acks:
        assert b"MSA|AE|" in ack and b"resend" in ack, ack
    assert _count(dsn, "SELECT count(*) FROM ingestion") == 0
    for ack in asyncio.run(send(0)):
        assert b"MSA|AA|" in ack
    assert _count(dsn, "SELECT count(*) FROM ingestion") == 3


def test_what_counts_as_the_database_being_unavailable(postgres: Any) -> None:
    dsn = postgres.new_database("deadline_kinds").replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("SET statement_timeout = 10")
        with pytest.raises(psycopg.Error) as cancelled:
            conn.execute("SELECT pg_sleep(1)")
    assert database_unavailable(cancelled.value)
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.Error) as bug:
        conn.execute("SELECT * FROM no_such_table")
    assert not database_unavailable(bug.value)  # a bug stays a 500, not "try again"
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect("host=127.0.0.1 port=1 user=x dbname=x connect_timeout=2")
    assert database_unavailable(refused.value)


def test_a_server_that_stops_answering_is_given_up_and_the_message_resent_stored_once() -> None:
    """Its statement timeout cannot fire (the whole server is stopped, as when
    its storage hangs): the loop committer's own deadline answers instead."""
    import os
    import signal

    from gateway.records import Store
    from tests.pgserver import PostgresServer

    server = PostgresServer()
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    stopped: list[int] = []
    try:
        url = server.new_database("stalled")
        store = Store(url, db_timeout=0.5)
        handle = mllp_handler(store, threading.BoundedSemaphore(8))

        async def scenario() -> list[bytes]:
            acks = [await handle(unique_message("stall", 0))]  # the loop's connection is open
            stopped.extend(server.pids())
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            acks.append(await handle(unique_message("stall", 1)))
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            stopped.clear()
            acks.append(await handle(unique_message("stall", 1)))  # sent again
            return acks

        first, refused, again = asyncio.run(scenario())
        assert b"MSA|AA|" in first
        assert b"MSA|AE|" in refused and b"resend" in refused, refused
        assert b"MSA|AA|" in again
        store.close()
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        assert _count(dsn, "SELECT count(*) FROM ingestion") == 2
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        server.stop()
