"""Spread long-lived MLLP connections evenly over the worker processes.

Every worker process listens on the MLLP port (``SO_REUSEPORT``), and the
kernel hashes each new connection to one of them. For HTTP, with many short
connections, that evens out. An MLLP sender keeps one connection open for
hours, and a few senders can land on one process while another idles: with
24 connections, splits from 12/12 to 9/15 were seen, and with two senders
both land on the same process half the time.

Each process publishes the number of MLLP connections it serves in a small
array in shared memory. A process that accepts a connection while another
serves fewer passes the socket to the least loaded one (``SCM_RIGHTS`` over a
Unix datagram socket) before it reads a byte from it; the sender sees one
connection, served by the other process. A passed connection is never passed
on again. Only a process that has started taking connections is passed one
(one still loading at start would keep it waiting), and when a process
cannot be reached (it has exited), the one that accepted the connection
serves it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from multiprocessing.sharedctypes import RawArray
from typing import Any

logger = logging.getLogger(__name__)

Adopt = Callable[[socket.socket], None]

_BATCH = 16  # sockets taken from the inbox per wake-up


class ConnectionBalancer:
    """One process's part of a group: its slot in the shared load array, the
    inbox it receives sockets on, and the other members' inboxes to send to.

    Built in the parent with :meth:`group`, one per process, and handed to
    each worker process as it starts (the sockets and the shared array are
    inherited through ``multiprocessing``)."""

    def __init__(self, index: int, counters: Any, inbox: socket.socket,
                 peers: dict[int, socket.socket]) -> None:
        self.index = index
        self._n = len(peers) + 1
        self._counters = counters
        self._inbox = inbox
        self._peers = peers
        self._unreachable: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def group(cls, processes: int) -> list[ConnectionBalancer]:
        """One balancer per process, all sharing one array of counters."""
        if processes < 2:
            raise ValueError("a balancer group needs at least two processes")
        counters = RawArray("q", 2 * processes + 2 * processes * processes)
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(processes)]
        for receive, send in pairs:
            receive.setblocking(False)
            send.setblocking(False)
        # Each member owns its descriptors (its own copy of the others' send
        # ends), so the parent can close a worker's once the worker has them.
        members = [cls(i, counters, pairs[i][0],
                       {j: pairs[j][1].dup() for j in range(processes) if j != i})
                   for i in range(processes)]
        for _, send in pairs:
            send.close()
        return members

    # -- load --------------------------------------------------------------
    # Every counter has one writer, the process whose row it is in, so no
    # lock is needed (and none can be left held by a process that died):
    # served[i], then passed[i][j] and taken[i][j], connections process i
    # passed to, and took from, process j since the start, then ready[i], 1
    # while process i takes connections passed to it. A process's load
    # counts the connections passed to it that it has not taken yet.

    def _served(self, i: int) -> int:
        return i

    def _passed(self, i: int, j: int) -> int:
        return self._n + i * self._n + j

    def _taken(self, i: int, j: int) -> int:
        return self._n + self._n * self._n + i * self._n + j

    def _ready(self, i: int) -> int:
        return self._n + 2 * self._n * self._n + i

    def ready(self, j: int) -> bool:
        """Whether process ``j`` takes connections passed to it."""
        return bool(self._counters[self._ready(j)])

    def load(self, j: int) -> int:
        """Connections process ``j`` serves, or has been passed and will serve."""
        c, n = self._counters, self._n
        return (c[self._served(j)]
                + sum(c[self._passed(i, j)] for i in range(n))
                - sum(c[self._taken(j, i)] for i in range(n)))

    @property
    def loads(self) -> list[int]:
        return [self.load(j) for j in range(self._n)]

    def opened(self) -> None:
        """This process serves one more connection."""
        self._counters[self._served(self.index)] += 1

    def closed(self) -> None:
        """A connection this process served has ended."""
        self._counters[self._served(self.index)] -= 1

    def target(self) -> int | None:
        """The process a new connection accepted here should go to, or None to
        keep it: the least loaded process that is ready and reachable, when it
        serves fewer connections than this one."""
        best, best_load = None, self.load(self.index)
        for j in self._peers:
            if j not in self._unreachable and self.ready(j) and (load := self.load(j)) < best_load:
                best, best_load = j, load
        return best

    # -- passing sockets ---------------------------------------------------

    def place(self, conn: socket.socket) -> bool:
        """Pass ``conn``, just accepted here, to a less loaded process if there
        is one: True when it was passed (and closed here). False when this
        process is to serve it; it is counted here from now on."""
        j = self.target()
        if j is not None:
            try:
                socket.send_fds(self._peers[j], [self.index.to_bytes(2, "big")], [conn.fileno()])
            except OSError as exc:  # that process has exited, or its inbox is full
                logger.warning("MLLP: could not pass a connection to worker %d (%s); served here",
                               j, exc.__class__.__name__)
                if not isinstance(exc, BlockingIOError):
                    self._unreachable.add(j)
            else:
                self._counters[self._passed(self.index, j)] += 1
                conn.close()
                return True
        self.opened()
        return False

    async def assemble(self, timeout: float) -> bool:
        """Mark this process ready to take connections, and wait until every
        process of the group is (at most ``timeout`` seconds), so that all
        start listening together: senders that connect at once are then
        spread over all of them, not kept by whichever was ready first.
        False when one never got ready (it exited while starting, say)."""
        self._counters[self._ready(self.index)] = 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not all(self.ready(j) for j in range(self._n)):
            if loop.time() >= deadline:
                logger.warning("MLLP: worker processes %s not ready after %.0f s; serving without them",
                               [j for j in range(self._n) if not self.ready(j)], timeout)
                return False
            await asyncio.sleep(0.02)
        return True

    def receive(self, loop: asyncio.AbstractEventLoop, adopt: Adopt) -> None:
        """Start taking the connections other processes pass here: ``adopt`` is
        called on the loop with each one."""
        self._loop = loop
        loop.add_reader(self._inbox.fileno(), self._drain, adopt)
        self._counters[self._ready(self.index)] = 1

    def _drain(self, adopt: Adopt) -> None:
        for _ in range(_BATCH):
            try:
                data, fds, _, _ = socket.recv_fds(self._inbox, 16, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("MLLP: balancer inbox failed: %s", exc)
                return
            sender = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            for fd in fds:
                if sender is not None and sender < self._n:
                    self._counters[self._taken(self.index, sender)] += 1
                self.opened()
                try:
                    conn = socket.socket(fileno=fd)
                except OSError:
                    self.closed()
                    continue
                adopt(conn)

    def stop(self) -> None:
        """Stop receiving: the other processes pass nothing here any more; one
        already on its way is refused by the kernel (the inbox is closed), and
        its sender reconnects."""
        self._counters[self._ready(self.index)] = 0
        if self._loop is not None:
            self._loop.remove_reader(self._inbox.fileno())
            self._loop = None
        self.close()

    def close(self) -> None:
        """Close this member's sockets (in the parent, once a worker process
        has inherited its own)."""
        self._inbox.close()
        for s in self._peers.values():
            s.close()
