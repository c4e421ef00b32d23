"""Group commit: many writers, one transaction, one flush to disk.

An ACK must mean "on disk", and a disk flush costs milliseconds: one commit
per message caps a gateway at a few hundred messages per second whatever
the CPU. Writers hand their work to one writer thread per store; while it
commits a batch, new work queues up, and the next batch takes all of it.
Work that knows how to run together (messages to store: ``work.batch``)
runs as one piece, in a few statements for the whole batch.

The usual batch has nothing wrong with it, so it runs plainly, with no
savepoint: on a database across a socket every statement is a round trip,
and round trips, not the database's work, set the pace of the one writer
thread. Only when something in it fails is the transaction rolled back and
the batch run again with a SAVEPOINT around each piece (every piece of a
failed batched group alone), so one failing message rolls back alone.
Nobody is answered before the commit that holds their work: a thread that
calls :meth:`GroupCommitter.run` waits for it; an event loop hands its work
over with :meth:`GroupCommitter.submit` and is called back.

The writer thread keeps its connection from one batch to the next (no pool
checkout, no liveness probe per batch); after a failure it hands it back
and takes a fresh one, which the pool checks.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine

__all__ = ["GroupCommitter"]

logger = logging.getLogger(__name__)

MAX_BATCH = 64


@dataclass(slots=True)
class _Job:
    work: Callable[[Connection], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    ran: bool = False  # done as part of a batch
    notify: Callable[["_Job"], None] | None = None  # called once done (from the writer thread)


class GroupCommitter:
    def __init__(self, engine: Engine, lock_path: str | None = None, *, writers: int = 1) -> None:
        """``lock_path``: a file locked around each transaction, so that
        writer processes on one SQLite file queue in the kernel (woken at
        once) instead of in SQLite's busy handler (which sleeps and polls).
        ``writers``: writer threads, each with its own connection (a lock
        file serialises them anyway: one is enough then)."""
        self.engine = engine
        self.writers = writers
        self._lock_fd: int | None = None
        if lock_path:
            import os

            self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._local = threading.local()  # each writer thread's connection, kept between batches

    def _ensure_thread(self) -> None:
        if len(self._threads) == self.writers and all(t.is_alive() for t in self._threads):
            return
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self.writers:
                thread = threading.Thread(target=self._run, name="gateway-group-commit", daemon=True)
                thread.start()
                self._threads.append(thread)

    @property
    def _conn(self) -> Connection | None:
        return getattr(self._local, "conn", None)

    @_conn.setter
    def _conn(self, conn: Connection | None) -> None:
        self._local.conn = conn

    def run(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work(conn)`` inside the next committed batch; return its
        result once committed, or raise its error (or the commit's)."""
        job = _Job(work)
        self._ensure_thread()
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def submit(self, work: Callable[[Connection], Any], notify: Callable[[_Job], None]) -> None:
        """Queue ``work`` for the next batch without waiting: once it is
        committed (or failed) ``notify(job)`` is called from the writer
        thread, with ``job.result`` or ``job.error`` set. For event loops:
        ``notify`` should hand over with ``loop.call_soon_threadsafe``."""
        self._ensure_thread()
        self._queue.put(_Job(work, notify=notify))

    def close(self) -> None:
        alive = [t for t in self._threads if t.is_alive()]
        for _ in alive:
            self._queue.put(None)
        for thread in alive:
            thread.join(10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._drop_connection()
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._commit(batch)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writers' file lock (no writer process commits meanwhile)."""
        if self._lock_fd is None:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _commit(self, batch: list[_Job]) -> None:
        try:
            with self.exclusive():
                self._commit_locked(batch)
        finally:
            for job in batch:
                job.done.set()
                if job.notify is not None:
                    try:
                        job.notify(job)
                    except Exception:  # noqa: BLE001 - e.g. its event loop closed meanwhile
                        logger.warning("could not hand a committed job back", exc_info=True)

    def _commit_locked(self, batch: list[_Job]) -> None:
        try:
            self._transaction(batch, careful=False)
            return
        except BaseException:  # noqa: BLE001 - run again, each piece in its own savepoint
            self._drop_connection()
            for job in batch:
                job.result, job.error, job.ran = None, None, False
        try:
            self._transaction(batch, careful=True)
        except BaseException as exc:  # noqa: BLE001 - the commit failed: nobody's work is stored
            self._drop_connection()
            for job in batch:
                if job.error is None:
                    job.error = exc

    def _transaction(self, batch: list[_Job], *, careful: bool) -> None:
        """Run ``batch`` in one committed transaction. Not ``careful``: no
        savepoints, any error propagates (and rolls everything back).
        ``careful``: each piece in a savepoint, errors handed to their job."""
        conn = self._conn if self._conn is not None else self.engine.connect()
        self._conn = conn
        with conn.begin():
            for jobs in _groups(batch).values():
                self._run_batched(conn, jobs, careful)
            for job in batch:
                if job.ran:
                    continue
                if not careful:
                    job.result = job.work(conn)
                    continue
                savepoint = conn.begin_nested()
                try:
                    job.result = job.work(conn)
                    savepoint.commit()
                except BaseException as exc:  # noqa: BLE001 - handed back to its writer
                    savepoint.rollback()
                    job.error = exc

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    @staticmethod
    def _run_batched(conn: Connection, jobs: list[_Job], careful: bool) -> None:
        """Work that can run as one (``work.batch(conn, works)``, e.g. many
        messages to store) runs so; ``careful``, in a savepoint and only for
        two or more pieces, and if that fails each piece runs alone after it,
        so one bad message fails alone."""
        if careful and len(jobs) < 2:
            return
        savepoint = conn.begin_nested() if careful else None
        try:
            results = jobs[0].work.batch(conn, [j.work for j in jobs])  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - retried one by one
            if savepoint is None:
                raise
            savepoint.rollback()
            return
        if savepoint is not None:
            savepoint.commit()
        for job, result in zip(jobs, results):
            job.result, job.ran = result, True


def _groups(batch: list[_Job]) -> dict[Any, list[_Job]]:
    """The jobs that can run together, by the function that runs them."""
    groups: dict[Any, list[_Job]] = {}
    for job in batch:
        many = getattr(job.work, "batch", None)
        if many is not None:
            groups.setdefault(getattr(many, "__func__", many), []).append(job)
    return groups
