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

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from ..fhir.jsonio import dumps, loads
from .groupcommit import GroupCommitter
from .indexing import index_rows
from .migrate import migrate
from .schema import ingestions, resources, search_index, versions

__all__ = ["Store", "IngestResult", "StoredEntry"]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    resource_type: str
    id: str
    version_id: int
    status: str  # "created" | "updated" | "unchanged"
    last_updated: str

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _content(res: dict[str, Any]) -> dict[str, Any]:
    """What counts as a change: everything but meta."""
    return {k: v for k, v in res.items() if k != "meta"}


def _without_meta_versioning(res: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (res.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    out = {k: v for k, v in res.items() if k != "meta"}
    if meta:
        out["meta"] = meta
    return out


class Store:
    """Resources, their versions and the ingestion log, behind one engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Two engines on one database: reads (deferred transactions, never
        # blocking a writer in WAL mode) and writes (on SQLite, BEGIN
        # IMMEDIATE, so writers queue instead of failing on a lock upgrade).
        self.engine: Engine = create_engine(url, future=True, **_engine_args(url))
        if url.startswith("sqlite"):
            _sqlite_setup(self.engine, immediate=False)
            self.write_engine: Engine = create_engine(url, future=True, **_engine_args(url))
            _sqlite_setup(self.write_engine, immediate=True)
        else:
            self.write_engine = self.engine
        migrate(self.write_engine)
        database = self.write_engine.url.database if url.startswith("sqlite") else None
        lock = f"{database}.writelock" if database and database != ":memory:" else None
        self._group = GroupCommitter(self.write_engine, lock)

    def close(self) -> None:
        self._group.close()
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()

    # ------------------------------------------------------------------ writing
    def ingest(self, resources_in: list[dict[str, Any]], *, ingestion_id: str, source_format: str,
               source: dict[str, str], outcome: dict[str, Any]) -> IngestResult:
        """Store one converted message in one transaction. The same
        ``ingestion_id`` twice stores nothing the second time and answers what
        the first time answered."""
        def work(conn: Connection) -> IngestResult:
            prior = conn.execute(
                select(ingestions.c.result).where(ingestions.c.id == ingestion_id)
            ).scalar_one_or_none()
            if prior is not None:
                return IngestResult.from_json(loads(prior))
            stamp = _now()
            entries = self._put_many(conn, resources_in, stamp)
            findings: list[dict[str, Any]] = []
            for res, entry in zip(resources_in, list(entries)):
                if res["resourceType"] == "Patient" and entry.status != "unchanged":
                    entries += self._link_same_person(conn, res["id"], stamp, findings)
            answer = {**outcome, "issue": [*outcome.get("issue", []), *findings]} if findings else outcome
            result = IngestResult(ingestion_id, False, entries, answer, stamp, source)
            conn.execute(ingestions.insert().values(
                id=ingestion_id, source_format=source_format,
                sender=source.get("sender", "")[:256],
                control_id=source.get("control_id", "")[:256],
                message_type=source.get("type", "")[:64],
                received_at=stamp, result=dumps(result.to_json()).decode()))
            return result

        return self._write(work)

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
            except (IntegrityError, OperationalError):
                if attempts >= 10:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * attempts)

    def _put(self, conn: Connection, res: dict[str, Any], stamp: str) -> StoredEntry:
        return self._put_many(conn, [res], stamp)[0]

    def _put_many(self, conn: Connection, batch: list[dict[str, Any]], stamp: str) -> list[StoredEntry]:
        """Write resources in a handful of statements whatever their number:
        one locking read of what exists, bulk inserts of new resources and
        versions, one delete and one bulk insert of index rows."""
        keys = sorted({(r["resourceType"], r["id"]) for r in batch})
        # No read locks: an update checks the version it read (optimistic
        # concurrency); a concurrent writer makes it fail and the work retries.
        existing = {
            (t, i): (v, c) for t, i, v, c in conn.execute(
                select(resources.c.resource_type, resources.c.id, resources.c.version_id,
                       resources.c.content)
                .where(keys_condition(resources, keys)))
        }
        entries: dict[tuple[str, str], StoredEntry] = {}
        new_rows: list[dict[str, Any]] = []
        version_rows: list[dict[str, Any]] = []
        indexed: list[dict[str, Any]] = []
        for res in batch:
            rtype, rid = res["resourceType"], res["id"]
            key = (rtype, rid)
            if key in entries:
                continue
            row = existing.get(key)
            if row is None:
                body = self._stamp(res, 1, stamp)
                text = dumps(body).decode()
                new_rows.append({"resource_type": rtype, "id": rid, "version_id": 1,
                                 "last_updated": stamp, "content": text})
                version_rows.append(new_rows[-1])
                indexed.append(body)
                entries[key] = StoredEntry(rtype, rid, 1, "created", stamp)
                continue
            version, content = row
            old = loads(content)
            merged = {**_without_meta_versioning(old), **_without_meta_versioning(res)}
            if _content(merged) == _content(old):
                # Only meta.source would change: the content is the same, so no
                # new version (the Provenance of the new message still points here).
                entries[key] = StoredEntry(rtype, rid, version, "unchanged", old["meta"]["lastUpdated"])
                continue
            new_version = version + 1
            body = self._stamp(merged, new_version, stamp)
            text = dumps(body).decode()
            updated = conn.execute(
                resources.update()
                .where(resources.c.resource_type == rtype, resources.c.id == rid,
                       resources.c.version_id == version)
                .values(version_id=new_version, last_updated=stamp, content=text))
            if updated.rowcount != 1:
                # another process wrote this resource first: roll back and retry
                raise OperationalError("concurrent update", None, Exception(f"{rtype}/{rid}"))
            version_rows.append({"resource_type": rtype, "id": rid, "version_id": new_version,
                                 "last_updated": stamp, "content": text})
            indexed.append(body)
            entries[key] = StoredEntry(rtype, rid, new_version, "updated", stamp)
        if new_rows:
            conn.execute(resources.insert(), new_rows)
        if version_rows:
            conn.execute(versions.insert(), version_rows)
        if indexed:
            changed = [(b["resourceType"], b["id"]) for b in indexed]
            conn.execute(delete(search_index).where(keys_condition(search_index, changed)))
            rows = [{"resource_type": b["resourceType"], "id": b["id"], **r}
                    for b in indexed for r in index_rows(b)]
            if rows:
                conn.execute(search_index.insert(), rows)
        return [entries[(r["resourceType"], r["id"])] for r in batch]

    def _link_same_person(self, conn: Connection, pid: str, stamp: str,
                          findings: list[dict[str, Any]]) -> list[StoredEntry]:
        """Patients from other sources that carry one of this Patient's
        identifiers (with a system) are the same person: both get a
        ``seealso`` link; nothing of either is overwritten. Conflicting
        demographics are reported."""
        me = self.read_in(conn, "Patient", pid)
        if me is None:
            return []
        idents = [(i.get("system"), str(i.get("value"))) for i in me.get("identifier", []) or []
                  if isinstance(i, dict) and i.get("system") and i.get("value") and i.get("use") != "old"]
        if not idents:
            return []
        from sqlalchemy import and_, or_

        others = conn.execute(select(search_index.c.id).distinct().where(
            search_index.c.resource_type == "Patient", search_index.c.param == "identifier",
            search_index.c.id != pid,
            or_(*[and_(search_index.c.system == sys_, search_index.c.code == val) for sys_, val in idents])
        )).scalars().all()
        changed: list[StoredEntry] = []
        for other_id in sorted(others):
            other = self.read_in(conn, "Patient", other_id)
            if other is None or other.get("active") is False:
                continue
            for a, b in ((me, other), (other, me)):
                link = {"other": {"reference": f"Patient/{b['id']}"}, "type": "seealso"}
                links = a.get("link", []) or []
                if not any((x.get("other") or {}).get("reference") == link["other"]["reference"] for x in links):
                    updated = {**a, "link": [*links, link]}
                    changed.append(self._put(conn, updated, stamp))
            for element in ("birthDate", "gender"):
                if me.get(element) and other.get(element) and me[element] != other[element]:
                    findings.append({
                        "severity": "warning", "code": "conflict",
                        "diagnostics": f"Patient/{pid} and Patient/{other_id} share an identifier but "
                                       f"differ in {element}: kept as two linked patients",
                        "expression": [f"Patient.{element}"]})
        return changed

    @staticmethod
    def read_in(conn: Connection, rtype: str, rid: str) -> dict[str, Any] | None:
        content = conn.execute(select(resources.c.content).where(
            resources.c.resource_type == rtype, resources.c.id == rid)).scalar_one_or_none()
        return loads(content) if content is not None else None

    @staticmethod
    def _index(conn: Connection, body: dict[str, Any]) -> None:
        rtype, rid = body["resourceType"], body["id"]
        conn.execute(delete(search_index).where(search_index.c.resource_type == rtype,
                                                search_index.c.id == rid))
        rows = [{"resource_type": rtype, "id": rid, **r} for r in index_rows(body)]
        if rows:
            conn.execute(search_index.insert(), rows)

    @staticmethod
    def _stamp(res: dict[str, Any], version: int, stamp: str) -> dict[str, Any]:
        meta = {"versionId": str(version), "lastUpdated": stamp,
                **{k: v for k, v in (res.get("meta") or {}).items()
                   if k not in ("versionId", "lastUpdated")}}
        body = {"resourceType": res["resourceType"], "id": res["id"], "meta": meta}
        body.update({k: v for k, v in res.items() if k not in ("resourceType", "id", "meta")})
        return body

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
        return self._write(lambda conn: self._put_many(conn, resources_in, _now()))  # type: ignore[no-any-return]

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


def _engine_args(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True}


def _sqlite_setup(engine: Engine, *, immediate: bool) -> None:
    """WAL for concurrent readers, FULL sync so that an ACK means the message
    is on disk, and BEGIN IMMEDIATE so that writers queue instead of failing
    on a lock upgrade."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
