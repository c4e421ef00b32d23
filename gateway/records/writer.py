"""Writing resources: the versioning and merge rules, applied to any number of
messages inside one transaction.

A :class:`Writer` lives for one transaction. ``put`` applies a message's
resources against what the database holds *and* what earlier messages of
the same transaction already wrote (kept in memory), so a group commit of
many messages gives exactly the result of storing them one after the
other. Nothing reaches the database before ``flush``, which writes all of
it at once (one statement on PostgreSQL; on SQLite one insert per table
for new rows, one update per changed stored resource, one delete of
replaced index rows).

Update semantics follow HL7 v2: a field that a message does not value means
"no information", not "delete". So an incoming resource replaces the
top-level elements it carries and keeps the others from the stored version
(an ORU with a bare PID does not wipe the address an ADT gave); a ``status``
of ``unknown`` does not replace a known one. A resource whose content does
not change gets no new version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..fhir.jsonio import dumps, loads
from .indexing import Row, clip, index_rows
from .sql import Changes, Found, Sql

__all__ = ["Writer", "StoredEntry", "Prepared", "prepare"]

Key = tuple[str, str]


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
class Prepared:
    """A resource with its search-index rows, worked out before the write
    transaction (index rows depend on content only, not on the version)."""

    resource: dict[str, Any]
    rows: list[Row] | None  # None: worked out at flush


def prepare(resources: list[dict[str, Any]]) -> list[Prepared]:
    return [Prepared(r, index_rows(r)) for r in resources]


@dataclass(slots=True)
class _Current:
    """What the transaction holds for one resource."""

    stored_version: int | None  # the version in the database before this transaction
    version: int
    body: dict[str, Any]
    text: str | None  # serialised body when written in this transaction
    rows: list[Row] | None  # index rows of ``body`` when written in this transaction
    versions: list[tuple[str, str, int, str, str]] = field(default_factory=list)


def _content(res: dict[str, Any]) -> dict[str, Any]:
    """What counts as a change: everything but meta."""
    return {k: v for k, v in res.items() if k != "meta"}


def _without_meta_versioning(res: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (res.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    out = {k: v for k, v in res.items() if k != "meta"}
    if meta:
        out["meta"] = meta
    return out


def stamp(res: dict[str, Any], version: int, when: str) -> dict[str, Any]:
    """``res`` with ``meta.versionId`` and ``meta.lastUpdated`` set (first in meta)."""
    meta = {"versionId": str(version), "lastUpdated": when,
            **{k: v for k, v in (res.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}}
    body = {"resourceType": res["resourceType"], "id": res["id"], "meta": meta}
    body.update({k: v for k, v in res.items() if k not in ("resourceType", "id", "meta")})
    return body


class Writer:
    """The resources one transaction writes; see the module docstring."""

    def __init__(self, sql: Sql, cur: Any) -> None:
        self.sql, self.cur = sql, cur
        self._current: dict[Key, _Current] = {}
        self._missing: set[Key] = set()  # looked up: not in the database
        self._ingestions: list[tuple[str, str, str, str, str, str, str]] = []
        # Patients this transaction wrote, by (system, value) identifier: what
        # the search index will say once flushed
        self._written_ids: dict[tuple[str | None, str | None], set[str]] = {}
        # Patients the database indexes, by identifier value: (id, system)
        # pairs, for the values looked up so far (the index changes only at flush)
        self._indexed_ids: dict[str, list[tuple[str, str | None]]] = {}

    # ------------------------------------------------------------------ reading
    def look_up(self, ingestion_ids: list[str], batch: list[Prepared]) -> dict[str, str]:
        """Read at once what a batch needs: the stored answers of the
        ingestions among ``ingestion_ids`` (returned), the stored versions of
        the resources of ``batch``, and who carries the identifier values of
        its Patients."""
        wanted, values = self.wanted(batch)
        return self.accept(wanted, values, self.sql.look_up(self.cur, ingestion_ids, wanted, values))

    def wanted(self, batch: list[Prepared]) -> tuple[list[Key], set[str]]:
        """What :meth:`look_up` reads for ``batch``: the keys of its resources
        and the identifier values of its Patients not known yet."""
        return (self._unknown([(p.resource["resourceType"], p.resource["id"]) for p in batch]),
                self._unknown_values([p.resource for p in batch if p.resource["resourceType"] == "Patient"]))

    def accept(self, wanted: list[Key], values: set[str], found: Found) -> dict[str, str]:
        """Take in what was read for ``wanted`` and ``values`` (however it was
        read); return the stored answers of the ingestions."""
        self._remember(wanted, found.resources)
        self._remember_identifiers(values, found.patients)
        return found.ingestions

    def load(self, keys: list[Key]) -> None:
        """Read the stored versions of ``keys`` not yet known, in one statement."""
        wanted = self._unknown(keys)
        if wanted:
            self._remember(wanted, self.sql.existing(self.cur, wanted))

    def _unknown(self, keys: list[Key]) -> list[Key]:
        return [k for k in dict.fromkeys(keys) if k not in self._current and k not in self._missing]

    def _remember(self, wanted: list[Key], stored: list[tuple[str, str, int, str]]) -> None:
        for t, i, v, c in stored:
            self._current[(t, i)] = _Current(v, v, loads(c), None, None)
        self._missing.update(k for k in wanted if k not in self._current)

    def read(self, rtype: str, rid: str) -> dict[str, Any] | None:
        """The resource as this transaction sees it."""
        self.load([(rtype, rid)])
        cur = self._current.get((rtype, rid))
        return cur.body if cur is not None else None

    # ------------------------------------------------------------------ writing
    def put(self, batch: list[Prepared], when: str) -> list[StoredEntry]:
        """Apply resources (merge, version); entries in the order of ``batch``."""
        self.load([(p.resource["resourceType"], p.resource["id"]) for p in batch])
        entries: dict[Key, StoredEntry] = {}
        for p in batch:
            res = p.resource
            key = (res["resourceType"], res["id"])
            if key in entries:
                continue
            entries[key] = self._put_one(key, res, p.rows, when)
        return [entries[(p.resource["resourceType"], p.resource["id"])] for p in batch]

    def _put_one(self, key: Key, res: dict[str, Any], rows: list[Row] | None, when: str) -> StoredEntry:
        rtype, rid = key
        cur = self._current.get(key)
        if cur is None:
            body = stamp(res, 1, when)
            text = dumps(body).decode()
            cur = _Current(None, 1, body, text, rows)
            cur.versions.append((rtype, rid, 1, when, text))
            self._current[key] = cur
            self._missing.discard(key)
            self._note_identifiers(key, body)
            return StoredEntry(rtype, rid, 1, "created", when)
        old = cur.body
        if res.get("status") == "unknown" and old.get("status") not in (None, "unknown"):
            # "unknown" is what a message that cannot tell the status carries
            # (a lab result for a visit): no information, like an empty field
            res = {k: v for k, v in res.items() if k != "status"}
        merged = {**_without_meta_versioning(old), **_without_meta_versioning(res)}
        if _content(merged) == _content(old):
            # Only meta.source would change: the content is the same, so no
            # new version (the Provenance of the new message still points here).
            return StoredEntry(rtype, rid, cur.version, "unchanged", old["meta"]["lastUpdated"])
        cur.version += 1
        cur.body = stamp(merged, cur.version, when)
        cur.text = dumps(cur.body).decode()
        cur.rows = None  # the merged body is indexed at flush
        cur.versions.append((rtype, rid, cur.version, when, cur.text))
        self._note_identifiers(key, cur.body)
        return StoredEntry(rtype, rid, cur.version, "updated", when)

    def _note_identifiers(self, key: Key, body: dict[str, Any]) -> None:
        if key[0] == "Patient":
            for ident in _identifiers(body):
                self._written_ids.setdefault(ident, set()).add(key[1])

    def log_ingestion(self, row: tuple[str, str, str, str, str, str, str]) -> None:
        self._ingestions.append(row)

    # ------------------------------------------------------------------ linking
    def look_up_identifiers(self, patients: list[dict[str, Any]]) -> None:
        """Read, in one statement, which stored Patients carry the identifier
        values of ``patients`` (the Patients a batch is about to write)."""
        values = self._unknown_values(patients)
        if values:
            self._remember_identifiers(values, self.sql.patients_with_identifiers(self.cur, values))

    def _unknown_values(self, patients: list[dict[str, Any]]) -> set[str]:
        return {v for p in patients for _, v in _identifiers(p) if v} - self._indexed_ids.keys()

    def _remember_identifiers(self, values: set[str], stored: list[tuple[str, str | None, str]]) -> None:
        found: dict[str, list[tuple[str, str | None]]] = {v: [] for v in values}
        for pid, system, value in stored:
            found[value].append((pid, system))
        self._indexed_ids.update(found)

    def same_person(self, me: dict[str, Any]) -> list[str]:
        """Other Patients carrying one of ``me``'s identifiers (with a system),
        as this transaction sees them."""
        idents = _identifiers(me)
        if not idents:
            return []
        pid = me["id"]
        self.look_up_identifiers([me])
        systems = {s for s, _ in idents}
        candidates = {other for _, v in idents if v
                      for other, system in self._indexed_ids[v] if system in systems}
        for ident in idents:
            candidates.update(self._written_ids.get(ident, ()))
        candidates.discard(pid)
        # an update may have dropped an identifier: check the current bodies
        return sorted(other for other in candidates
                      if (body := self.read("Patient", other)) is not None and _identifiers(body) & idents)

    # ------------------------------------------------------------------ flushing
    def flush(self) -> None:
        """Write everything this transaction changed."""
        self.sql.write(self.cur, self.changes())

    def changes(self) -> Changes:
        """Everything this transaction changed, as rows to write."""
        changes = Changes()
        inserts: list[tuple[Any, ...]] = []
        versions: list[tuple[Any, ...]] = []
        rows: list[tuple[Any, ...]] = []
        for (rtype, rid), c in self._current.items():
            if c.text is None:
                continue  # read only
            versions.extend(c.versions)
            if c.stored_version is None:
                inserts.append((rtype, rid, c.version, c.body["meta"]["lastUpdated"], c.text))
            else:
                changes.updates.append((c.version, c.body["meta"]["lastUpdated"], c.text, rtype, rid,
                                        c.stored_version))
            rows.extend((rtype, rid, *r) for r in (c.rows if c.rows is not None else index_rows(c.body)))
        changes.rows = {"resource": inserts, "resource_version": versions, "search_index": rows,
                        "ingestion": self._ingestions}
        return changes


def _identifiers(patient: dict[str, Any]) -> set[tuple[str | None, str | None]]:
    """(system, value) pairs as the index holds them; identifiers without a
    system, and old ones, do not identify a person across sources."""
    return {(clip(i.get("system"), 256), clip(i.get("value"), 256))
            for i in patient.get("identifier", []) or []
            if isinstance(i, dict) and i.get("system") and i.get("value") and i.get("use") != "old"}
