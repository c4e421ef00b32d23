"""The write path's SQL, as driver statements.

Storing a message runs about ten statements; built as SQLAlchemy
expressions each one costs far more Python time than SQLite takes to run
it. So the write path sends plain SQL strings, written once per dialect
(placeholders ``?`` for sqlite3, ``%s`` for psycopg), straight to the DBAPI
cursor of the transaction SQLAlchemy opened. Statements whose shape depends
on the number of keys are built once per shape and cached. Reads and the
rest of the gateway keep using SQLAlchemy Core (``schema.py``).

DBAPI errors are not wrapped by SQLAlchemy here: :data:`RETRYABLE` names
them for the callers that retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.engine import Connection

from .indexing import INDEX_COLUMNS

__all__ = ["Sql", "Conflict", "COLUMNS"]

# The tables the write path inserts into, and their columns in row order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "resource": ("resource_type", "id", "version_id", "last_updated", "content"),
    "resource_version": ("resource_type", "id", "version_id", "last_updated", "content"),
    "search_index": ("resource_type", "id", *INDEX_COLUMNS),
    "ingestion": ("id", "source_format", "sender", "control_id", "message_type", "received_at", "result"),
}


class Conflict(Exception):
    """Another writer changed a resource between our read and our write; the
    work is rolled back and retried."""


class Sql:
    """Statements for one dialect, run on a connection's DBAPI cursor."""

    def __init__(self, dialect: str, dbapi: Any) -> None:
        self.p = p = "?" if dialect == "sqlite" else "%s"
        self.retryable: tuple[type[BaseException], ...] = (
            Conflict, dbapi.IntegrityError, dbapi.OperationalError)
        # PostgreSQL: bulk rows by COPY and batch keys as arrays (below);
        # SQLite: executemany and IN lists
        self.postgres = dialect == "postgresql"
        self.update_resource = (
            f"UPDATE resource SET version_id = {p}, last_updated = {p}, content = {p} "
            f"WHERE resource_type = {p} AND id = {p} AND version_id = {p}")

    def insert(self, cur: Any, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` (values in the order of ``COLUMNS[table]``) in one go:
        COPY on PostgreSQL (row-by-row statements cost tens of microseconds of
        client time each there), executemany on SQLite (a loop in C)."""
        if not rows:
            return
        columns = ", ".join(COLUMNS[table])
        if self.postgres:
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cur.executemany(_insert(self.p, table, columns, len(COLUMNS[table])), rows)

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

    def ingestions(self, cur: Any, ids: Sequence[str]) -> dict[str, str]:
        """The stored answers (JSON) of the ingestions among ``ids``."""
        ids = sorted(set(ids))
        if self.postgres:
            cur.execute(_PG_INGESTIONS, (ids,), prepare=False)
        else:
            cur.execute(_select_ingestions(self.p, len(ids)), ids)
        return dict(cur.fetchall())

    def delete_index(self, cur: Any, keys: Sequence[tuple[str, str]]) -> None:
        if self.postgres:
            cur.execute(_PG_DELETE_INDEX, _key_arrays(keys), prepare=False)
        else:
            shape, params = _grouped(keys)
            cur.execute(_delete_index(self.p, shape), params)

    def patients_with_identifiers(self, cur: Any, values: Iterable[str]) -> list[tuple[str, str, str]]:
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
_PG_KEYS = "unnest(%s::text[], %s::text[]) AS k(resource_type, id)"
_PG_EXISTING = (
    "SELECT r.resource_type, r.id, r.version_id, r.content FROM " + _PG_KEYS +
    " JOIN resource r ON r.resource_type = k.resource_type AND r.id = k.id")
_PG_DELETE_INDEX = (
    "DELETE FROM search_index s USING " + _PG_KEYS +
    " WHERE s.resource_type = k.resource_type AND s.id = k.id")
_PG_INGESTIONS = "SELECT id, result FROM ingestion WHERE id = ANY(%s::text[])"
# One index descent per value, whatever the statistics say: the subquery is
# run for each value (LATERAL; OFFSET 0 keeps it from being merged into a
# join the planner may reorder). Written as ``code = ANY(%s)`` or as a plain
# join, the planner, without statistics yet (a new database), filtered every
# Patient identifier row instead.
_PG_PATIENTS_BY_IDENTIFIER = (
    "SELECT p.id, p.system, p.code FROM unnest(%s::text[]) AS v(code), LATERAL ("
    "SELECT s.id, s.system, s.code FROM search_index s WHERE s.resource_type = 'Patient' "
    "AND s.param = 'identifier' AND s.code = v.code OFFSET 0) AS p")


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
