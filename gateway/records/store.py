"""The record store: FHIR resources as JSON with versions, one transaction
per ingestion, idempotent by source digest.

SQLAlchemy Core over SQLite by default (a file in the gateway's home); any
SQLAlchemy URL (PostgreSQL) works the same way.

Update semantics follow HL7 v2: a field that a message does not value means
"no information", not "delete". So an incoming resource replaces the
top-level elements it carries and keeps the others from the stored version
(an ORU with a bare PID does not wipe the address an ADT gave). A resource
whose content does not change gets no new version.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from ..fhir.jsonio import dumps, loads
from .groupcommit import GroupCommitter
from .loopcommit import DeadlinePassed, LoopCommitter, NeedsConnection
from .migrate import migrate
from .schema import ingestions, resources, search_index, versions
from .sql import Sql
from .writer import Prepared, StoredEntry, Writer, prepare

__all__ = ["Store", "IngestResult", "StoredEntry"]


@dataclass(slots=True)
class IngestResult:
    ingestion_id: str
    replay: bool
    entries: list[StoredEntry]
    outcome: dict[str, Any]
    received_at: str
    source: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "ingestion_id": self.ingestion_id,
            "received_at": self.received_at,
            "source": self.source,
            "entries": [[e.resource_type, e.id, e.version_id, e.status, e.last_updated]
                        for e in self.entries],
            "outcome": self.outcome,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "IngestResult":
        return cls(data["ingestion_id"], True,
                   [StoredEntry(*e) for e in data["entries"]], data["outcome"],
                   data["received_at"], data.get("source", {}))


_ATTEMPTS = 10  # tries of a write before its error is the caller's
DEFAULT_DB_TIMEOUT = 30.0  # seconds a statement may run or wait (GATEWAY_DB_TIMEOUT)


def _last_try(attempts: int, exc: BaseException) -> bool:
    """Whether a write that failed with ``exc`` on try ``attempts`` is given
    up: after ``_ATTEMPTS`` tries, at once when the database's deadline
    passed (another try would wait as long again), and after the second
    when the connection was lost (one new connection is worth a try)."""
    return (attempts >= _ATTEMPTS or deadline_passed(exc)
            or (attempts >= 2 and connection_failed(exc)))


def _backoff(attempts: int) -> float:
    """Seconds to wait before try ``attempts + 1``: random, so that writers
    that collided do not collide again, and longer each time."""
    return random.uniform(0.01, 0.05) * attempts


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Complete ``future`` (on its loop) with a job's outcome, unless its
    waiter has gone (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _NoCursor:
    """The cursor of a batch committed on the event loop: a read beyond the
    batch's lookup would block the loop, so it sends the batch to the
    writer threads instead."""

    def execute(self, *_args: Any, **_kwargs: Any) -> None:
        raise NeedsConnection("a read beyond the batch's lookup")


_NO_CURSOR = _NoCursor()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _IngestWork:
    """One message to store; messages committed together are written as one
    batch (``batch``), each alone if the batch fails."""

    store: "Store"
    ingestion_id: str
    source_format: str
    source: dict[str, str]
    outcome: dict[str, Any]
    prepared: list[Prepared]

    def __call__(self, conn: Connection) -> IngestResult:
        return self.store._ingest_many(conn, [self])[0]

    def batch(self, conn: Connection, works: list[_IngestWork]) -> list[IngestResult]:
        return self.store._ingest_many(conn, works)


class Store:
    """Resources, their versions and the ingestion log, behind one engine."""

    def __init__(self, url: str, *, db_timeout: float = DEFAULT_DB_TIMEOUT) -> None:
        """``db_timeout``: the longest wait, in seconds, for one statement
        (a lock another session holds, a server that stalls); then the
        statement fails, its transaction is rolled back, and the caller is
        told the database is unavailable (HTTP 503, MLLP AE) rather than
        kept waiting. 0: no limit. Migrations have none."""
        self.url = url
        self.db_timeout = db_timeout
        # Two engines on one database: reads (deferred transactions, never
        # blocking a writer in WAL mode) and writes (on SQLite, BEGIN
        # IMMEDIATE, so writers queue instead of failing on a lock upgrade).
        self.engine: Engine = create_engine(url, future=True, **_engine_args(url, db_timeout))
        if url.startswith("sqlite"):
            _sqlite_setup(self.engine, immediate=False, db_timeout=db_timeout)
            self.write_engine: Engine = create_engine(url, future=True, **_engine_args(url, db_timeout))
            _sqlite_setup(self.write_engine, immediate=True, db_timeout=db_timeout)
        else:
            self.write_engine = self.engine
        migrate(self.write_engine)
        database = self.write_engine.url.database if url.startswith("sqlite") else None
        lock = f"{database}.writelock" if database and database != ":memory:" else None
        # Writer threads: every write from blocking callers, and on
        # PostgreSQL the batches an event loop hands over (loopcommit.py).
        # PostgreSQL gets two, so that one batch can be read and worked out
        # while the other waits for the database; SQLite has one writer at a
        # time anyway
        self._group = GroupCommitter(self.write_engine, lock, writers=1 if url.startswith("sqlite") else 2)
        self._sql = Sql(self.write_engine.dialect.name, self.write_engine.dialect.dbapi)
        # what a retry may cure: another writer got there first, a busy SQLite
        self._retryable: tuple[type[BaseException], ...] = (
            IntegrityError, OperationalError, *self._sql.retryable)
        # PostgreSQL: an event loop's messages are committed by the loop
        # itself (loopcommit.py), one committer per loop, one batch at a time
        # (larger batches: fewer disk flushes; measured faster than two)
        self._loop_committers: dict[asyncio.AbstractEventLoop, LoopCommitter[_IngestWork, IngestResult]] = {}

    def close(self) -> None:
        for committer in self._loop_committers.values():
            committer.close_now()
        self._loop_committers.clear()
        self._group.close()
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()

    # ------------------------------------------------------------------ writing
    def ingest(self, resources_in: list[dict[str, Any]], *, ingestion_id: str, source_format: str,
               source: dict[str, str], outcome: dict[str, Any]) -> IngestResult:
        """Store one converted message in one transaction. The same
        ``ingestion_id`` twice stores nothing the second time and answers what
        the first time answered. Messages arriving together are written in
        one transaction (group commit) with the result of storing them one
        after the other."""
        work = _IngestWork(self, ingestion_id, source_format, source, outcome, prepare(resources_in))
        return self._write(work)  # type: ignore[no-any-return]

    async def ingest_async(self, resources_in: list[dict[str, Any]], *, ingestion_id: str,
                           source_format: str, source: dict[str, str],
                           outcome: dict[str, Any]) -> IngestResult:
        """:meth:`ingest` for an event loop: the loop goes on serving while
        the message waits for its group commit (no thread blocks on it)."""
        work = _IngestWork(self, ingestion_id, source_format, source, outcome, prepare(resources_in))
        committer = self._loop_committer()
        attempts = 0
        while True:
            attempts += 1
            try:
                if committer is not None:
                    return await committer.run(work)
                return await self._submit(work)
            except self._retryable as exc:
                if _last_try(attempts, exc):
                    raise
                await asyncio.sleep(_backoff(attempts))

    def _submit(self, work: _IngestWork) -> asyncio.Future[IngestResult]:
        """Hand ``work`` to the writer threads; a future of this loop for its result."""
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[IngestResult] = loop.create_future()

        def notify(job: Any) -> None:
            loop.call_soon_threadsafe(_settle, committed, job.result, job.error)

        self._group.submit(work, notify)
        return committed

    def _loop_committer(self) -> LoopCommitter[_IngestWork, IngestResult] | None:
        """The running loop's committer (PostgreSQL), made on first use."""
        if not self._sql.postgres:
            return None
        loop = asyncio.get_running_loop()
        committer = self._loop_committers.get(loop)
        if committer is None:
            for gone in [lp for lp in self._loop_committers if lp.is_closed()]:
                self._loop_committers.pop(gone).close_now()
            # the server cancels a statement at the deadline; a batch the
            # server does not answer at all is given up a little later
            committer = self._loop_committers[loop] = LoopCommitter(
                self._connect_async, self._commit_on_loop, self._submit, final=deadline_passed,
                deadline=2 * self.db_timeout + 1 if self.db_timeout > 0 else None)
        return committer

    async def _connect_async(self) -> Any:
        """A psycopg async connection to the store's database."""
        import psycopg

        url = self.write_engine.url
        params: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
        params.update(url.query)
        for key, value in _connection_deadlines(self.db_timeout).items():
            params.setdefault(key, value)
        return await psycopg.AsyncConnection.connect(**params)

    async def _commit_on_loop(self, conn: Any, works: list[_IngestWork]) -> list[IngestResult]:
        """:meth:`_ingest_many` on an async connection, and commit. A batch
        that needs more than its one lookup raises :class:`NeedsConnection`."""
        writer = Writer(self._sql, _NO_CURSOR)
        wanted, values = writer.wanted([p for w in works for p in w.prepared])
        cur = conn.cursor()
        found = await self._sql.look_up_async(cur, [w.ingestion_id for w in works], wanted, values)
        results = self._apply(writer, works, writer.accept(wanted, values, found))
        await self._sql.write_async(cur, writer.changes())
        await conn.commit()
        return results

    def _ingest_many(self, conn: Connection, works: list[_IngestWork]) -> list[IngestResult]:
        cur = self._sql.cursor(conn)
        writer = Writer(self._sql, cur)
        # what the batch's resources hold now, and who else carries the
        # identifiers of its Patients: one read
        prior = writer.look_up([w.ingestion_id for w in works], [p for w in works for p in w.prepared])
        results = self._apply(writer, works, prior)
        writer.flush()
        return results

    def _apply(self, writer: Writer, works: list[_IngestWork], prior: dict[str, str]) -> list[IngestResult]:
        """Store ``works`` one after the other in ``writer`` (not flushed);
        ``prior``: the stored answers of those already ingested."""
        done: dict[str, IngestResult] = {}
        results = []
        for w in works:
            if w.ingestion_id in prior:
                results.append(IngestResult.from_json(loads(prior[w.ingestion_id])))
                continue
            if w.ingestion_id in done:  # the same message twice in one transaction
                results.append(IngestResult.from_json(done[w.ingestion_id].to_json()))
                continue
            when = _now()
            entries = writer.put(w.prepared, when)
            findings: list[dict[str, Any]] = []
            for entry in dict.fromkeys(entries):
                if entry.resource_type == "Patient" and entry.status != "unchanged":
                    entries += self._link_same_person(writer, entry.id, when, findings)
            answer = ({**w.outcome, "issue": [*w.outcome.get("issue", []), *findings]}
                      if findings else w.outcome)
            result = IngestResult(w.ingestion_id, False, entries, answer, when, w.source)
            writer.log_ingestion((
                w.ingestion_id, w.source_format, w.source.get("sender", "")[:256],
                w.source.get("control_id", "")[:256], w.source.get("type", "")[:64], when,
                dumps(result.to_json()).decode()))
            done[w.ingestion_id] = result
            results.append(result)
        return results

    def _write(self, work: Any) -> Any:
        """Run ``work(conn)`` in a committed transaction (group commit), with
        retries: a concurrent writer that stored the same message or resource
        first (or a busy SQLite) rolls the work back, and a retry then finds
        the stored answer."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._group.run(work)
            except self._retryable as exc:
                if _last_try(attempts, exc):
                    raise
                time.sleep(_backoff(attempts))

    @staticmethod
    def _link_same_person(writer: Writer, pid: str, when: str,
                          findings: list[dict[str, Any]]) -> list[StoredEntry]:
        """Patients from other sources that carry one of this Patient's
        identifiers (with a system) are the same person: both get a
        ``seealso`` link; nothing of either is overwritten. Conflicting
        demographics are reported."""
        me = writer.read("Patient", pid)
        if me is None:
            return []
        changed: list[StoredEntry] = []
        for other_id in writer.same_person(me):
            other = writer.read("Patient", other_id)
            if other is None or other.get("active") is False:
                continue
            for a, b in ((me, other), (other, me)):
                reference = f"Patient/{b['id']}"
                link: dict[str, Any] = {"other": {"reference": reference}, "type": "seealso"}
                links = a.get("link", []) or []
                if not any((x.get("other") or {}).get("reference") == reference for x in links):
                    changed += writer.put([Prepared({**a, "link": [*links, link]}, None)], when)
            me = writer.read("Patient", pid) or me
            for element in ("birthDate", "gender"):
                if me.get(element) and other.get(element) and me[element] != other[element]:
                    findings.append({
                        "severity": "warning", "code": "conflict",
                        "diagnostics": f"Patient/{pid} and Patient/{other_id} share an identifier but "
                                       f"differ in {element}: kept as two linked patients",
                        "expression": [f"Patient.{element}"]})
        return changed

    # ------------------------------------------------------------------ reading
    def read(self, rtype: str, rid: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            content = conn.execute(
                select(resources.c.content)
                .where(resources.c.resource_type == rtype, resources.c.id == rid)
            ).scalar_one_or_none()
        return loads(content) if content is not None else None

    def vread(self, rtype: str, rid: str, version: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            content = conn.execute(
                select(versions.c.content).where(
                    versions.c.resource_type == rtype, versions.c.id == rid,
                    versions.c.version_id == version)
            ).scalar_one_or_none()
        return loads(content) if content is not None else None

    def history(self, rtype: str, rid: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(versions.c.content)
                .where(versions.c.resource_type == rtype, versions.c.id == rid)
                .order_by(versions.c.version_id.desc())
            ).scalars().all()
        return [loads(r) for r in rows]

    def write(self, resources_in: list[dict[str, Any]]) -> list[StoredEntry]:
        """Store resources outside any ingestion (audit events, citizen
        entries), in one transaction."""
        prepared = prepare(resources_in)

        def work(conn: Connection) -> list[StoredEntry]:
            writer = Writer(self._sql, self._sql.cursor(conn))
            entries = writer.put(prepared, _now())
            writer.flush()
            return entries

        return self._write(work)  # type: ignore[no-any-return]

    def find(self, rtype: str, criteria: list[Any], patients: set[str] | None, *, count: int,
             offset: int, total: bool = True) -> tuple[list[dict[str, Any]], int | None]:
        """Resources matching FHIR search criteria (see search.py), newest first."""
        from sqlalchemy import func

        from .search import build_query

        query = build_query(rtype, criteria, patients)
        with self.engine.connect() as conn:
            n = None
            if total:
                n = int(conn.execute(select(func.count()).select_from(query.subquery())).scalar_one())
            rows = conn.execute(
                query.order_by(resources.c.last_updated.desc(), resources.c.id)
                .limit(count).offset(offset)).all() if count > 0 else []
        return [loads(r.content) for r in rows], n

    def read_refs(self, refs: list[str]) -> list[dict[str, Any]]:
        """The current versions of ``Type/id`` references that exist."""
        pairs = sorted({tuple(r.split("/", 1)) for r in refs if r.count("/") == 1})
        if not pairs:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(select(resources.c.content).where(
                keys_condition(resources, pairs))).scalars().all()  # type: ignore[arg-type]
        return [loads(r) for r in rows]

    def referring(self, rtype: str, param: str, refs: list[str]) -> list[dict[str, Any]]:
        """Resources of ``rtype`` whose ``param`` reference is one of ``refs``
        (e.g. the Provenance of a set of resources)."""
        if not refs:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(resources.c.content).where(
                    resources.c.resource_type == rtype,
                    resources.c.id.in_(select(search_index.c.id).where(
                        search_index.c.resource_type == rtype, search_index.c.param == param,
                        search_index.c.ref.in_(refs))))).scalars().all()
        return [loads(r) for r in rows]

    def compartment(self, patients: set[str]) -> list[dict[str, Any]]:
        """Every current resource that belongs to one of these patients."""
        refs = [f"Patient/{p}" for p in patients]
        idx = search_index.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(resources.c.content).distinct()
                .select_from(search_index.join(resources, (resources.c.resource_type == idx.resource_type)
                                               & (resources.c.id == idx.id)))
                .where(idx.param == "patient", idx.ref.in_(refs), idx.resource_type != "AuditEvent")
            ).scalars().all()
        return [loads(r) for r in rows]

    def linked_patients(self, pid: str) -> set[str]:
        """``pid`` and every Patient linked to it through Patient.link, in
        either direction (merges, same person from two sources)."""
        seen = {pid}
        frontier = [pid]
        with self.engine.connect() as conn:
            while frontier:
                refs = [f"Patient/{p}" for p in frontier]
                out = conn.execute(select(search_index.c.ref).where(
                    search_index.c.resource_type == "Patient", search_index.c.param == "link",
                    search_index.c.id.in_(frontier))).scalars().all()
                back = conn.execute(select(search_index.c.id).where(
                    search_index.c.resource_type == "Patient", search_index.c.param == "link",
                    search_index.c.ref.in_(refs))).scalars().all()
                nxt = {r.split("/", 1)[1] for r in out if r and r.startswith("Patient/")} | set(back)
                frontier = [p for p in nxt if p not in seen]
                seen.update(frontier)
                if len(seen) > 100:
                    break
        return seen

    def search(self, rtype: str, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(resources.c.content).where(resources.c.resource_type == rtype)
                .order_by(resources.c.last_updated.desc(), resources.c.id)
                .limit(limit).offset(offset)
            ).scalars().all()
        return [loads(r) for r in rows]

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(resources.c.resource_type, func.count()).group_by(resources.c.resource_type)
            ).all()
        return {t: n for t, n in rows}

    def ingestion_count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ingestions)).scalar_one())


def keys_condition(table: Any, keys: list[tuple[str, str]]) -> Any:
    """``(resource_type, id)`` among ``keys``, written as one ``type = ? AND
    id IN (...)`` per type: SQLite plans row-value IN lists as full scans."""
    from sqlalchemy import and_, or_

    by_type: dict[str, list[str]] = {}
    for t, i in keys:
        by_type.setdefault(t, []).append(i)
    return or_(*[and_(table.c.resource_type == t, table.c.id.in_(ids)) for t, ids in by_type.items()])


def _engine_args(url: str, db_timeout: float) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": _sqlite_wait(db_timeout), "check_same_thread": False}}
    args: dict[str, Any] = {"pool_pre_ping": True}
    if db_timeout > 0:
        args["pool_timeout"] = db_timeout  # a connection of the pool: awaited no longer than a statement
    # what the URL sets itself stays as it is
    args["connect_args"] = {key: value for key, value in _connection_deadlines(db_timeout).items()
                            if f"{key}=" not in url}
    return args


def _connection_deadlines(db_timeout: float) -> dict[str, Any]:
    """libpq parameters that bound every wait on the server to about
    ``db_timeout`` seconds:

    * ``options``: the server cancels a statement that runs (or waits for a
      lock) longer, and rolls its transaction back;
    * ``connect_timeout``: a server that does not take the connection;
    * ``tcp_user_timeout`` and keepalives: a server that no longer answers
      at all (its host down, the network between cut) cannot cancel
      anything, and without these a connection waits for its answer as
      long as the kernel keeps the connection, hours. Data it does not
      acknowledge within the deadline, or keepalive probes unanswered from
      a third of it on, close the connection; the caller is told the
      database is unavailable, and the pool connects anew.
    0: no deadline (connecting still gives up after 10 s)."""
    if db_timeout <= 0:
        return {"connect_timeout": 10}
    return {"options": f"-c statement_timeout={max(1, round(db_timeout * 1000))}",
            "connect_timeout": max(2, min(10, round(db_timeout))),
            "keepalives": 1,
            "keepalives_idle": max(1, round(db_timeout / 3)),
            "keepalives_interval": max(1, round(db_timeout / 6)),
            "keepalives_count": 3,
            "tcp_user_timeout": max(1000, round(db_timeout * 1000))}


def _sqlite_wait(db_timeout: float) -> float:
    """How long a SQLite connection waits for another's write lock."""
    return db_timeout if db_timeout > 0 else 3_600.0


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own error under SQLAlchemy's wrapper (or ``exc`` itself)."""
    return getattr(exc, "orig", None) or exc


def deadline_passed(exc: BaseException) -> bool:
    """Did the database cancel a statement at the deadline (PostgreSQL's
    ``statement_timeout``)? Trying again would only wait as long again."""
    return getattr(_driver_error(exc), "sqlstate", None) == "57014"


def connection_failed(exc: BaseException) -> bool:
    """Was the connection lost or not made (the server down or cut off)?
    One more try, on a new connection, cures a connection the server closed
    while it sat in the pool; more would each wait for the network again."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = _driver_error(exc)
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        return state.startswith("08")
    return _psycopg_operational(orig)


# SQLSTATE classes of a database that cannot answer now: connection
# exceptions, insufficient resources, operator intervention (a statement
# cancelled at the deadline, a shutdown), lock not available, and a
# transaction rolled back as a deadlock or serialization victim
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_STATES = frozenset({"55P03", "40001", "40P01"})


def database_unavailable(exc: BaseException) -> bool:
    """Is ``exc`` the database being unreachable, overloaded or past its
    deadline, something a later try may not meet, rather than a bug? Its
    transaction was rolled back: nothing of it is stored."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, (PoolTimeout, DeadlinePassed)):
        return True  # no connection of the pool came free in time; no answer in time
    if connection_failed(exc):
        return True  # no server answered, or the connection to it was lost
    orig = _driver_error(exc)
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES
    message = str(orig)
    return type(orig).__name__ == "OperationalError" and (
        "database is locked" in message or "database is busy" in message)


def _psycopg_operational(exc: BaseException) -> bool:
    """A psycopg OperationalError or one of its kinds (ConnectionTimeout…)."""
    try:
        import psycopg
    except ImportError:  # no PostgreSQL driver installed: not one of its errors
        return False
    return isinstance(exc, psycopg.OperationalError)


def _sqlite_setup(engine: Engine, *, immediate: bool, db_timeout: float) -> None:
    """WAL for concurrent readers, FULL sync so that an ACK means the message
    is on disk, and BEGIN IMMEDIATE so that writers queue instead of failing
    on a lock upgrade."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={round(_sqlite_wait(db_timeout) * 1000)}")
        if immediate:  # the writer: index pages stay cached between batches
            cur.execute("PRAGMA cache_size=-32768")
        # Checkpoint the log into the database every 32 MB instead of 4 MB:
        # pages written many times are copied once (a third less write work
        # per message under load); the log is that much larger on disk.
        cur.execute("PRAGMA wal_autocheckpoint=8000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
