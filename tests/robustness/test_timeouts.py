"""Slow clients against a real ``gateway serve`` (timeouts of 1 s here):
a connection that sends nothing, headers sent a byte at a time, a body that
stalls, an MLLP frame that never ends. Each is cut off; other clients are
served meanwhile. The limits are generous so a slow machine does not fail
them; they only detect a hang."""

from __future__ import annotations

import socket
import time

import httpx

from tests.robustness.serving import Served, mllp_exchange, msa, unique_message

HANG = 20.0  # seconds: far above the 1 s timeouts configured in the fixture


def _closed_within(sock: socket.socket, seconds: float, dribble: bytes = b"") -> bytes:
    """Read until the server closes; dribble one byte every 0.2 s meanwhile.
    Returns what the server sent; fails if it is still open after ``seconds``."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    for i in range(10**6):
        if time.monotonic() > deadline:
            raise AssertionError(f"still connected after {seconds} s")
        if dribble:
            try:
                sock.sendall(dribble[i % len(dribble):i % len(dribble) + 1])
            except OSError:
                return got
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return got
        if not chunk:
            return got
        got += chunk
    return got


def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        assert _closed_within(sock, HANG) == b""


def test_headers_sent_a_byte_at_a_time_are_cut_off(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n")
        _closed_within(sock, HANG, dribble=b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")


def test_a_body_that_stalls_answers_408_with_an_operation_outcome(served: Served) -> None:
    token = served.token()
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(b"POST /ingest HTTP/1.1\r\nHost: gateway\r\nContent-Type: x-application/hl7-v2+er7\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 1000\r\n\r\nMSH|^~")
        answer = _closed_within(sock, HANG)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"resourceType":"OperationOutcome"' in answer


def test_others_are_served_while_slow_clients_hang(served: Served) -> None:
    slow = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(30)]
    try:
        for sock in slow:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        r = httpx.get(served.base + "/health", timeout=HANG)
        assert r.status_code == 200
        ack = mllp_exchange(served.mllp_port, [unique_message("SLOW", 1)], timeout=HANG)
        assert msa(ack[0])[1] == "AA"
    finally:
        for sock in slow:
            sock.close()


def test_an_mllp_frame_that_never_ends_is_closed(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.mllp_port)) as sock:
        sock.sendall(b"\x0bMSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||")
        assert _closed_within(sock, HANG) == b""


def test_an_mllp_peer_that_connects_and_says_nothing_is_closed(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.mllp_port)) as sock:
        assert _closed_within(sock, HANG) == b""
