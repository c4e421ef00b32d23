"""Tests for the MLLP transport (gateway.mllp).

Server tests use real sockets on 127.0.0.1 with an OS-assigned port; the
server runs in a background thread with its own event loop.  The handler here
is a stand-in that echoes MSH-10 in a minimal ACK; the real ingest handler is
tested end to end elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from gateway.mllp import (
    REASON_DATA_OUTSIDE_FRAME,
    REASON_INTERNAL_ERROR,
    REASON_OVERSIZED_FRAME,
    REASON_PARTIAL_FRAME,
    BadFrameKind,
    Frame,
    FrameDecoder,
    FrameError,
    FrameEvent,
    MLLPServer,
    frame,
    send_message,
)

HOST = "127.0.0.1"
SB, EB, CR = b"\x0b", b"\x1c", b"\r"


# ---------------------------------------------------------------------------
# HL7 helpers
# ---------------------------------------------------------------------------


def hl7(control_id: str, padding: int = 0) -> bytes:
    """A small ADT^A01 message with the given MSH-10."""
    msg = (
        "MSH|^~\\&|SENDAPP|SENDFAC|GATEWAY|GWFAC|20240101120000||ADT^A01|"
        f"{control_id}|P|2.5\r"
        f"PID|1||{control_id}^^^HOSP^MR||DOE^JANE||19800101|F\r"
    )
    if padding:
        msg += "NTE|1||" + "x" * padding + "\r"
    return msg.encode()


def msh10(message: bytes) -> str:
    first = message.split(b"\r", 1)[0].decode()
    return first.split("|")[9]


def ack_for(message: bytes) -> bytes:
    cid = msh10(message)
    return (
        "MSH|^~\\&|GATEWAY|GWFAC|SENDAPP|SENDFAC|20240101120001||ACK^A01|"
        f"ACK{cid}|P|2.5\rMSA|AA|{cid}\r"
    ).encode()


def nack(reason: str) -> bytes:
    return (
        f"MSH|^~\\&|GATEWAY|GWFAC|||20240101120001||ACK|NACK|P|2.5\rMSA|AR||{reason}\r"
    ).encode()


def msa(reply: bytes) -> tuple[str, str, str]:
    """(MSA-1, MSA-2, MSA-3) of a reply."""
    for segment in reply.decode().split("\r"):
        if segment.startswith("MSA|"):
            fields = [*segment.split("|"), "", "", ""]
            return fields[1], fields[2], fields[3]
    raise AssertionError(f"no MSA segment in {reply!r}")


def echo_handler(message: bytes) -> bytes:
    cid = msh10(message)
    if cid.startswith("BOOM"):
        raise RuntimeError("simulated storage failure")
    return ack_for(message)


class BadFrames:
    """on_bad_frame callback that records reasons and answers with a NACK."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, reason: str) -> bytes:
        with self._lock:
            self.reasons.append(reason)
        return nack(reason)


# ---------------------------------------------------------------------------
# Server / client harness
# ---------------------------------------------------------------------------


class ServerThread:
    """Runs an MLLPServer with its own event loop in a daemon thread."""

    def __init__(self, handler: Callable[[bytes], bytes], **kwargs: Any) -> None:
        self.server = MLLPServer(handler, HOST, 0, **kwargs)
        self.loop_errors: list[dict[str, Any]] = []
        self.leftover_tasks: list[asyncio.Task[Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mllp-test-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()/stop()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(ctx))
        self._loop = loop
        await self.server.start()
        self._ready.set()
        await self.server.serve_forever()
        current = asyncio.current_task()
        self.leftover_tasks = [t for t in asyncio.all_tasks() if t is not current]

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(5), "server did not start"
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(self.server.close(), self._loop)
        fut.result(timeout)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "server thread did not exit"
        if self._error is not None:
            raise self._error

    def wait_idle(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while self.server.active_connections and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self.server.active_connections == 0


@contextmanager
def running_server(
    handler: Callable[[bytes], bytes] = echo_handler, **kwargs: Any
) -> Iterator[ServerThread]:
    st = ServerThread(handler, **kwargs).start()
    try:
        yield st
    finally:
        st.stop()
    # Nothing escaped to the loop's exception handler, no task outlived close().
    assert st.loop_errors == []
    assert st.leftover_tasks == []
    assert st.server.active_connections == 0


class Client:
    """Blocking MLLP client that keeps one connection open."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = FrameDecoder()
        self.replies: deque[bytes] = deque()

    def send(self, message: bytes) -> None:
        self.sock.sendall(frame(message))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes:
        while not self.replies:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            for event in self.decoder.feed(chunk):
                assert isinstance(event, Frame), event
                self.replies.append(event.payload)
        return self.replies.popleft()

    def request(self, message: bytes) -> bytes:
        self.send(message)
        return self.recv()

    def is_closed_by_peer(self, timeout: float = 2.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def abort(self) -> None:
        """Close with RST instead of FIN (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def assert_ack(reply: bytes, control_id: str) -> None:
    assert msa(reply)[:2] == ("AA", control_id)


# ---------------------------------------------------------------------------
# frame() and FrameDecoder
# ---------------------------------------------------------------------------


def decode_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[FrameEvent]:
    events: list[FrameEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


def payloads(events: list[FrameEvent]) -> list[bytes]:
    return [e.payload for e in events if isinstance(e, Frame)]


def kinds(events: list[FrameEvent]) -> list[str]:
    return ["frame" if isinstance(e, Frame) else str(e.kind) for e in events]


def test_frame_wraps_payload() -> None:
    assert frame(b"MSH|x\r") == b"\x0bMSH|x\r\x1c\r"


@pytest.mark.parametrize("bad", [b"a\x0bb", b"a\x1cb"])
def test_frame_rejects_control_bytes(bad: bytes) -> None:
    with pytest.raises(ValueError):
        frame(bad)


def test_decoder_single_frame() -> None:
    d = FrameDecoder()
    assert d.feed(frame(hl7("1"))) == [Frame(hl7("1"))]
    assert not d.in_frame and d.buffered_bytes == 0


def test_decoder_byte_by_byte() -> None:
    d = FrameDecoder()
    data = frame(hl7("1")) + frame(hl7("2"))
    events = decode_all(d, [data[i : i + 1] for i in range(len(data))])
    assert events == [Frame(hl7("1")), Frame(hl7("2"))]


def test_decoder_coalesced_frames() -> None:
    d = FrameDecoder()
    assert payloads(d.feed(frame(b"A") + frame(b"B") + frame(b"C"))) == [b"A", b"B", b"C"]


def test_decoder_end_block_split_across_chunks() -> None:
    d = FrameDecoder()
    assert d.feed(SB + b"abc" + EB) == []
    assert d.in_frame
    assert d.feed(CR + SB + b"def" + EB) == [Frame(b"abc")]
    assert d.feed(CR) == [Frame(b"def")]


def test_decoder_whitespace_between_frames_is_silent() -> None:
    d = FrameDecoder()
    events = d.feed(b"\r\n  " + frame(b"A") + b"\n" + frame(b"B") + b"\r\n")
    assert events == [Frame(b"A"), Frame(b"B")]
    assert d.flush() == []


def test_decoder_reports_junk_before_frame() -> None:
    d = FrameDecoder()
    events = d.feed(b"hello there" + frame(b"A"))
    assert kinds(events) == [BadFrameKind.DATA_OUTSIDE_FRAME, "frame"]
    err = events[0]
    assert isinstance(err, FrameError)
    assert err.reason.startswith(REASON_DATA_OUTSIDE_FRAME)
    assert "11 bytes" in err.reason
    assert "hello" not in err.reason  # content is never echoed into reasons
    assert "\n" not in err.reason and "\r" not in err.reason


def test_decoder_reports_unframed_message_at_end_block() -> None:
    d = FrameDecoder()
    # A sender that forgot the start block: reported when the end block shows up.
    events = d.feed(hl7("1") + EB)
    assert events == []
    events = d.feed(CR)
    assert kinds(events) == [BadFrameKind.DATA_OUTSIDE_FRAME]
    assert "without MLLP framing" in events[0].reason  # type: ignore[union-attr]
    assert d.feed(frame(b"A")) == [Frame(b"A")]


def test_decoder_junk_is_counted_not_buffered() -> None:
    d = FrameDecoder(max_message_bytes=100)
    for _ in range(100):
        assert d.feed(b"z" * 1000) == []
        assert d.buffered_bytes == 0
    events = d.feed(frame(b"A"))
    assert kinds(events) == [BadFrameKind.DATA_OUTSIDE_FRAME, "frame"]
    assert "100000 bytes" in events[0].reason  # type: ignore[union-attr]


def test_decoder_start_block_inside_frame_restarts() -> None:
    d = FrameDecoder()
    events = d.feed(SB + b"partial" + frame(b"whole"))
    assert kinds(events) == [BadFrameKind.PARTIAL, "frame"]
    assert events[0].reason.startswith(REASON_PARTIAL_FRAME)  # type: ignore[union-attr]
    assert "7 bytes" in events[0].reason  # type: ignore[union-attr]
    assert events[1] == Frame(b"whole")


def test_decoder_oversized_frame_is_discarded_then_recovers() -> None:
    d = FrameDecoder(max_message_bytes=10)
    big = frame(b"x" * 50)
    events = d.feed(big + frame(b"ok"))
    assert kinds(events) == [BadFrameKind.OVERSIZED, "frame"]
    assert events[0].reason.startswith(REASON_OVERSIZED_FRAME)  # type: ignore[union-attr]
    assert events[1] == Frame(b"ok")


def test_decoder_oversized_never_buffers_more_than_limit() -> None:
    d = FrameDecoder(max_message_bytes=1000)
    events = d.feed(SB)
    for _ in range(500):
        events += d.feed(b"y" * 97)
        assert d.buffered_bytes <= 1000
    events += d.feed(EB)
    events += d.feed(CR + frame(b"next"))
    assert kinds(events) == [BadFrameKind.OVERSIZED, "frame"]
    assert payloads(events) == [b"next"]


def test_decoder_limit_is_inclusive() -> None:
    d = FrameDecoder(max_message_bytes=10)
    assert d.feed(frame(b"x" * 10)) == [Frame(b"x" * 10)]
    assert kinds(d.feed(frame(b"x" * 11))) == [BadFrameKind.OVERSIZED]


def test_decoder_start_block_while_discarding_starts_new_frame() -> None:
    d = FrameDecoder(max_message_bytes=10)
    events = d.feed(SB + b"x" * 20 + frame(b"fresh"))
    assert kinds(events) == [BadFrameKind.OVERSIZED, "frame"]
    assert payloads(events) == [b"fresh"]


def test_decoder_malformed_end_block() -> None:
    d = FrameDecoder()
    events = d.feed(SB + b"abc" + EB + b"Z" + frame(b"ok"))
    # 'Z' after the bad end block is junk outside a frame.
    assert kinds(events) == [BadFrameKind.MALFORMED_END, BadFrameKind.DATA_OUTSIDE_FRAME, "frame"]
    assert payloads(events) == [b"ok"]


def test_decoder_malformed_end_block_followed_by_start_block() -> None:
    d = FrameDecoder()
    assert d.feed(SB + b"abc" + EB) == []
    events = d.feed(frame(b"ok"))
    assert kinds(events) == [BadFrameKind.MALFORMED_END, "frame"]


def test_decoder_empty_frame() -> None:
    d = FrameDecoder()
    assert kinds(d.feed(SB + EB + CR)) == [BadFrameKind.EMPTY]


def test_decoder_flush_reports_truncated_frame() -> None:
    d = FrameDecoder()
    assert d.feed(SB + b"half a mess") == []
    events = d.flush()
    assert kinds(events) == [BadFrameKind.TRUNCATED]
    assert not d.in_frame and d.buffered_bytes == 0
    assert d.feed(frame(b"A")) == [Frame(b"A")]


def test_decoder_flush_reports_trailing_junk() -> None:
    d = FrameDecoder()
    assert d.feed(b"MSH|no framing at all\r") == []
    assert kinds(d.flush()) == [BadFrameKind.DATA_OUTSIDE_FRAME]


def test_decoder_random_chunking_matches_whole_stream() -> None:
    rng = random.Random(1234)
    parts = [
        b"  \r\n",
        frame(hl7("1")),
        b"junk",
        frame(hl7("2", padding=300)),
        SB + b"abandoned",
        frame(hl7("3")),
        frame(b"z" * 2000),  # oversized for a 1000-byte limit
        frame(hl7("4")),
        b"\r\n",
        SB + b"bad end" + EB + b"\n",
        frame(hl7("5")),
        SB,
        EB + CR,
        frame(hl7("6")),
    ]
    stream = b"".join(parts)
    expected = FrameDecoder(max_message_bytes=1000).feed(stream)
    assert payloads(expected) == [hl7(str(i), padding=300 if i == 2 else 0) for i in range(1, 7)]
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 40)))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=False)]
        assert decode_all(FrameDecoder(max_message_bytes=1000), chunks) == expected


def test_decoder_rejects_bad_limit() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_message_bytes=0)


# ---------------------------------------------------------------------------
# Server and client over real sockets
# ---------------------------------------------------------------------------


def test_round_trip_with_send_message() -> None:
    with running_server() as st:
        reply = send_message(HOST, st.port, hl7("MSG001"), timeout=5)
        assert_ack(reply, "MSG001")


def test_persistent_connection_multiple_messages() -> None:
    with running_server() as st, Client(st.port) as c:
        for i in range(5):
            assert_ack(c.request(hl7(f"P{i}")), f"P{i}")


def test_split_frame_byte_by_byte() -> None:
    with running_server() as st, Client(st.port) as c:
        data = frame(hl7("SPLIT1"))
        for i in range(len(data)):
            c.send_raw(data[i : i + 1])
            time.sleep(0.0005)
        assert_ack(c.recv(), "SPLIT1")


def test_two_frames_coalesced_in_one_send() -> None:
    with running_server() as st, Client(st.port) as c:
        c.send_raw(frame(hl7("C1")) + frame(hl7("C2")))
        assert_ack(c.recv(), "C1")
        assert_ack(c.recv(), "C2")


def test_whitespace_before_frame_is_ignored() -> None:
    bad = BadFrames()
    with running_server(on_bad_frame=bad) as st, Client(st.port) as c:
        c.send_raw(b"\r\n \r\n" + frame(hl7("WS1")))
        assert_ack(c.recv(), "WS1")
    assert bad.reasons == []


def test_junk_before_frame_is_reported_and_frame_processed() -> None:
    bad = BadFrames()
    with running_server(on_bad_frame=bad) as st, Client(st.port) as c:
        c.send_raw(b"GARBAGE!" + frame(hl7("J1")))
        first = c.recv()
        assert msa(first)[0] == "AR"
        assert msa(first)[2].startswith(REASON_DATA_OUTSIDE_FRAME)
        assert_ack(c.recv(), "J1")
    assert len(bad.reasons) == 1


def test_junk_without_callback_sends_nothing() -> None:
    with running_server() as st, Client(st.port) as c:
        c.send_raw(b"GARBAGE!" + frame(hl7("J2")))
        assert_ack(c.recv(), "J2")


def test_oversized_frame_gets_reply_and_connection_stays_usable() -> None:
    # Documented behaviour: the oversized frame is answered with the
    # on_bad_frame reply as soon as the limit is crossed, the rest of it is
    # discarded up to its end block, and the connection stays open.
    bad = BadFrames()
    with running_server(on_bad_frame=bad, max_message_bytes=1024) as st, Client(st.port) as c:
        c.send(hl7("BIG", padding=5000))
        reply = c.recv()
        assert msa(reply)[0] == "AR"
        assert msa(reply)[2].startswith(REASON_OVERSIZED_FRAME)
        assert_ack(c.request(hl7("AFTER")), "AFTER")
    assert [r.split(":")[0] for r in bad.reasons] == [REASON_OVERSIZED_FRAME]


def test_start_block_inside_frame_reports_partial() -> None:
    bad = BadFrames()
    with running_server(on_bad_frame=bad) as st, Client(st.port) as c:
        c.send_raw(SB + b"MSH|^~\\&|half" + frame(hl7("R1")))
        assert msa(c.recv())[2].startswith(REASON_PARTIAL_FRAME)
        assert_ack(c.recv(), "R1")


def test_abrupt_disconnect_mid_frame(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.mllp"), running_server() as st:
        c = Client(st.port)
        c.send_raw(SB + hl7("CUT")[:30])
        c.abort()
        st.wait_idle()
        assert_ack(send_message(HOST, st.port, hl7("NEXT"), timeout=5), "NEXT")
        c2 = Client(st.port)
        c2.send_raw(SB + hl7("CUT2")[:30])
        c2.close()  # orderly close mid-frame
        st.wait_idle()
        assert_ack(send_message(HOST, st.port, hl7("NEXT2"), timeout=5), "NEXT2")
    assert any("truncated frame" in r.getMessage() for r in caplog.records)


def test_disconnect_while_handler_runs() -> None:
    started = threading.Event()
    release = threading.Event()
    handled: list[str] = []

    def slow_handler(message: bytes) -> bytes:
        cid = msh10(message)
        if cid == "SLOW":
            started.set()
            assert release.wait(5)
        handled.append(cid)
        return ack_for(message)

    with running_server(slow_handler) as st:
        c = Client(st.port)
        c.send(hl7("SLOW"))
        assert started.wait(5)
        c.abort()
        time.sleep(0.05)  # let the server see the reset while the handler is blocked
        release.set()
        st.wait_idle()
        assert_ack(send_message(HOST, st.port, hl7("AFTER"), timeout=5), "AFTER")
    # The message was handled (stored) even though its ACK could not be delivered.
    assert handled == ["SLOW", "AFTER"]


def test_handler_exception_is_logged_and_server_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = BadFrames()
    with (
        caplog.at_level(logging.ERROR, logger="gateway.mllp"),
        running_server(on_bad_frame=bad) as st,
        Client(st.port) as c,
    ):
        reply = c.request(hl7("BOOM1"))
        assert msa(reply) == ("AR", "", REASON_INTERNAL_ERROR)
        assert_ack(c.request(hl7("OK1")), "OK1")
        assert_ack(send_message(HOST, st.port, hl7("OK2"), timeout=5), "OK2")
    assert bad.reasons == [REASON_INTERNAL_ERROR]
    errors = [r for r in caplog.records if r.name == "gateway.mllp" and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_handler_exception_without_callback_sends_nothing() -> None:
    with running_server() as st, Client(st.port) as c:
        c.send(hl7("BOOM2"))
        c.send(hl7("OK3"))
        # No reply for BOOM2; the next reply is OK3's ACK.
        assert_ack(c.recv(), "OK3")


def test_handler_returning_unframeable_reply_is_internal_error() -> None:
    bad = BadFrames()
    with running_server(lambda m: b"bad\x1creply", on_bad_frame=bad) as st, Client(st.port) as c:
        assert msa(c.request(hl7("X")))[2] == REASON_INTERNAL_ERROR


def test_fifty_concurrent_connections_five_messages_each() -> None:
    lock = threading.Lock()
    seen: dict[int, list[int]] = {}

    def handler(message: bytes) -> bytes:
        conn_id, seq = (int(x) for x in msh10(message).split("-"))
        with lock:
            seen.setdefault(conn_id, []).append(seq)
        time.sleep(0.002)
        return ack_for(message)

    def run_client(conn_id: int) -> list[str]:
        with Client(st.port, timeout=10) as c:
            if conn_id % 2:
                # half the clients pipeline all five frames in one send
                c.send_raw(b"".join(frame(hl7(f"{conn_id}-{i}")) for i in range(5)))
                return [msa(c.recv())[1] for _ in range(5)]
            return [msa(c.request(hl7(f"{conn_id}-{i}")))[1] for i in range(5)]

    with running_server(handler) as st, ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(run_client, range(50)))
    for conn_id, acked in enumerate(results):
        assert acked == [f"{conn_id}-{i}" for i in range(5)]
        assert seen[conn_id] == list(range(5))  # handled in order per connection


def test_messages_on_one_connection_are_handled_one_at_a_time() -> None:
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def handler(message: bytes) -> bytes:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.01)
        with lock:
            in_flight -= 1
        return ack_for(message)

    with running_server(handler) as st, Client(st.port) as c:
        c.send_raw(b"".join(frame(hl7(f"S{i}")) for i in range(5)))
        assert [msa(c.recv())[1] for _ in range(5)] == [f"S{i}" for i in range(5)]
    assert peak == 1


def test_different_connections_are_handled_concurrently() -> None:
    # A's handler blocks until B's handler has run: only possible if the
    # two connections are served concurrently.
    b_done = threading.Event()

    def handler(message: bytes) -> bytes:
        if msh10(message) == "A":
            if not b_done.wait(5):
                raise AssertionError("connection B was not served while A was busy")
        else:
            b_done.set()
        return ack_for(message)

    with running_server(handler) as st, Client(st.port) as a, Client(st.port) as b:
        a.send(hl7("A"))
        assert_ack(b.request(hl7("B")), "B")
        assert_ack(a.recv(), "A")


def test_idle_connection_is_closed() -> None:
    with running_server(idle_timeout=0.2) as st, Client(st.port) as c:
        assert_ack(c.request(hl7("I1")), "I1")
        started = time.monotonic()
        assert c.is_closed_by_peer(timeout=3)
        assert time.monotonic() - started < 2
        st.wait_idle()


def test_connections_over_limit_are_refused() -> None:
    with running_server(max_connections=2) as st:
        with Client(st.port) as a, Client(st.port) as b:
            assert_ack(a.request(hl7("L1")), "L1")
            assert_ack(b.request(hl7("L2")), "L2")
            with Client(st.port) as extra:
                assert extra.is_closed_by_peer(timeout=3)
        st.wait_idle()
        assert_ack(send_message(HOST, st.port, hl7("L3"), timeout=5), "L3")


def test_close_waits_for_in_flight_handler_and_sends_its_ack() -> None:
    started = threading.Event()
    release = threading.Event()

    def handler(message: bytes) -> bytes:
        started.set()
        assert release.wait(5)
        return ack_for(message)

    st = ServerThread(handler).start()
    port = st.port
    with Client(st.port) as busy, Client(st.port) as idle:
        busy.send(hl7("INFLIGHT"))
        assert started.wait(5)
        stopper = threading.Thread(target=st.stop)
        stopper.start()
        # The idle connection is closed promptly; close() is still waiting.
        assert idle.is_closed_by_peer(timeout=3)
        time.sleep(0.05)
        assert stopper.is_alive()
        release.set()
        assert_ack(busy.recv(), "INFLIGHT")
        assert busy.is_closed_by_peer(timeout=3)
        stopper.join(5)
        assert not stopper.is_alive()
    assert st.loop_errors == []
    assert st.leftover_tasks == []
    with pytest.raises(OSError):
        socket.create_connection((HOST, port), timeout=1).close()


def test_send_message_times_out_without_reply() -> None:
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(1)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            send_message(HOST, listener.getsockname()[1], hl7("T1"), timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        listener.close()


def test_send_message_reports_early_close() -> None:
    def serve_once(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(1)
    t = threading.Thread(target=serve_once, args=(listener,))
    t.start()
    try:
        with pytest.raises(ConnectionError):
            send_message(HOST, listener.getsockname()[1], hl7("E1"), timeout=5)
    finally:
        t.join(5)
        listener.close()


def test_server_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        MLLPServer(echo_handler, max_message_bytes=0)
    with pytest.raises(ValueError):
        MLLPServer(echo_handler, idle_timeout=0)
    with pytest.raises(ValueError):
        MLLPServer(echo_handler, max_connections=0)


def test_port_before_start_raises() -> None:
    with pytest.raises(RuntimeError):
        _ = MLLPServer(echo_handler, port=0).port


def test_serve_forever_in_asyncio_run() -> None:
    async def main() -> bytes:
        server = MLLPServer(echo_handler, HOST, 0)
        await server.start()
        serving = asyncio.create_task(server.serve_forever())
        reply = await asyncio.to_thread(send_message, HOST, server.port, hl7("AR1"), 5.0)
        await server.close()
        await asyncio.wait_for(serving, 2)
        return reply

    assert_ack(asyncio.run(main()), "AR1")


def test_cancelling_serve_forever_closes_server() -> None:
    async def main() -> None:
        server = MLLPServer(echo_handler, HOST, 0)
        await server.start()
        port = server.port
        serving = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0)
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        with pytest.raises(OSError):
            await asyncio.open_connection(HOST, port)

    asyncio.run(main())
