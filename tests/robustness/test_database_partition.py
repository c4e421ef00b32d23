"""A database server that no longer answers at all: its host is down, or the
network to it is cut. It cannot cancel anything (no statement timeout
fires), and the kernel would keep the connection open for hours, so every
caller would wait that long. PostgreSQL runs here in a network namespace of
its own, behind a virtual Ethernet pair; taking the far end of the pair down
drops its packets, as a cut cable or a dead host does, rather than refusing
them. Reads and writes are then answered 503 after about the deadline, and
once the link is back the gateway connects anew and a message sent again is
stored once. Needs root and ``ip netns`` (skipped elsewhere)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.api.limits import Limits
from gateway.records import Store
from gateway.records.store import database_unavailable
from gateway.settings import Settings
from tests.conftest import bearer
from tests.robustness.serving import unique_message

HL7 = {"Content-Type": "application/hl7-v2"}
DEADLINE = 2.0  # GATEWAY_DB_TIMEOUT for the gateway under test
SAFETY_NET = 60.0  # a call still waiting by then has not been bounded: the test fails


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class _Partition:
    """A namespace with one end of a veth pair; the other end stays here."""

    def __init__(self) -> None:
        tag = os.getpid() % 100_000
        self.ns, self.near, self.far = f"gwdb{tag}", f"gwdb{tag}a", f"gwdb{tag}b"
        net = 10_000 + tag % 250
        self.host = f"10.{net // 250 % 250}.{net % 250}.2"
        near = f"10.{net // 250 % 250}.{net % 250}.1"
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", self.near, "type", "veth", "peer", "name", self.far)
            _ip("link", "set", self.far, "netns", self.ns)
            _ip("addr", "add", f"{near}/30", "dev", self.near)
            _ip("link", "set", self.near, "up")
            _ip("netns", "exec", self.ns, "ip", "addr", "add", f"{self.host}/30", "dev", self.far)
            _ip("netns", "exec", self.ns, "ip", "link", "set", self.far, "up")
            _ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def cut(self) -> None:
        _ip("netns", "exec", self.ns, "ip", "link", "set", self.far, "down")

    def heal(self) -> None:
        _ip("netns", "exec", self.ns, "ip", "link", "set", self.far, "up")

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.near], capture_output=True, timeout=30, check=False)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30, check=False)


@pytest.fixture
def cut_off() -> Iterator[tuple[Any, _Partition]]:
    from tests.pgserver import PostgresServer

    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and ip (iproute2) for a network namespace")
    try:
        partition = _Partition()
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"no network namespace here: {exc}")
    server = None
    try:
        server = PostgresServer(host=partition.host, netns=partition.ns)
        server.start()
        yield server, partition
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    finally:
        partition.heal()
        if server is not None:
            server.stop()
        partition.remove()


def _bounded(call: Callable[[], Any]) -> Any:
    """``call()``'s result; the test fails if it is still waiting after
    the safety net (the call is then left to finish once the link is back)."""
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(call()), daemon=True)
    worker.start()
    worker.join(SAFETY_NET)
    if not done:
        pytest.fail(f"still waiting for the database after {SAFETY_NET:.0f} s")
    return done[0]


def _refused(r: Any) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"]
    assert r.json()["issue"][0]["code"] == "transient"


def test_a_database_cut_off_is_answered_503_and_connected_again(
        cut_off: tuple[Any, _Partition], tmp_path: Path) -> None:
    server, partition = cut_off
    url = server.new_database("partition")
    app = create_app(Settings.resolve(tmp_path / "home", url), limits=Limits(db_timeout=DEADLINE))
    with TestClient(app, headers=bearer(app, system="1")) as client:
        first = client.post("/ingest", content=unique_message("cut", 0), headers=HL7)
        assert first.status_code == 201
        patient = next(e["response"]["location"].split("/_history")[0]
                       for e in first.json()["entry"]
                       if e["response"]["location"].startswith("Patient/"))
        assert client.get(f"/fhir/{patient}").status_code == 200  # the pool holds a connection now
        partition.cut()
        try:
            _refused(_bounded(lambda: client.get(f"/fhir/{patient}")))
            _refused(_bounded(lambda: client.post("/ingest", content=unique_message("cut", 1),
                                                  headers=HL7)))
            _refused(_bounded(lambda: client.get("/fhir/Patient")))
        finally:
            partition.heal()
        assert client.get(f"/fhir/{patient}").status_code == 200  # connected anew
        assert client.post("/ingest", content=unique_message("cut", 1), headers=HL7).status_code == 201
        assert client.post("/ingest", content=unique_message("cut", 1), headers=HL7).status_code == 200
    app.state.store.close()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM ingestion").fetchone()
    assert row is not None and row[0] == 2  # the refused message once, after it was sent again


def test_a_statement_whose_answer_never_comes_fails_instead_of_waiting(
        cut_off: tuple[Any, _Partition]) -> None:
    # The statement is on the server when the link goes: its answer is
    # dropped, and nothing on the server side can end the wait (keepalive
    # probes and unacknowledged data do, on the gateway's side).
    from sqlalchemy import text

    server, partition = cut_off
    store = Store(server.new_database("in_flight"), db_timeout=DEADLINE)

    def run() -> BaseException | None:
        with store.engine.connect() as conn:
            try:
                conn.execute(text("SELECT pg_sleep(1)"))
            except Exception as exc:  # noqa: BLE001 - the error is the result
                return exc
        return None

    try:
        with store.engine.connect() as conn:  # connected while the link is up
            conn.execute(text("SELECT 1"))
        started: list[BaseException | None] = []
        worker = threading.Thread(target=lambda: started.append(run()), daemon=True)
        worker.start()
        time.sleep(0.3)  # on the server by now (if not, its sending is what waits)
        partition.cut()
        worker.join(SAFETY_NET)
        if not started:
            pytest.fail(f"still waiting for the answer after {SAFETY_NET:.0f} s")
        assert started[0] is not None and database_unavailable(started[0]), started[0]
    finally:
        partition.heal()
        store.close()
