"""The durable outbox: an eDispensation goes from B (PT, dispensing) to A
(BE, prescribing) while A is down for a while, and arrives exactly once;
permanent failures end ``dead``; concurrent claimers never share a row
(SQLite write lock, PostgreSQL ``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway.eprescription import Dispense
from gateway.eprescription.dispense import dispense_document
from gateway.exchange import outbox
from gateway.exchange.keys import init_keys
from gateway.exchange.trust import TrustStore, own_entry
from gateway.fhir.ids import stable_id
from gateway.ingest import ingest
from gateway.records import Store
from gateway.settings import Settings

from .conftest import Server, free_port

ROOT = Path(__file__).resolve().parents[2]
EP = ROOT / "fixtures" / "cda" / "ehdsi-ep" / "FI" / "eP-W8-FI-1-1234.xml"
RX = stable_id("MedicationRequest", "2.16.17.710.850.1000.990.1|3000.1.1")


def _wait(check, seconds: float = 20.0) -> None:
    deadline = time.time() + seconds
    while not check():
        if time.time() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def homes(tmp_path: Path):
    a_home, b_home = tmp_path / "a", tmp_path / "b"
    ring_a, ring_b = init_keys(a_home, "BE"), init_keys(b_home, "PT")
    port = free_port()
    TrustStore(b_home).add(own_entry(ring_a, f"http://127.0.0.1:{port}"))
    TrustStore(a_home).add(own_entry(ring_b, "http://127.0.0.1:1"))
    return a_home, b_home, port


def _dispensation(b_store: Store) -> bytes:
    ingest(b_store, EP.read_bytes(), "cda")
    return dispense_document(b_store, RX, Dispense(1))


def test_dispensation_survives_an_outage_and_arrives_once(homes):
    a_home, b_home, port = homes
    b_store = Store(Settings.resolve(b_home).db_url)
    worker = outbox.OutboxWorker(b_home, b_store, poll=0.05, base_delay=0.2, max_delay=0.5,
                                 timeout=httpx.Timeout(5.0, connect=1.0))
    try:
        with Server(a_home, port):  # A is up ...
            pass  # ... and stopped again
        delivery = outbox.queue_document(b_home, b_store, _dispensation(b_store), "BE")
        assert worker.run_once()  # A is down: the attempt fails and is rescheduled
        row = outbox.status(b_store, delivery)
        assert row["status"] == "pending" and row["attempts"] == 1 and row["last_error"]
        assert row["next_attempt_at"] > time.time()
        worker.start()
        time.sleep(0.5)  # more failed attempts while A is away
        with Server(a_home, port) as a:  # A is back
            _wait(lambda: outbox.status(b_store, delivery)["status"] == "done")
            dispenses = a.store.search("MedicationDispense")
            assert len(dispenses) == 1
            assert dispenses[0]["quantity"]["value"] == 1
            ingestions = a.store.ingestion_count()
            # at-least-once: the same delivery again (a lost answer) is a duplicate at A
            with b_store.write_engine.begin() as conn:
                conn.execute(outbox.outbox.update().where(outbox.outbox.c.id == delivery)
                             .values(status="pending", next_attempt_at=0))
            _wait(lambda: outbox.status(b_store, delivery)["status"] == "done")
            assert outbox.status(b_store, delivery)["attempts"] >= 3
            assert len(a.store.search("MedicationDispense")) == 1
            assert a.store.ingestion_count() == ingestions
    finally:
        worker.stop()
        b_store.close()


def test_inbox_refusals_and_dead_letters(homes, tmp_path):
    a_home, b_home, port = homes
    b_store = Store(Settings.resolve(b_home).db_url)
    worker = outbox.OutboxWorker(b_home, b_store, base_delay=0.01, max_attempts=2,
                                 timeout=httpx.Timeout(5.0, connect=1.0))
    try:
        xml = _dispensation(b_store)
        with Server(a_home, port) as a:
            # not signed: refused for good (4xx), dead after one attempt
            bad = outbox.enqueue(b_store, destination="BE", url=f"{a.url}/exchange/inbox",
                                 payload=xml, headers={"content-type": "application/hl7-cda+xml"})
            assert worker.run_once()
            row = outbox.status(b_store, bad)
            assert row["status"] == "dead" and row["attempts"] == 1, row
            assert "HTTP 422" in row["last_error"] and "signature" in row["last_error"]
            # the inbox wants a peer's delivery token
            from gateway.access.tokens import mint

            national = mint(a.app.state.auth, scope="system/*.cruds", subject="x")
            r = httpx.post(f"{a.url}/exchange/inbox", content=xml,
                           headers={"authorization": f"Bearer {national}", "Idempotency-Key": "k"})
            assert r.status_code == 403
        # A down for good: retried, then dead after max_attempts
        gone = outbox.queue_document(b_home, b_store, xml, "BE")
        while worker.run_once() or outbox.status(b_store, gone)["status"] == "pending":
            time.sleep(0.02)
        row = outbox.status(b_store, gone)
        assert row["status"] == "dead" and row["attempts"] == 2
    finally:
        worker.stop()
        b_store.close()


def test_a_silent_peer_is_held_back_and_the_others_are_not_kept_waiting(homes, tmp_path):
    # FR accepts connections and never answers; its deliveries were queued
    # first. One attempt times out; the other three wait for that one's next
    # attempt instead of costing a timeout each, and BE's goes next.
    a_home, b_home, port = homes
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # never accepted: the handshake completes, no answer comes
    TrustStore(b_home).add(own_entry(init_keys(tmp_path / "fr", "FR"),
                                     f"http://127.0.0.1:{silent.getsockname()[1]}"))
    b_store = Store(Settings.resolve(b_home).db_url)
    worker = outbox.OutboxWorker(b_home, b_store, base_delay=60, timeout=httpx.Timeout(0.5, connect=1.0))
    try:
        xml = _dispensation(b_store)
        with Server(a_home, port) as a:
            to_fr = [outbox.queue_document(b_home, b_store, xml, "FR") for _ in range(4)]
            to_be = outbox.queue_document(b_home, b_store, xml, "BE")
            assert worker.run_once()
            tried = outbox.status(b_store, to_fr[0])
            assert tried["status"] == "pending" and tried["attempts"] == 1
            assert "ReadTimeout" in tried["last_error"]
            for other in to_fr[1:]:
                row = outbox.status(b_store, other)
                assert row["status"] == "pending" and row["attempts"] == 0
                assert row["next_attempt_at"] >= tried["next_attempt_at"] > time.time() + 20
            assert worker.run_once()  # the next due delivery is BE's
            assert outbox.status(b_store, to_be)["status"] == "done"
            assert len(a.store.search("MedicationDispense")) == 1
            assert not worker.run_once()  # nothing else is due
    finally:
        worker.stop()
        b_store.close()
        silent.close()


class _Peer(http.server.BaseHTTPRequestHandler):
    """A peer gateway that issues tokens and answers every delivery with one status."""

    answer = 500

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        token = self.path.endswith("/auth/token")
        body = b'{"access_token": "t", "token_type": "bearer"}' if token else b"{}"
        self.send_response(200 if token else self.answer)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("answer, held", [(500, False), (503, True), (429, True), (422, False)])
def test_only_a_peer_out_of_service_holds_back_its_other_deliveries(tmp_path, answer, held):
    # A 500 or a 4xx is this delivery's problem: the next one is tried at
    # once. A 503 or 429 is the peer's: the next ones wait for the retry.
    handler = type("Peer", (_Peer,), {"answer": answer})
    peer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    home = tmp_path / "b"
    init_keys(home, "PT")
    TrustStore(home).add(own_entry(init_keys(tmp_path / "xx", "LU"),
                                   f"http://127.0.0.1:{peer.server_address[1]}"))
    store = Store(Settings.resolve(home).db_url)
    worker = outbox.OutboxWorker(home, store, base_delay=60, timeout=httpx.Timeout(5.0, connect=1.0))
    try:
        ids = [outbox.enqueue(store, destination="LU", url=outbox.inbox_url(home, "LU"), payload=b"p")
               for _ in range(3)]
        assert worker.run_once()
        first = outbox.status(store, ids[0])
        assert first["attempts"] == 1 and f"HTTP {answer}" in first["last_error"]
        assert first["status"] == ("dead" if answer == 422 else "pending")
        assert worker.run_once() is not held  # the second delivery: tried at once, or held
        assert outbox.status(store, ids[1])["attempts"] == (0 if held else 1)
    finally:
        worker.stop()
        store.close()
        peer.shutdown()
        peer.server_close()


def test_expired_lease_is_claimed_again(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'o.db'}")
    try:
        did = outbox.enqueue(store, destination="BE", url="http://127.0.0.1:1/x", payload=b"x")
        first = outbox.claim(store, lease=60)
        assert first is not None and first.id == did
        assert outbox.claim(store, lease=60) is None  # leased
        again = outbox.claim(store, lease=60, now=time.time() + 120)  # the lease ran out
        assert again is not None and again.id == did and again.attempts == 2
        # the first claimer's late answer no longer counts
        assert not outbox._finish(store, first, status="done")
        assert outbox._finish(store, again, status="done")
    finally:
        store.close()


def test_concurrent_claimers_never_share_a_row(db_url):
    stores = [Store(db_url), Store(db_url)]
    try:
        ids = {outbox.enqueue(stores[0], destination="BE", url="http://x/", payload=b"p")
               for _ in range(40)}
        taken: list[list[str]] = [[], [], [], []]

        def claimer(i: int) -> None:
            while (d := outbox.claim(stores[i % 2], lease=60)) is not None:
                taken[i].append(d.id)

        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        every = [x for t in taken for x in t]
        assert sorted(every) == sorted(ids)  # each row claimed exactly once
    finally:
        for s in stores:
            s.close()
