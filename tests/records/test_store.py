"""The record store on SQLite and on PostgreSQL: versions, no-op updates,
idempotent ingestion, concurrent writers, and two processes on one database."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

from gateway.records import Store
from tests.conftest import ROOT


def _patient(pid: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "meta": {"source": "urn:test"},
            "identifier": [{"system": "urn:oid:1.2.3", "value": pid}], **extra}


def _ingest(store: Store, key: str, resources: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    return store.ingest(resources, ingestion_id=key, source_format="test",
                        source={"sender": "t", "control_id": key, "type": "T"},
                        outcome={"resourceType": "OperationOutcome", "issue": []})


def test_versions_and_no_op_updates(db_url: str) -> None:
    store = Store(db_url)
    try:
        r1 = _ingest(store, "a", [_patient("p1", gender="female")])
        assert [(e.status, e.version_id) for e in r1.entries] == [("created", 1)]
        r2 = _ingest(store, "b", [_patient("p1", gender="female")])
        assert [(e.status, e.version_id) for e in r2.entries] == [("unchanged", 1)]
        r3 = _ingest(store, "c", [_patient("p1", birthDate="1990-01-01")])
        assert [(e.status, e.version_id) for e in r3.entries] == [("updated", 2)]
        current = store.read("Patient", "p1")
        assert current["gender"] == "female" and current["birthDate"] == "1990-01-01"  # merged
        assert current["meta"]["versionId"] == "2"
        assert store.vread("Patient", "p1", 1)["meta"]["versionId"] == "1"
        assert [v["meta"]["versionId"] for v in store.history("Patient", "p1")] == ["2", "1"]
        again = _ingest(store, "a", [_patient("p1", gender="male")])
        assert again.replay and store.read("Patient", "p1")["gender"] == "female"
    finally:
        store.close()


def test_concurrent_writers_of_the_same_resource(db_url: str) -> None:
    store = Store(db_url)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            _ingest(store, f"k{i}", [_patient("shared", extension=[{"url": "urn:n", "valueInteger": i}])])
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors
        versions = store.history("Patient", "shared")
        assert len(versions) == 12  # every write made one version, none lost
        assert sorted(int(v["meta"]["versionId"]) for v in versions) == list(range(1, 13))
        assert store.ingestion_count() == 12
    finally:
        store.close()


_WORKER = """
import sys
from gateway.records import Store
store = Store(sys.argv[1])
for i in range(40):
    store.ingest([{"resourceType": "Patient", "id": f"p{i % 5}", "gender": "other",
                   "extension": [{"url": "urn:w", "valueString": sys.argv[2] + str(i)}]}],
                 ingestion_id=sys.argv[2] + str(i), source_format="test",
                 source={"sender": "w", "control_id": str(i), "type": "T"}, outcome={})
store.close()
"""


def test_two_processes_on_one_database(db_url: str) -> None:
    Store(db_url).close()  # migrate once up front is not required, but exercise it too
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, db_url, name], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err.decode()[-2000:]
    store = Store(db_url)
    try:
        assert store.ingestion_count() == 80
        assert sum(len(store.history("Patient", f"p{i}")) for i in range(5)) == 80
    finally:
        store.close()


def test_messages_committed_together_give_the_one_by_one_result(db_url: str) -> None:
    """Many writers at once (group commit batches them): a message that cannot
    be stored fails alone, the same message twice is stored once, a resource
    shared by all messages gets no new version, and each patient its own."""
    store = Store(db_url)
    org = {"resourceType": "Organization", "id": "lab", "name": "Lab"}
    barrier = threading.Barrier(16)
    outcome: dict[int, Any] = {}

    def work(i: int) -> None:
        key = "dup" if i in (1, 2) else f"m{i}"
        resources = [_patient(f"q{min(i, 1) if i in (1, 2) else i}"), org]
        if i == 0:
            resources = [{"resourceType": "Patient", "id": "bad", "x": {1, 2}}]  # not JSON
        barrier.wait(30)
        try:
            outcome[i] = _ingest(store, key, resources)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert isinstance(outcome[0], TypeError)
        assert store.read("Patient", "bad") is None
        assert sorted([outcome[1].replay, outcome[2].replay]) == [False, True]
        assert outcome[1].entries == outcome[2].entries
        for i in range(3, 16):
            assert not outcome[i].replay and outcome[i].entries[0].status == "created"
            assert store.read("Patient", f"q{i}")["meta"]["versionId"] == "1"
        assert [v["meta"]["versionId"] for v in store.history("Organization", "lab")] == ["1"]
        assert store.ingestion_count() == 14  # 13 single messages + the duplicate once
    finally:
        store.close()


def test_status_unknown_does_not_overwrite_a_known_status(db_url: str) -> None:
    """A message that cannot say an encounter's status (a lab result for the
    visit) gives ``unknown``: no information, so the status an admission gave stays."""
    store = Store(db_url)
    enc = {"resourceType": "Encounter", "id": "v1", "class": {"code": "IMP"},
           "subject": {"reference": "Patient/p1"}}
    try:
        _ingest(store, "adt", [{**enc, "status": "in-progress"}])
        r = _ingest(store, "oru", [{**enc, "status": "unknown", "period": {"start": "2024-03-01"}}])
        current = store.read("Encounter", "v1")
        assert current["status"] == "in-progress" and current["period"] == {"start": "2024-03-01"}
        assert r.entries[0].status == "updated"
        _ingest(store, "a03", [{**enc, "status": "finished"}])
        assert store.read("Encounter", "v1")["status"] == "finished"
        fresh = {**enc, "id": "v2", "status": "unknown"}
        _ingest(store, "oru2", [fresh])
        assert store.read("Encounter", "v2")["status"] == "unknown"  # nothing better known
    finally:
        store.close()


def test_patients_sharing_an_identifier_are_linked_when_stored_together(db_url: str) -> None:
    """Two sources' Patients with one identifier, arriving at once (one group
    commit): linked both ways, as if stored one after the other."""
    store = Store(db_url)
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        value = "SAME" if i < 2 else f"v{i}"
        barrier.wait(30)
        _ingest(store, f"s{i}", [{"resourceType": "Patient", "id": f"s{i}",
                                  "identifier": [{"system": "urn:oid:1.2.9", "value": value}]}])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert store.read("Patient", "s0")["link"] == [{"other": {"reference": "Patient/s1"}, "type": "seealso"}]
        assert store.read("Patient", "s1")["link"] == [{"other": {"reference": "Patient/s0"}, "type": "seealso"}]
        assert all("link" not in store.read("Patient", f"s{i}") for i in range(2, 8))
    finally:
        store.close()


def test_an_update_replaces_the_index_rows(db_url: str) -> None:
    """The index holds the current version only: an update's rows replace
    the old ones (on PostgreSQL in one round trip with the new rows)."""
    from sqlalchemy import text

    from gateway.records.indexing import index_rows

    store = Store(db_url)
    try:
        _ingest(store, "a", [_patient("p1", gender="female"), _patient("p2", gender="male")])
        _ingest(store, "b", [_patient("p1", gender="male", birthDate="1990-01-01"),
                             _patient("p3", gender="other")])
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, param, code, low FROM search_index "
                                     "WHERE resource_type = 'Patient' ORDER BY id, param, code, low")).all()
        expected = sorted((pid, r[0], r[2], r[5]) for pid in ("p1", "p2", "p3")
                          for r in index_rows(store.read("Patient", pid)))
        assert [tuple(r) for r in rows] == expected
        assert ("p1", "gender", "male", None) in expected and ("p1", "gender", "female", None) not in expected
    finally:
        store.close()


def test_the_writer_survives_losing_its_database_connection(db_url: str) -> None:
    """The committing thread keeps its connection between batches; when the
    database drops it, the next message is stored on a fresh one."""
    if not db_url.startswith("postgresql"):
        return  # an SQLite connection is a file, not a session to lose
    from tests.pgserver import drop_other_connections

    store = Store(db_url)
    try:
        _ingest(store, "a", [_patient("p1")])
        assert drop_other_connections(store.engine) >= 1
        result = _ingest(store, "b", [_patient("p2")])
        assert [e.status for e in result.entries] == ["created"]
        assert store.read("Patient", "p2") is not None and store.read("Patient", "p1") is not None
    finally:
        store.close()


def test_two_sources_of_one_person_at_the_same_moment_are_linked(db_url: str) -> None:
    """Two Patients with one identifier, stored by concurrent writers (on
    PostgreSQL batches commit side by side): the later one always sees the
    earlier one, so each pair ends up linked."""
    store = Store(db_url)
    errors: list[BaseException] = []

    def send(source: str, n: int) -> None:
        patient = {"resourceType": "Patient", "id": f"{source}{n}", "meta": {"source": f"urn:{source}"},
                   "identifier": [{"system": "urn:oid:1.2.250.1", "value": f"NIR{n}"}]}
        try:
            _ingest(store, f"{source}-{n}", [patient])
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    try:
        for n in range(15):
            pair = [threading.Thread(target=send, args=(s, n)) for s in ("a", "b")]
            for t in pair:
                t.start()
            for t in pair:
                t.join(60)
        assert not errors
        for n in range(15):
            a, b = store.read("Patient", f"a{n}"), store.read("Patient", f"b{n}")
            assert [link["other"]["reference"] for link in a.get("link", [])] == [f"Patient/b{n}"], n
            assert [link["other"]["reference"] for link in b.get("link", [])] == [f"Patient/a{n}"], n
    finally:
        store.close()


def test_writers_on_an_event_loop_conflict_and_retry_like_threads(db_url: str) -> None:
    """``ingest_async`` from many tasks of one loop at once, all updating one
    resource: each is committed (after retries where another got there
    first), none blocks the loop, and the versions count every change."""
    import asyncio

    store = Store(db_url)

    async def one(i: int) -> str:
        result = await store.ingest_async(
            [_patient("shared", extension=[{"url": "urn:n", "valueInteger": i}])],
            ingestion_id=f"a{i}", source_format="test", source={"sender": "t", "control_id": f"a{i}", "type": "T"},
            outcome={"resourceType": "OperationOutcome", "issue": []})
        return result.entries[0].status

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(16)))

    try:
        statuses = asyncio.run(all_of_them())
        assert statuses.count("created") == 1 and statuses.count("updated") == 15
        assert store.read("Patient", "shared")["meta"]["versionId"] == "16"
        assert len(store.history("Patient", "shared")) == 16
        assert store.ingestion_count() == 16
    finally:
        store.close()


def test_patients_stored_before_name_parts_are_indexed_again_by_the_migration(db_url: str) -> None:
    # a database at revision 0006 held one "name" row per name ("given family");
    # migration 0007 gives every stored Patient its rows for each part
    from sqlalchemy import text

    from gateway.records.migrate import migrate
    from gateway.records.search import build_query, parse_criteria

    def found(name: str) -> list[str]:
        with store.engine.connect() as conn:
            query = build_query("Patient", parse_criteria("Patient", [("name", name)]), None)
            return [row[0] for row in conn.execute(query)]

    named = {"name": [{"family": "Silva", "given": ["Maria", "Joana"], "prefix": ["Dra."]}]}
    store = Store(db_url)
    try:
        _ingest(store, "n", [_patient("p-named", **named)])
        with store.write_engine.begin() as conn:
            conn.execute(text("DELETE FROM search_index WHERE param = 'name'"))
            conn.execute(text("INSERT INTO search_index (resource_type, id, param, text) "
                              "VALUES ('Patient', 'p-named', 'name', 'maria joana silva')"))
            conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
        assert found("silva") == []  # as before
        migrate(store.write_engine)
        for part in ("silva", "maria", "joana", "dra", "maria joana s"):
            assert found(part) == ["p-named"], part
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM search_index WHERE param = 'name'")).scalar()
        assert rows == 5  # Dra., Maria, Joana, Silva, "maria joana silva": no duplicates
    finally:
        store.close()
