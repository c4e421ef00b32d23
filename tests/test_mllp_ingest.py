"""HL7 v2 over a real MLLP socket into a real store: ACK only after the
message is stored, NACK with an ERR segment pointing at the problem,
idempotency, bad and split frames."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ingest import bad_frame_reply, mllp_handler
from gateway.mllp import MLLPServer, frame, send_message
from gateway.records import Store
from tests.conftest import sample


class _Running:
    def __init__(self, store: Store, **handler_options: int) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()
        self.server = MLLPServer(mllp_handler(store, **handler_options), "127.0.0.1", 0,
                                 on_bad_frame=bad_frame_reply)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def mllp(tmp_path: Path) -> Iterator[_Running]:
    store = Store(f"sqlite:///{tmp_path / 'mllp.db'}")
    running = _Running(store)
    yield running
    running.stop()
    store.close()


def _er7(name: str) -> bytes:
    return sample(name).lstrip(b"\xef\xbb\xbf").replace(b"\r\n", b"\r").replace(b"\n", b"\r")


def _msa(ack: bytes) -> list[str]:
    seg = [s for s in ack.split(b"\r") if s.startswith(b"MSA")][0]
    return seg.decode().split("|")


def test_ack_aa_after_the_message_is_stored(mllp: _Running) -> None:
    ack = send_message("127.0.0.1", mllp.port, _er7("ORU-R01-RMGEAD.hl7"))
    assert _msa(ack)[1:3] == ["AA", "CNTRL-3456"]
    assert ack.startswith(b"MSH|^~\\&|GHH OE|BLDG4|GHH LAB|ELAB-3|")  # sender and receiver swapped
    # the ACK came after the commit: the data is there now
    assert mllp.store.ingestion_count() == 1
    assert mllp.store.counts()["Observation"] == 1


def test_same_message_twice_is_one_record(mllp: _Running) -> None:
    data = _er7("VXU.hl7")
    first = send_message("127.0.0.1", mllp.port, data)
    counts = mllp.store.counts()
    second = send_message("127.0.0.1", mllp.port, data)
    assert _msa(first)[1] == _msa(second)[1] == "AA"
    assert mllp.store.counts() == counts and mllp.store.ingestion_count() == 1


def test_refused_message_gets_ar_with_err_location(mllp: _Running) -> None:
    bad = b"MSH|^~\\&|LAB|HOSP|GW|GW|20240101||\rPID|1||1\r"
    ack = send_message("127.0.0.1", mllp.port, bad)
    assert _msa(ack)[1] == "AR"
    err = [s for s in ack.split(b"\r") if s.startswith(b"ERR")][0].decode().split("|")
    assert err[2] == "MSH^1^9^1"  # ERR-2 error location
    assert err[3].startswith("101^")  # required field missing
    assert mllp.store.ingestion_count() == 0


def test_bad_frame_gets_a_nack_and_the_connection_goes_on(mllp: _Running) -> None:
    with socket.create_connection(("127.0.0.1", mllp.port), timeout=10) as s:
        s.sendall(b"this is not framed\x1c\r")
        nack = _read_frame(s)
        assert _msa(nack)[1] == "AR"
        s.sendall(frame(_er7("ADT04-251.hl7")))
        assert _msa(_read_frame(s))[1] == "AA"


def test_split_and_coalesced_frames(mllp: _Running) -> None:
    a, b = frame(_er7("ADT04-251.hl7")), frame(_er7("PC1-Problem-Add-v2.3.1.hl7"))
    with socket.create_connection(("127.0.0.1", mllp.port), timeout=10) as s:
        for i in range(0, len(a), 7):  # split: 7 bytes at a time
            s.sendall(a[i:i + 7])
            time.sleep(0.001)
        first = _read_frame(s)
        s.sendall(a + b)  # coalesced: two frames in one write
        second, third = _read_frame(s), _read_frame(s)
    assert [_msa(x)[2] for x in (first, second, third)] == ["1270326314", "1270326314", "331"]
    assert mllp.store.ingestion_count() == 2


def test_abrupt_disconnect_then_concurrent_senders(mllp: _Running) -> None:
    with socket.create_connection(("127.0.0.1", mllp.port), timeout=10) as s:
        s.sendall(frame(_er7("ADT04-251.hl7"))[:40])  # half a frame, then gone
    messages = [_er7(n) for n in ("ADT-A01-01.hl7", "ORU-R01-01.hl7", "RDE-O11-01.hl7", "VXU.hl7",
                                  "MDM-T02-03.hl7", "RDS-O13-01.hl7")]
    results: list[str] = []

    def worker(i: int) -> None:
        ack = send_message("127.0.0.1", mllp.port, messages[i % len(messages)], timeout=30)
        results.append(_msa(ack)[1])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count("AA") == 24
    assert mllp.store.ingestion_count() == len(messages)


_pending: dict[int, bytes] = {}


def _read_frame(s: socket.socket) -> bytes:
    """One framed reply; bytes of the next reply that came along are kept."""
    buf = _pending.pop(s.fileno(), b"")
    while b"\x1c\r" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    end = buf.index(b"\x1c\r")
    if buf[end + 2:]:
        _pending[s.fileno()] = buf[end + 2:]
    return buf[buf.index(b"\x0b") + 1:end]


def test_large_messages_are_converted_in_a_worker_thread(tmp_path: Path) -> None:
    """Past ``inline_bytes`` (here: every message) a message is read and
    converted in a worker thread instead of on the event loop: the same
    answers and the same records."""
    store = Store(f"sqlite:///{tmp_path / 'mllp.db'}")
    running = _Running(store, inline_bytes=0)
    try:
        acks = [send_message("127.0.0.1", running.port, _er7(name))
                for name in ("ORU-R01-RMGEAD.hl7", "VXU.hl7", "ORU-R01-RMGEAD.hl7")]
        bad = send_message("127.0.0.1", running.port, b"MSH|^~\\&|LAB|HOSP|GW|GW|20240101||\rPID|1||1\r")
        assert [_msa(a)[1] for a in acks] == ["AA", "AA", "AA"] and _msa(bad)[1] == "AR"
        assert b"replay" in acks[2]
        assert store.ingestion_count() == 2 and store.counts()["Immunization"] >= 1
    finally:
        running.stop()
        store.close()


def test_many_connections_at_once_are_each_stored_once(mllp: _Running) -> None:
    """Concurrent senders: every message waits for its group commit on the
    event loop, none blocks another, each is stored once."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.robustness.serving import unique_message

    with ThreadPoolExecutor(12) as pool:
        acks = list(pool.map(lambda n: send_message("127.0.0.1", mllp.port, unique_message("c", n)),
                             range(48)))
    assert {_msa(a)[1] for a in acks} == {"AA"}
    assert mllp.store.ingestion_count() == 48
