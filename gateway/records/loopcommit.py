"""Group commit on the event loop (PostgreSQL): the loop that converts the
messages also commits them, on the database driver's asynchronous
connections.

With the threaded :class:`~gateway.records.groupcommit.GroupCommitter` an
event loop converting messages and the writer threads take turns on the
interpreter lock: each of a batch's round trips to the database ends with
the writer thread waiting for the loop to let go of the lock (up to the
interpreter's switch interval, 5 ms), and every answer crosses back to the
loop. Here a batch is a task of the loop itself: while it waits for the
database the loop converts the next messages, and a finished round trip is
taken up at the loop's next turn. No thread, no lock to wait for.

Only the usual batch runs here: one that finds everything it needs in its
one lookup and commits. Anything else (a batch that needs a further read,
such as linking a Patient to another source's Patient; a constraint
violation; a lost connection) is rolled back and each of its messages is
handed to ``fallback`` (the threaded committer, whose careful mode lets one
bad message fail alone).

Up to ``writers`` batches are in flight at once (one by default: larger
batches need fewer disk flushes, and measured faster than two), each on a
connection of its own, kept from one batch to the next and dropped after a
failure. While they commit, new work queues; the next batch takes all of it
(up to ``max_batch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["DeadlinePassed", "LoopCommitter", "NeedsConnection"]

logger = logging.getLogger(__name__)

W = TypeVar("W")
R = TypeVar("R")


class NeedsConnection(Exception):
    """Raised by a batch that needs a blocking read: it goes to the fallback."""


class DeadlinePassed(Exception):
    """The database did not answer a batch within the committer's deadline:
    a server that has stopped answering (its storage hangs, say), which its
    own statement timeout cannot cut short. The batch's connection is
    dropped; whether its commit lands is unknown, and a message sent again
    is found stored or stored then."""


class LoopCommitter(Generic[W, R]):
    """Group commit of ``W`` work items on one event loop.

    ``connect()`` opens a connection; ``commit(conn, works)`` writes and
    commits a batch, returning one result per work item; ``fallback(work)``
    stores one item another way (after the batch was rolled back). An error
    for which ``final(exc)`` is true (the database's deadline passed) is
    every item's answer instead: each would only wait as long again. So is
    :class:`DeadlinePassed`, when a batch takes longer than ``deadline``
    seconds (None: no limit) to connect and commit."""

    def __init__(self, connect: Callable[[], Awaitable[Any]],
                 commit: Callable[[Any, list[W]], Awaitable[list[R]]],
                 fallback: Callable[[W], Awaitable[R]], *, writers: int = 1,
                 max_batch: int = 64,
                 final: Callable[[BaseException], bool] = lambda exc: False,
                 deadline: float | None = None) -> None:
        self._connect, self._commit, self._fallback = connect, commit, fallback
        self._final, self._deadline = final, deadline
        self.writers, self.max_batch = writers, max_batch
        self._pending: list[tuple[W, asyncio.Future[R]]] = []
        self._idle: list[Any] = []  # connections between batches
        self._active = 0  # batches in flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False  # close_now was called: connections in use are closed when done
        self.batches = 0  # committed here
        self.fallbacks = 0  # work items handed to the fallback

    async def run(self, work: W) -> R:
        """Store ``work`` in the next batch; its result once committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if self._active < self.writers:
            self._active += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        """Commit batches while work is waiting."""
        try:
            while self._pending:
                batch = self._pending[:self.max_batch]
                del self._pending[:self.max_batch]
                await self._run_batch(batch)
        finally:
            self._active -= 1

    async def _run_batch(self, batch: list[tuple[W, asyncio.Future[R]]]) -> None:
        works = [w for w, _ in batch]
        conn = None
        try:
            async with asyncio.timeout(self._deadline):
                conn = self._idle.pop() if self._idle else await self._connect()
                results = await self._commit(conn, works)
        except BaseException as exc:  # rolled back; every item goes the other way
            late = isinstance(exc, TimeoutError) and self._deadline is not None
            if late:
                _finish(conn)  # do not wait on it any more
            elif conn is not None:
                await self._discard(conn, keep=isinstance(exc, NeedsConnection))
            if isinstance(exc, asyncio.CancelledError):
                for _, future in batch:
                    future.cancel()
                raise
            if late or self._final(exc):
                error = (DeadlinePassed(f"the database did not answer within {self._deadline:g} s")
                         if late else exc)
                logger.warning("batch of %d not stored: %s", len(batch), error)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            if not isinstance(exc, NeedsConnection):
                logger.info("batch of %d handed to the fallback: %s", len(batch), type(exc).__name__)
            self.fallbacks += len(batch)
            await asyncio.gather(*(self._settle_by_fallback(w, f) for w, f in batch))
            return
        if self._closed:
            _finish(conn)
        else:
            self._idle.append(conn)
        self.batches += 1
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)

    async def _settle_by_fallback(self, work: W, future: asyncio.Future[R]) -> None:
        try:
            result = await self._fallback(work)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    async def _discard(self, conn: Any, *, keep: bool) -> None:
        """After a failed batch: roll back and keep ``conn`` if asked to and
        it is healthy, else close it."""
        if keep and not self._closed:
            with contextlib.suppress(Exception):
                await conn.rollback()
                self._idle.append(conn)
                return
        with contextlib.suppress(Exception):
            await conn.close()

    def close_now(self) -> None:
        """Close the idle connections without awaiting (the loop may be gone);
        one that a batch is using is closed when the batch is done."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            _finish(conn)


def _finish(conn: Any) -> None:
    """Close a psycopg connection at once, without the event loop."""
    if conn is None:
        return
    with contextlib.suppress(Exception):
        conn.pgconn.finish()
