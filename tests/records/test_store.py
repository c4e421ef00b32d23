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
