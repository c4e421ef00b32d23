"""Lean load clients shared by the load benchmarks: raw asyncio sockets, so
that the clients take as little as possible of the cores they share with
the server."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from gateway.mllp import Frame, FrameDecoder, frame
from tests.robustness.serving import Served, unique_message

# Seconds a client waits after a refusal before sending again, as the gateway
# asks: HTTP clients wait the 503's Retry-After; MLLP senders (an AE has no
# such field) wait the gateway's default Retry-After, as integration engines
# wait between resends.
RETRY_AFTER = 1.0

# record(outcome, milliseconds): outcome is "ok", "busy" (503 / AE busy), "throttled" (429) or "error"
Record = Callable[[str, float], None]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def mllp_sender(port: int, tag: str, deadline: float, record: Record) -> None:
    """Unique ORU^R01 messages one after the other on one connection, each
    waiting for its ACK, until ``deadline`` (time.monotonic)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    decoder = FrameDecoder()
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            start = time.perf_counter()
            writer.write(frame(unique_message(tag, n)))
            reply = None
            while reply is None:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("closed")
                frames = [e.payload for e in decoder.feed(chunk) if isinstance(e, Frame)]
                reply = frames[0] if frames else None
            ms = (time.perf_counter() - start) * 1000
            outcome = "ok" if b"MSA|AA|" in reply else "busy" if b"busy" in reply else "error"
            record(outcome, ms)
            if outcome == "busy":  # a sender waits before resending
                await asyncio.sleep(RETRY_AFTER)
    except OSError:
        record("error", 0.0)
    finally:
        writer.close()


async def http_ingester(port: int, token: str, tag: str, deadline: float, record: Record) -> None:
    """Unique ORU^R01 messages to ``POST /ingest`` on one keep-alive
    connection, one after the other, until ``deadline``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: x-application/hl7-v2+er7\r\n").encode()
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            body = unique_message(tag, n)
            start = time.perf_counter()
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            status = int(answer.split(b" ", 2)[1])
            headers = dict(line.lower().split(b":", 1) for line in answer.split(b"\r\n")[1:] if b":" in line)
            length = int(headers[b"content-length"])
            await reader.readexactly(length)
            ms = (time.perf_counter() - start) * 1000
            if status < 300:
                record("ok", ms)
            elif status == 503:
                record("busy", ms)
                await asyncio.sleep(float(headers.get(b"retry-after", RETRY_AFTER)))
            else:
                record("throttled" if status == 429 else "error", ms)
    except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
        record("error", 0.0)
    finally:
        writer.close()


def server_pids(servers: list[Served]) -> list[int]:
    """The servers' processes and their worker processes (Linux /proc)."""
    pids = []
    for server in servers:
        if server.proc is None:
            continue
        pids.append(server.proc.pid)
        children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
        if children.exists():
            pids += [int(x) for x in children.read_text().split()]
    return pids


def cpu_seconds(servers: list[Served]) -> float:
    """User + system CPU time of the servers so far."""
    return process_cpu_seconds(server_pids(servers))


def process_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    return sum(process_cpu_by_pid(pids).values())


def process_cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each of these processes still running (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    times = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    return times


def rss_mb(servers: list[Served]) -> float:
    """Resident memory of the servers, in MB."""
    total = 0
    for pid in server_pids(servers):
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            line = next((ln for ln in status.read_text().splitlines() if ln.startswith("VmRSS:")), "")
            total += int(line.split()[1]) if line else 0
    return total / 1024
