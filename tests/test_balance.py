"""MLLP connections spread evenly over worker processes (gateway.balance):
real listening sockets, real descriptor passing, real MLLP exchanges, and
``gateway serve --workers 2`` seen from /proc."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.balance import ConnectionBalancer
from gateway.mllp import Frame, FrameDecoder, FrameError, MLLPServer, frame
from tests.robustness.serving import Served, unique_message

HOST = "127.0.0.1"


def _ack(message: bytes) -> bytes:
    control = message.split(b"\r")[0].split(b"|")[9]
    return b"MSH|^~\\&|GW|GW|LIS|LAB|20240301||ACK|" + control + b"|P|2.5.1\rMSA|AA|" + control


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(64)
    return sock


@asynccontextmanager
async def _pair(stop_second: bool = False, start_second: bool = True) -> AsyncIterator[
        tuple[list[MLLPServer], list[list[bytes]], list[ConnectionBalancer]]]:
    """Two MLLP servers, each on its own port, joined by a balancer group as
    two worker processes are; each records the messages it handled."""
    handled: list[list[bytes]] = [[], []]
    balancers = ConnectionBalancer.group(2)

    def handler(i: int):  # type: ignore[no-untyped-def]
        def handle(message: bytes) -> bytes:
            handled[i].append(message)
            return _ack(message)
        return handle

    servers = [MLLPServer(handler(i), sock=_listening(), balancer=balancers[i]) for i in range(2)]
    for s in servers[:2 if start_second else 1]:
        await s.start()
    if stop_second:
        await servers[1].close()
    try:
        yield servers, handled, balancers
    finally:
        for s in servers:
            await s.close()


async def _exchange(port: int, message: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Connect and send at once (the frame may arrive before the connection is
    passed on), then read the reply."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(frame(message))
    await writer.drain()
    decoder = FrameDecoder()
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), 10)
        assert chunk, "connection closed before the reply"
        events = decoder.feed(chunk)
        if events:
            assert isinstance(events[0], Frame)
            return reader, writer, events[0].payload


async def _settle(condition, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


def test_connections_to_one_process_are_shared_with_the_other() -> None:
    async def run() -> None:
        async with _pair() as (servers, handled, balancers):
            port = servers[0].port
            conns = [await _exchange(port, unique_message("bal", i)) for i in range(6)]
            for i, (_, _, reply) in enumerate(conns):
                assert f"MSA|AA|bal-{i}".encode() in reply
            # every connection came to the first server's port; half are served by the second
            assert [s.active_connections for s in servers] == [3, 3]
            assert len(handled[0]) == len(handled[1]) == 3
            # a passed connection stays with its new process for later messages
            reader, writer, _ = conns[1]
            owner = 0 if unique_message("bal", 1) in handled[0] else 1
            writer.write(frame(unique_message("again", 1)))
            await writer.drain()
            assert b"MSA|AA|again-1" in await asyncio.wait_for(reader.read(65536), 10)
            assert unique_message("again", 1) in handled[owner]
            for _, w, _ in conns:
                w.close()
            await _settle(lambda: all(s.active_connections == 0 for s in servers))
            assert [s.active_connections for s in servers] == [0, 0]
            await _settle(lambda: balancers[0].loads == [0, 0])
            assert balancers[0].loads == balancers[1].loads == [0, 0]

    asyncio.run(run())


def test_connections_arriving_on_both_ports_stay_within_one_of_each_other() -> None:
    async def run() -> None:
        async with _pair() as (servers, _, _):
            ports = [servers[0].port] * 5 + [servers[1].port] * 2 + [servers[0].port] * 4
            conns = await asyncio.gather(*(_exchange(p, unique_message("mix", i))
                                           for i, p in enumerate(ports)))
            counts = [s.active_connections for s in servers]
            assert sum(counts) == 11 and abs(counts[0] - counts[1]) <= 1, counts
            for _, w, _ in conns:
                w.close()

    asyncio.run(run())


@pytest.mark.parametrize("second", ["stopped", "still starting"])
def test_a_process_not_taking_connections_is_not_passed_any(second: str) -> None:
    # One that has stopped, or one that has its place in the group but does
    # not take connections yet (at start it loads mappings and terminology
    # for seconds): a connection passed to it would be lost or would wait.
    async def run() -> None:
        async with _pair(stop_second=second == "stopped",
                         start_second=second == "stopped") as (servers, handled, balancers):
            assert not balancers[0].ready(1) and balancers[0].ready(0)
            conns = [await _exchange(servers[0].port, unique_message(second[:5], i)) for i in range(3)]
            assert all(b"MSA|AA|" in reply for _, _, reply in conns)
            assert servers[0].active_connections == 3 and len(handled[0]) == 3
            assert balancers[0].loads == [3, 0]
            for _, w, _ in conns:
                w.close()

    asyncio.run(run())


def test_worker_sockets_take_connections_only_once_listening() -> None:
    # gateway serve binds its ports in every process first and listens once
    # the process has loaded everything; until then the port's connections
    # go to the processes already listening, or are refused.
    from gateway.cli import _bind

    first = _bind(HOST, 0)
    port = first.getsockname()[1]
    second = _bind(HOST, port)  # another worker process, same port
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, port), timeout=5).close()
        second.listen(8)
        for _ in range(4):  # only the listening one is offered them
            socket.create_connection((HOST, port), timeout=5).close()
            conn, _ = second.accept()
            conn.close()
    finally:
        first.close()
        second.close()


def test_a_group_needs_two_processes_and_a_balancer_a_shared_socket() -> None:
    with pytest.raises(ValueError):
        ConnectionBalancer.group(1)
    with pytest.raises(ValueError):
        MLLPServer(_ack, balancer=ConnectionBalancer.group(2)[0])


def _mllp_connections_by_process(port: int, root: int) -> list[int]:
    """Established connections on ``port`` held by each process under ``root``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                    inodes.add(f"socket:[{cols[9]}]")
    pids = [root] + [int(p) for p in Path(f"/proc/{root}/task/{root}/children").read_text().split()]
    counts = []
    for pid in pids:
        held = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                held += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
            except OSError:
                pass
        counts.append(held)
    return [c for c in counts if c]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_gateway_serve_with_two_workers_splits_mllp_senders_evenly() -> None:
    served = Served(Path(tempfile.mkdtemp(prefix="gw-balance-")), workers=2).start()
    try:
        senders = []
        for i in range(10):  # one after the other, as senders come up over a day
            s = socket.create_connection((HOST, served.mllp_port), timeout=30)
            senders.append(s)
            s.sendall(frame(unique_message("split", i)))
            decoder = FrameDecoder()
            events: list[Frame | FrameError] = []
            while not events:
                events = decoder.feed(s.recv(65536))
            assert isinstance(events[0], Frame) and f"MSA|AA|split-{i}".encode() in events[0].payload
        assert served.proc is not None
        assert sorted(_mllp_connections_by_process(served.mllp_port, served.proc.pid)) == [5, 5]
        for s in senders:
            s.close()
    finally:
        served.stop()
