"""Configured limits with small values: body size (413), per-client rate
(429 with Retry-After, one AuditEvent per run of refusals), ingestion in
flight (HTTP 503 with Retry-After, MLLP AE "busy, resend"), JSON depth and
member counts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.access.tokens import mint
from gateway.api import create_app
from gateway.api.limits import Limits, RateLimiter, read_json
from gateway.errors import GatewayError
from gateway.ingest import bad_frame_reply, mllp_handler
from gateway.mllp import MLLPServer, send_message
from gateway.records import Store
from gateway.settings import Settings
from tests.conftest import FIXTURES, bearer, sample
from tests.robustness.serving import msa, unique_message

HL7 = {"Content-Type": "x-application/hl7-v2+er7"}


def _app(tmp_path: Path, limits: Limits, max_body: int = 20 * 1024 * 1024) -> TestClient:
    settings = Settings(tmp_path.resolve(), f"sqlite:///{tmp_path / 'limits.db'}", max_body)
    app = create_app(settings, limits=limits)
    return TestClient(app, headers=bearer(app, system="1"))


@pytest.fixture
def small(tmp_path: Path) -> Iterator[TestClient]:
    with _app(tmp_path, Limits(rate_per_second=1, rate_burst=3, max_inflight_ingest=1), max_body=4000) as c:
        yield c
    c.app.state.store.close()  # type: ignore[attr-defined]


def _is_outcome(r: object) -> bool:
    body = r.json()  # type: ignore[attr-defined]
    return body["resourceType"] == "OperationOutcome" and bool(body["issue"])


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(small: TestClient) -> None:
    r = small.post("/ingest", content=b"M" * 5000, headers=HL7)
    assert r.status_code == 413 and _is_outcome(r)
    r = small.post("/fhir/$validate", content=b"{" * 5000, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 413 and _is_outcome(r)


def test_a_chunked_body_over_the_limit_is_refused(small: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    r = small.post("/ingest", content=chunks(), headers=HL7)
    assert r.status_code == 413 and _is_outcome(r)
    assert small.app.state.store.ingestion_count() == 0  # type: ignore[attr-defined]


def test_a_client_over_its_rate_gets_429_and_one_audit_event(small: TestClient) -> None:
    answers = [small.get("/fhir/Patient") for _ in range(8)]
    codes = [r.status_code for r in answers]
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and _is_outcome(refused)
    events = [e for e in small.app.state.store.search("AuditEvent", limit=500)  # type: ignore[attr-defined]
              if "rate limit" in e.get("outcomeDesc", "")]
    assert len(events) == 1
    assert events[0]["agent"][0]["who"]["identifier"]["value"] == "gateway-dev"
    other = mint(small.app.state.auth, scope="system/*.cruds", subject="s", client_id="another-system")  # type: ignore[attr-defined]
    assert small.get("/fhir/Patient", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_the_bucket_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 2, clock=lambda: now[0])
    assert [limiter.take("c").allowed for _ in range(3)] == [True, True, False]
    assert limiter.take("c").first_refusal is False
    now[0] += 0.5
    assert limiter.take("c").allowed
    verdict = limiter.take("c")
    assert not verdict.allowed and verdict.first_refusal and verdict.retry_after == 1


def test_ingestion_beyond_the_slots_answers_503_and_stores_nothing(small: TestClient) -> None:
    slots = small.app.state.ingest_slots  # type: ignore[attr-defined]
    assert slots.acquire(blocking=False)
    try:
        r = small.post("/ingest", content=unique_message("BUSY", 1), headers=HL7)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1" and _is_outcome(r)
        assert small.app.state.store.ingestion_count() == 0  # type: ignore[attr-defined]
    finally:
        slots.release()
    assert small.post("/ingest", content=unique_message("BUSY", 1), headers=HL7).status_code == 201


def test_mllp_beyond_the_slots_answers_ae_busy_resend(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'busy.db'}")
    slots = threading.BoundedSemaphore(1)
    loop = asyncio.new_event_loop()
    server = MLLPServer(mllp_handler(store, slots), "127.0.0.1", 0, on_bad_frame=bad_frame_reply)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        slots.acquire()
        ack = send_message("127.0.0.1", server.port, unique_message("BUSY", 2))
        slots.release()
        assert msa(ack)[1:4] == ["AE", "BUSY-2", "busy, resend"]
        assert b"\rERR|" in ack and b"busy, resend" in ack.split(b"\rERR|")[1]
        assert store.ingestion_count() == 0
        assert msa(send_message("127.0.0.1", server.port, unique_message("BUSY", 2)))[1] == "AA"
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        store.close()


def test_json_nested_too_deeply_or_too_wide_is_refused() -> None:
    limits = Limits(json_max_depth=10, json_max_fields=100)
    with pytest.raises(GatewayError) as deep:
        read_json(b"[" * 11 + b"]" * 11, limits)
    assert deep.value.status == 400 and deep.value.issues[0].code == "too-long"
    with pytest.raises(GatewayError) as wide:
        read_json(b"[" + b"0," * 200 + b"0]", limits)
    assert wide.value.status == 413
    assert read_json(b'{"a":"[[[[[[[[[[[[[[[[,,,,,,,,,"}', limits) == {"a": "[[[[[[[[[[[[[[[[,,,,,,,,,"}
    with pytest.raises(GatewayError) as bad:
        read_json(b'{"a":\n 1,}', limits)
    assert bad.value.issues[0].location.startswith("line 2, column ")


def test_every_fhir_example_reads_within_the_default_limits() -> None:
    examples = sorted(FIXTURES.glob("fhir/**/*.json"))
    assert examples
    for path in examples:
        assert isinstance(read_json(path.read_bytes(), Limits()), dict), path


def test_limits_come_from_the_environment() -> None:
    limits = Limits.from_env({"GATEWAY_RATE_LIMIT": "0", "GATEWAY_MAX_INFLIGHT": "3",
                              "GATEWAY_HTTP_HEADER_TIMEOUT": "2.5"})
    assert (limits.rate_per_second, limits.max_inflight_ingest, limits.http_header_timeout) == (0, 3, 2.5)
    with pytest.raises(ValueError, match="GATEWAY_MAX_INFLIGHT"):
        Limits.from_env({"GATEWAY_MAX_INFLIGHT": "many"})
    with pytest.raises(ValueError, match="must be positive"):
        Limits.from_env({"GATEWAY_JSON_MAX_DEPTH": "0"})


def test_normal_traffic_never_meets_the_default_limits(tmp_path: Path) -> None:
    with _app(tmp_path, Limits()) as c:
        assert c.post("/ingest", content=sample("VXU.hl7"), headers=HL7).status_code == 201
        assert all(c.get("/fhir/Patient").status_code == 200 for _ in range(100))
    c.app.state.store.close()  # type: ignore[attr-defined]
