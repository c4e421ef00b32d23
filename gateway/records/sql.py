"""The write path's SQL, as driver statements.

Storing a batch of messages runs a handful of statements; built as
SQLAlchemy expressions each one costs far more Python time than SQLite
takes to run it. So the write path sends plain SQL strings, written once
per dialect (placeholders ``?`` for sqlite3, ``%s`` for psycopg), straight
to the DBAPI cursor of the transaction SQLAlchemy opened. Statements whose
shape depends on the number of keys are built once per shape and cached.
Reads and the rest of the gateway keep using SQLAlchemy Core
(``schema.py``).

On PostgreSQL every statement is a round trip to another process, and the
writer thread waits for each (and then for the interpreter lock): a batch
is read in one statement (:meth:`Sql.look_up`, after locking its identifier
values) and written in one round trip (:meth:`Sql.write`), whatever its
size. Lists go as JSON or as binary arrays: psycopg's text array adapter
escapes element by element in Python.

DBAPI errors are not wrapped by SQLAlchemy here: :data:`RETRYABLE` names
them for the callers that retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from sqlalchemy.engine import Connection

from .indexing import INDEX_COLUMNS

__all__ = ["Sql", "Conflict", "COLUMNS", "Found", "Changes"]

# The tables the write path inserts into, and their columns in row order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "resource": ("resource_type", "id", "version_id", "last_updated", "content"),
    "resource_version": ("resource_type", "id", "version_id", "last_updated", "content"),
    "search_index": ("resource_type", "id", *INDEX_COLUMNS),
    "ingestion": ("id", "source_format", "sender", "control_id", "message_type", "received_at", "result"),
}


# Column types, for PostgreSQL arrays
_INTEGER_COLUMNS = {"version_id"}
# Columns holding a whole JSON document: sent apart from the small columns,
# so that the database does not parse them as JSON (inside a JSON array they
# are strings to unescape; apart they are copied as they are)
_DOCUMENT_COLUMNS = {"content", "result"}


@dataclass(slots=True)
class Found:
    """What :meth:`Sql.look_up` read."""

    ingestions: dict[str, str]  # ingestion id -> the stored answer (JSON)
    resources: list[tuple[str, str, int, str]]  # (type, id, version_id, content)
    patients: list[tuple[str, str | None, str]]  # (patient id, system, identifier value)


@dataclass(slots=True)
class Changes:
    """What :meth:`Sql.write` writes: ``updates`` are (version_id,
    last_updated, content, type, id, stored version_id); ``rows`` new rows by
    table, values in the order of :data:`COLUMNS` (the index rows of updated
    resources replace their old ones)."""

    updates: list[tuple[int, str, str, str, str, int]] = field(default_factory=list)
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    @property
    def reindex(self) -> list[tuple[str, str]]:
        """The keys of the updated resources, whose index rows are replaced."""
        return [(rtype, rid) for _, _, _, rtype, rid, _ in self.updates]


class Conflict(Exception):
    """Another writer changed a resource between our read and our write; the
    work is rolled back and retried."""


class Sql:
    """Statements for one dialect, run on a connection's DBAPI cursor."""

    def __init__(self, dialect: str, dbapi: Any) -> None:
        self.p = p = "?" if dialect == "sqlite" else "%s"
        self.retryable: tuple[type[BaseException], ...] = (
            Conflict, dbapi.IntegrityError, dbapi.OperationalError)
        # PostgreSQL: a batch's rows as JSON and its keys as arrays (below);
        # SQLite: executemany and IN lists
        self.postgres = dialect == "postgresql"
        self.update_resource = (
            f"UPDATE resource SET version_id = {p}, last_updated = {p}, content = {p} "
            f"WHERE resource_type = {p} AND id = {p} AND version_id = {p}")

    def look_up(self, cur: Any, ingestion_ids: Sequence[str], keys: Sequence[tuple[str, str]],
                identifier_values: Iterable[str]) -> Found:
        """The stored answers of ``ingestion_ids``, the stored resources among
        ``keys`` and the Patients indexed with one of ``identifier_values``:
        one statement on PostgreSQL (after locking the identifier values for
        the transaction), three on SQLite (where one writer at a time holds
        the database)."""
        ids, values = sorted(set(ingestion_ids)), sorted(set(identifier_values))
        if not self.postgres:
            cur.execute(_select_ingestions(self.p, len(ids)), ids)
            return Found(dict(cur.fetchall()), self.existing(cur, keys) if keys else [],
                         self.patients_with_identifiers(cur, values) if values else [])
        if values:
            # Batches committing side by side (writer threads, processes)
            # take turns on an identifier value: the later one then sees the
            # earlier one's Patient, so two sources' records of one person
            # are linked even when they arrive at the same moment.
            cur.execute(_PG_LOCK_IDENTIFIERS, (values,))
        cur.execute(_PG_LOOK_UP, (ids, *_key_arrays(keys), values), prepare=False)
        return _found(cur.fetchall())

    async def look_up_async(self, cur: Any, ingestion_ids: Sequence[str], keys: Sequence[tuple[str, str]],
                            identifier_values: Iterable[str]) -> Found:
        """:meth:`look_up` on a psycopg async cursor (PostgreSQL)."""
        ids, values = sorted(set(ingestion_ids)), sorted(set(identifier_values))
        if values:
            await cur.execute(_PG_LOCK_IDENTIFIERS, (values,))
        await cur.execute(_PG_LOOK_UP, (ids, *_key_arrays(keys), values), prepare=False)
        return _found(await cur.fetchall())

    def write(self, cur: Any, changes: Changes) -> None:
        """Write ``changes``: one round trip on PostgreSQL; on SQLite one per
        update and one executemany (a loop in C) per table. Raises
        :class:`Conflict` when a stored resource is no longer at the version
        read (another writer changed it)."""
        if self.postgres:
            inserts = _pg_inserts(changes)
            if not changes.updates:
                cur.execute(_PG_INSERT, inserts, prepare=True)
                return
            # two statements, one round trip (pipeline mode)
            counting = cur.connection.cursor()
            with cur.connection.pipeline():
                counting.execute(_PG_UPDATE, _pg_updates(changes), prepare=False)
                cur.execute(_PG_INSERT, inserts, prepare=True)
            _check_updated(changes, counting.fetchone())
            return
        for update in changes.updates:
            cur.execute(self.update_resource, update)
            if cur.rowcount != 1:
                raise Conflict(f"{update[3]}/{update[4]} changed by another writer")
        for table in ("resource", "resource_version"):
            self._insert(cur, table, changes.rows.get(table, ()))
        if changes.reindex:
            shape, params = _grouped(changes.reindex)
            cur.execute(_delete_index(self.p, shape), params)
        for table in ("search_index", "ingestion"):
            self._insert(cur, table, changes.rows.get(table, ()))

    async def write_async(self, cur: Any, changes: Changes) -> None:
        """:meth:`write` on a psycopg async cursor (PostgreSQL)."""
        inserts = _pg_inserts(changes)
        if not changes.updates:
            await cur.execute(_PG_INSERT, inserts, prepare=True)
            return
        counting = cur.connection.cursor()
        async with cur.connection.pipeline():
            await counting.execute(_PG_UPDATE, _pg_updates(changes), prepare=False)
            await cur.execute(_PG_INSERT, inserts, prepare=True)
        _check_updated(changes, await counting.fetchone())

    def _insert(self, cur: Any, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            columns = COLUMNS[table]
            cur.executemany(_insert(self.p, table, ", ".join(columns), len(columns)), rows)

    @staticmethod
    def cursor(conn: Connection) -> Any:
        """The DBAPI cursor of ``conn``'s current transaction."""
        return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def existing(self, cur: Any, keys: Sequence[tuple[str, str]]) -> list[tuple[str, str, int, str]]:
        """``(type, id, version_id, content)`` of the stored resources among ``keys``."""
        if self.postgres:
            cur.execute(_PG_EXISTING, _key_arrays(keys), prepare=False)
        else:
            shape, params = _grouped(keys)
            cur.execute(_select_existing(self.p, shape), params)
        return cur.fetchall()  # type: ignore[no-any-return]

    def patients_with_identifiers(self, cur: Any, values: Iterable[str]) -> list[tuple[str, str | None, str]]:
        """``(patient id, system, value)`` of the Patients indexed with one of these identifier values."""
        values = sorted(set(values))
        if self.postgres:
            cur.execute(_PG_PATIENTS_BY_IDENTIFIER, (values,), prepare=False)
        else:
            cur.execute(_patients_by_identifier(self.p, len(values)), values)
        return cur.fetchall()  # type: ignore[no-any-return]


# PostgreSQL takes a batch's keys as arrays: one statement whatever the batch
# size, run unprepared (``prepare=False``) so that it is planned for the table
# as it is now. Prepared per shape, OR-ed IN lists kept the generic plan made
# while the tables were still empty (a scan), and the lookups grew with the
# table: half of the database's time per message on a fresh database.
_PG_KEYS = "unnest(%b::text[], %b::text[]) AS k(resource_type, id)"
_PG_EXISTING_FROM = (
    _PG_KEYS + " JOIN resource r ON r.resource_type = k.resource_type AND r.id = k.id")
_PG_EXISTING = "SELECT r.resource_type, r.id, r.version_id, r.content FROM " + _PG_EXISTING_FROM
# One index descent per value, whatever the statistics say: the subquery is
# run for each value (LATERAL; OFFSET 0 keeps it from being merged into a
# join the planner may reorder). Written as ``code = ANY(%s)`` or as a plain
# join, the planner, without statistics yet (a new database), filtered every
# Patient identifier row instead.
_PG_PATIENTS_FROM = (
    "unnest(%b::text[]) AS v(code), LATERAL ("
    "SELECT s.id, s.system, s.code FROM search_index s WHERE s.resource_type = 'Patient' "
    "AND s.param = 'identifier' AND s.code = v.code OFFSET 0) AS p")
_PG_PATIENTS_BY_IDENTIFIER = "SELECT p.id, p.system, p.code FROM " + _PG_PATIENTS_FROM


def _pg_rows(table: str) -> str:
    """``INSERT`` of ``table``'s new rows from a JSON array of arrays, and
    its document column (if it has one) from an array of its own."""
    columns = COLUMNS[table]
    documents = columns[-1] in _DOCUMENT_COLUMNS
    fields = [f"(r->>{n})::int" if c in _INTEGER_COLUMNS else f"r->>{n}"
              for n, c in enumerate(columns[:-1] if documents else columns)]
    source = "jsonb_array_elements(%s::jsonb) r"
    if documents:
        fields.append("d")
        source = "ROWS FROM (jsonb_array_elements(%s::jsonb), unnest(%b::text[])) AS x(r, d)"
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(fields)} FROM {source}"


def _pg_params(table: str, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The parameters of ``_pg_rows(table)`` for ``rows``."""
    if COLUMNS[table][-1] in _DOCUMENT_COLUMNS:
        return [_json([row[:-1] for row in rows]), [row[-1] for row in rows]]
    return [_json(rows)]


# Transaction locks on identifier values (sorted, so that two batches take
# them in one order), in a class of their own
_PG_LOCK_IDENTIFIERS = (
    "SELECT count(pg_advisory_xact_lock(7283, hashtext(v))) FROM unnest(%b::text[]) AS v")
# A batch's lookups in one statement: rows tagged i (an ingestion's stored
# answer), r (a stored resource), p (a Patient indexed with an identifier value)
_PG_LOOK_UP = (
    "SELECT 'i', id, NULL, NULL::int, result FROM ingestion WHERE id = ANY(%b::text[]) "
    "UNION ALL SELECT 'r', r.resource_type, r.id, r.version_id, r.content FROM " + _PG_EXISTING_FROM +
    " UNION ALL SELECT 'p', p.id, p.system, NULL, p.code FROM " + _PG_PATIENTS_FROM)
# A batch's writes in two statements, each part's rows as one JSON array of
# arrays (one parameter a table: psycopg's array adapters work element by
# element in Python; orjson and the database's JSON reader work in C).
# The updates: version-checked (counted: fewer than sent means another
# writer got there first), and the index rows of updated resources deleted.
# Unprepared, like the lookups, since they join the stored tables: a plan
# made while the tables were empty (scans) would be kept. The parts of one
# statement see the same snapshot, so the delete takes only the index rows
# that were there before it.
_PG_UPDATE = (
    "WITH u AS (UPDATE resource r SET version_id = (n->>0)::int, last_updated = n->>1, content = n->>2 "
    "FROM jsonb_array_elements(%s::jsonb) n "
    "WHERE r.resource_type = n->>3 AND r.id = n->>4 AND r.version_id = (n->>5)::int RETURNING 1), "
    "d AS (DELETE FROM search_index s USING jsonb_array_elements(%s::jsonb) k "
    "WHERE s.resource_type = k->>0 AND s.id = k->>1) "
    "SELECT count(*) FROM u")
# The new rows of every table: prepared (their plan does not depend on the
# tables' contents), and sent after the updates.
_PG_INSERT = (
    "WITH " + ", ".join(f"w{n} AS ({_pg_rows(table)})" for n, table in enumerate(list(COLUMNS)[:-1])) +
    " " + _pg_rows(list(COLUMNS)[-1]))


def _found(rows: Iterable[tuple[str, str, str | None, int | None, str]]) -> Found:
    """``_PG_LOOK_UP``'s tagged rows, sorted out."""
    found = Found({}, [], [])
    for kind, a, b, version, text in rows:
        if kind == "i":
            found.ingestions[a] = text
        elif kind == "r":
            found.resources.append((a, b or "", version or 0, text))
        else:
            found.patients.append((a, b, text))
    return found


def _pg_inserts(changes: Changes) -> list[Any]:
    """The parameters of ``_PG_INSERT``."""
    return [p for t in COLUMNS for p in _pg_params(t, changes.rows.get(t, ()))]


def _pg_updates(changes: Changes) -> list[str]:
    """The parameters of ``_PG_UPDATE``."""
    return [_json(changes.updates), _json(changes.reindex)]


def _check_updated(changes: Changes, row: tuple[int] | None) -> None:
    """Raise :class:`Conflict` if ``_PG_UPDATE`` updated fewer resources than sent."""
    updated = row[0] if row else 0
    if updated != len(changes.updates):
        raise Conflict(f"{len(changes.updates) - updated} resource(s) changed by another writer")


def _json(rows: Sequence[tuple[Any, ...]]) -> str:
    return orjson.dumps(rows).decode()


def _key_arrays(keys: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The types and the ids of ``keys``, for ``_PG_KEYS``."""
    return [t for t, _ in keys], [i for _, i in keys]


def _grouped(keys: Sequence[tuple[str, str]]) -> tuple[tuple[int, ...], list[str]]:
    """Keys grouped by type: the shape (ids per type) and the parameters
    (type, ids…, type, ids…)."""
    by_type: dict[str, list[str]] = {}
    for t, i in keys:
        by_type.setdefault(t, []).append(i)
    params: list[str] = []
    for t, ids in by_type.items():
        params.append(t)
        params.extend(ids)
    return tuple(len(ids) for ids in by_type.values()), params


def _keys_where(p: str, shape: tuple[int, ...]) -> str:
    # One ``type = ? AND id IN (...)`` per type: SQLite plans row-value IN
    # lists as full scans, and this form uses the primary key.
    return " OR ".join(f"(resource_type = {p} AND id IN ({', '.join([p] * n)}))" for n in shape)


@lru_cache(maxsize=512)
def _select_existing(p: str, shape: tuple[int, ...]) -> str:
    return f"SELECT resource_type, id, version_id, content FROM resource WHERE {_keys_where(p, shape)}"


@lru_cache(maxsize=512)
def _delete_index(p: str, shape: tuple[int, ...]) -> str:
    return f"DELETE FROM search_index WHERE {_keys_where(p, shape)}"


@lru_cache(maxsize=16)
def _insert(p: str, table: str, columns: str, n: int) -> str:
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join([p] * n)})"


@lru_cache(maxsize=128)
def _select_ingestions(p: str, n: int) -> str:
    return f"SELECT id, result FROM ingestion WHERE id IN ({', '.join([p] * n)})"


@lru_cache(maxsize=64)
def _patients_by_identifier(p: str, n: int) -> str:
    # No DISTINCT: with it SQLite walks every Patient row of (resource_type, id)
    # instead of the token index.
    return ("SELECT id, system, code FROM search_index WHERE resource_type = 'Patient' "
            f"AND param = 'identifier' AND code IN ({', '.join([p] * n)})")
