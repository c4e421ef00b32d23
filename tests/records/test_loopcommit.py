"""Group commit on the event loop (PostgreSQL): ``Store.ingest_async``
commits the usual batch on the loop's own connection, and hands anything
unusual (a further read, an error, a lost connection) to the writer threads,
message by message, with the same results."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.records import Store
from tests.conftest import _db_counter
from tests.pgserver import drop_other_connections


@pytest.fixture
def pg_store(postgres: Any) -> Iterator[Store]:
    store = Store(postgres.new_database(f"loop{next(_db_counter)}"))
    yield store
    store.close()


def _patient(pid: str, value: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "meta": {"source": f"urn:{pid}"},
            "identifier": [{"system": "urn:oid:1.2.250.1", "value": value or pid}], **extra}


async def _ingest(store: Store, key: str, resources: list[dict[str, Any]]) -> Any:
    return await store.ingest_async(
        resources, ingestion_id=key, source_format="test", source={"sender": "t", "control_id": key, "type": "T"},
        outcome={"resourceType": "OperationOutcome", "issue": []})


def _committer(store: Store) -> Any:
    (committer,) = store._loop_committers.values()
    return committer


def test_messages_arriving_together_are_committed_on_the_loop(pg_store: Store) -> None:
    async def run() -> tuple[list[Any], Any]:
        results = await asyncio.gather(*(_ingest(pg_store, f"m{i}", [_patient(f"p{i}")]) for i in range(40)))
        return results, _committer(pg_store)

    results, committer = asyncio.run(run())
    assert [r.entries[0].status for r in results] == ["created"] * 40
    assert committer.fallbacks == 0
    assert 1 <= committer.batches < 40  # grouped: fewer commits than messages
    assert pg_store.ingestion_count() == 40
    assert pg_store.read("Patient", "p39")["meta"]["versionId"] == "1"
    # the same messages again: the stored answers, nothing new
    again = asyncio.run(run())[0]
    assert [r.replay for r in again] == [True] * 40
    assert pg_store.ingestion_count() == 40


def test_a_batch_that_needs_a_further_read_goes_to_the_writer_threads(pg_store: Store) -> None:
    """Linking a Patient to another source's Patient of the same person reads
    that Patient: the loop does not block on it; the message is stored by
    the writer threads, linked, and the loop's next batches commit there again."""
    async def run() -> Any:
        await _ingest(pg_store, "a", [_patient("a1", "NIR7", gender="female")])
        linked = await _ingest(pg_store, "b", [_patient("b1", "NIR7", gender="male")])
        after = await _ingest(pg_store, "c", [_patient("c1")])
        return linked, after, _committer(pg_store)

    linked, after, committer = asyncio.run(run())
    assert committer.fallbacks == 1 and committer.batches == 2
    assert [link["other"]["reference"] for link in pg_store.read("Patient", "a1")["link"]] == ["Patient/b1"]
    assert [link["other"]["reference"] for link in pg_store.read("Patient", "b1")["link"]] == ["Patient/a1"]
    assert any(i["code"] == "conflict" and "gender" in i["diagnostics"] for i in linked.outcome["issue"])
    assert after.entries[0].status == "created"


def test_one_bad_message_fails_alone(pg_store: Store) -> None:
    """A batch that the database refuses is rolled back and its messages are
    stored one by one: the good ones are committed, the bad one fails."""
    async def run() -> list[Any]:
        good = [_ingest(pg_store, f"g{i}", [_patient(f"g{i}")]) for i in range(6)]
        bad = _ingest(pg_store, "bad", [_patient("x" * 80)])  # longer than the id column
        return await asyncio.gather(*good[:3], bad, *good[3:], return_exceptions=True)

    results = asyncio.run(run())
    assert [type(r).__name__ for r in results].count("IngestResult") == 6
    assert isinstance(results[3], Exception)
    assert pg_store.ingestion_count() == 6
    assert all(pg_store.read("Patient", f"g{i}") is not None for i in range(6))
    assert _committer(pg_store).fallbacks >= 1


def test_the_loop_survives_losing_its_database_connection(pg_store: Store) -> None:
    """The loop keeps its connection between batches; when the database drops
    it, the next message is still stored (by the writer threads) and the
    batch after it commits on the loop again, on a fresh connection."""
    async def run() -> tuple[Any, Any, Any]:
        await _ingest(pg_store, "a", [_patient("p1")])
        assert drop_other_connections(pg_store.engine) >= 1
        second = await _ingest(pg_store, "b", [_patient("p2")])
        third = await _ingest(pg_store, "c", [_patient("p3")])
        return second, third, _committer(pg_store)

    second, third, committer = asyncio.run(run())
    assert second.entries[0].status == third.entries[0].status == "created"
    assert committer.fallbacks == 1 and committer.batches == 2
    assert all(pg_store.read("Patient", p) is not None for p in ("p1", "p2", "p3"))


def test_each_event_loop_has_its_committer_and_closing_the_store_closes_them(pg_store: Store) -> None:
    asyncio.run(_ingest(pg_store, "a", [_patient("p1")]))
    first = _committer(pg_store)
    asyncio.run(_ingest(pg_store, "b", [_patient("p2")]))  # a new loop: the old one is closed
    second = _committer(pg_store)
    assert first is not second and second.batches == 1
    connections = list(second._idle)
    pg_store.close()
    assert connections and all(c.closed for c in connections)
    assert not pg_store._loop_committers


def test_a_connection_in_use_when_the_store_closes_is_closed_after_its_batch(pg_store: Store) -> None:
    from sqlalchemy import create_engine, text

    async def run() -> tuple[Any, Any]:
        task = asyncio.ensure_future(_ingest(pg_store, "a", [_patient("p1")]))
        while not pg_store._loop_committers or not _committer(pg_store)._active:
            await asyncio.sleep(0)
        committer = _committer(pg_store)
        pg_store.close()  # while the batch connects or commits
        return await task, committer

    result, committer = asyncio.run(run())  # the committer stays referenced: no collector closes it
    assert result.entries[0].status == "created" and committer.batches == 1
    assert not committer._idle
    probe = create_engine(str(pg_store.write_engine.url.render_as_string(hide_password=False)))
    try:
        with probe.connect() as conn:
            others = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
            stored = conn.execute(text("SELECT count(*) FROM ingestion")).scalar()
    finally:
        probe.dispose()
    assert others == 0 and stored == 1
