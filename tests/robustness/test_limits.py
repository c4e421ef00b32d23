"""Configured limits with small values: body size (413), per-client rate
(429 with Retry-After, one AuditEvent per run of refusals), per point of
care, per patient (reads of one record by every caller; distinct patients
one clinician reads in a window), ingestion in flight (HTTP 503 with
Retry-After, MLLP AE "busy, resend"), JSON depth and member counts."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.access.tokens import Unauthorized, load_auth, mint, verify
from gateway.api import create_app
from gateway.api.limits import Limits, PatientLimiter, RateLimiter, read_json
from gateway.errors import GatewayError
from gateway.ingest import bad_frame_reply, mllp_handler
from gateway.mllp import MLLPServer, send_message
from gateway.records import Store
from gateway.settings import Settings
from tests.citizen.helpers import load, share
from tests.conftest import FIXTURES, ROOT, bearer, sample
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
    limits = Limits.from_env({"GATEWAY_CARE_RATE_LIMIT": "50", "GATEWAY_PATIENT_RATE_LIMIT": "0",
                              "GATEWAY_PATIENT_RATE_BURST": "20", "GATEWAY_DISTINCT_PATIENTS": "30",
                              "GATEWAY_DISTINCT_PATIENTS_WINDOW": "900"})
    assert (limits.care_rate_per_second, limits.patient_rate_per_second, limits.patient_rate_burst,
            limits.distinct_patients, limits.distinct_patients_window) == (50, 0, 20, 30, 900)
    with pytest.raises(ValueError, match="GATEWAY_DISTINCT_PATIENTS_WINDOW"):
        Limits.from_env({"GATEWAY_DISTINCT_PATIENTS_WINDOW": "0"})
    with pytest.raises(ValueError, match="GATEWAY_DISTINCT_PATIENTS"):
        Limits.from_env({"GATEWAY_DISTINCT_PATIENTS": "-1"})


def test_one_switch_turns_every_rate_threshold_off(tmp_path: Path) -> None:
    with _app(tmp_path, Limits.from_env({"GATEWAY_RATE_LIMIT": "0"})) as c:
        rates = c.app.state.rate_limits  # type: ignore[attr-defined]
        assert (rates.client, rates.care, rates.patients) == (None, None, None)
    c.app.state.store.close()  # type: ignore[attr-defined]


def test_normal_traffic_never_meets_the_default_limits(tmp_path: Path) -> None:
    with _app(tmp_path, Limits()) as c:
        assert c.post("/ingest", content=sample("VXU.hl7"), headers=HL7).status_code == 201
        assert all(c.get("/fhir/Patient").status_code == 200 for _ in range(100))
    c.app.state.store.close()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- per point of care


def _token(c: TestClient, client_id: str, **kw: Any) -> dict[str, str]:
    token = mint(c.app.state.auth, scope=kw.pop("scope", "system/*.cruds"),  # type: ignore[attr-defined]
                 subject=kw.pop("subject", client_id), client_id=client_id, **kw)
    return {"Authorization": f"Bearer {token}"}


def _events(c: TestClient, text: str) -> list[dict[str, Any]]:
    return [e for e in c.app.state.store.search("AuditEvent", limit=1000)  # type: ignore[attr-defined]
            if text in e.get("outcomeDesc", "")]


def _patients(c: TestClient, *messages: bytes) -> list[str]:
    out = []
    for m in messages:
        r = c.post("/ingest", content=m, headers=HL7)
        assert r.status_code == 201, r.text
        out += [e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                if e["response"]["location"].startswith("Patient/")]
    return out


def _diagnostics(r: Any) -> str:
    return str(r.json()["issue"][0]["diagnostics"])


def test_the_clients_of_one_point_of_care_share_its_bucket(tmp_path: Path) -> None:
    with _app(tmp_path, Limits(care_rate_per_second=0.01, care_rate_burst=3)) as c:
        ward = _token(c, "ward-app", point_of_care="urn:oid:1.2.3.4")
        lab = _token(c, "lab-app", point_of_care="urn:oid:1.2.3.4")
        assert [c.get("/fhir/Patient", headers=h).status_code for h in (ward, lab, ward)] == [200] * 3
        refused = c.get("/fhir/Patient", headers=lab)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "point of care 'urn:oid:1.2.3.4'" in _diagnostics(refused)
        assert c.get("/fhir/Patient", headers=ward).status_code == 429  # the same run: not audited again
        # another facility, and a client without one, have their own buckets
        assert c.get("/fhir/Patient", headers=_token(c, "x", point_of_care="urn:oid:9.9")).status_code == 200
        assert c.get("/fhir/Patient", headers=_token(c, "plain-app")).status_code == 200
        events = _events(c, "point of care")
        assert len(events) == 1
        agents = events[0]["agent"]
        assert agents[0]["who"]["identifier"]["value"] == "lab-app"
        assert agents[1]["who"] == {"type": "Organization", "identifier": {"value": "urn:oid:1.2.3.4"}}
    c.app.state.store.close()  # type: ignore[attr-defined]


def test_a_token_names_its_point_of_care_and_the_cli_mints_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "token", "--practitioner", "dr-9",
                        "--point-of-care", "urn:oid:2.16.840.1.113883.19.5", "--home", str(home)],
                       check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    config = load_auth(home)
    caller = verify(config, r.stdout.strip())
    assert (caller.practitioner, caller.point_of_care) == ("dr-9", "urn:oid:2.16.840.1.113883.19.5")
    assert verify(config, mint(config, scope="system/*.rs", subject="s")).point_of_care is None
    from joserfc import jwt

    claims = {"iss": config.issuer, "aud": config.audience, "sub": "s", "scope": "system/*.rs",
              "exp": 2**31, "extensions": {"ihe_iua": {"subject_organization_id": 42}}}
    bad = jwt.encode({"alg": "ES256"}, claims, config.signing_key)
    with pytest.raises(Unauthorized):
        verify(config, bad)


# --------------------------------------------------------------------------- per patient


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _clocked(c: TestClient) -> _Clock:
    """The app's per-patient limiter, on a clock the test moves."""
    clock = _Clock()
    c.app.state.rate_limits.patients = PatientLimiter(c.app.state.limits, clock=clock)  # type: ignore[attr-defined]
    return clock


def test_reads_of_one_record_are_bounded_across_all_callers(tmp_path: Path) -> None:
    with _app(tmp_path, Limits(patient_rate_per_second=0.5, patient_rate_burst=3)) as c:
        clock = _clocked(c)
        x, y = _patients(c, unique_message("PR", 1), unique_message("PR", 2))
        assert c.get(f"/fhir/Patient/{x}").status_code == 200
        assert c.get(f"/fhir/Patient/{x}/$summary").status_code == 200
        assert c.get("/fhir/Observation", params={"patient": x}).status_code == 200
        other = _token(c, "another-system")
        refused = c.get(f"/fhir/Patient/{x}/$everything", headers=other)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
        assert _is_outcome(refused) and "per-patient threshold" in _diagnostics(refused)
        assert f"Patient/{x}" in _diagnostics(refused)
        assert c.get(f"/fhir/Patient/{x}").status_code == 429
        # a search that touches the dry record is refused as a whole; the other record is not charged
        assert c.get("/fhir/Patient").status_code == 429
        assert [c.get(f"/fhir/Patient/{y}").status_code for _ in range(3)] == [200] * 3
        events = _events(c, "per-patient threshold")
        assert len(events) == 1  # the first refusal of the run
        assert events[0]["entity"][0]["what"]["reference"] == f"Patient/{x}"
        assert events[0]["agent"][0]["who"]["identifier"]["value"] == "another-system"
        # later, the citizen sees the refusal in their access log
        clock.now += 2
        me = bearer(c.app, patient=x)
        log = c.get("/fhir/AuditEvent", params={"patient": x, "_count": "200"}, headers=me)
        assert log.status_code == 200
        assert any("per-patient threshold" in e["resource"].get("outcomeDesc", "") for e in log.json()["entry"])
    c.app.state.store.close()  # type: ignore[attr-defined]


def test_a_clinician_reading_too_many_different_patients_is_refused(tmp_path: Path) -> None:
    with _app(tmp_path, Limits(distinct_patients=2, distinct_patients_window=600)) as c:
        clock = _clocked(c)
        p1, p2, p3 = _patients(c, *(unique_message("DP", n) for n in range(3)))
        for pid in (p1, p2, p3):
            share(c, pid, {"sections": "all"})
        dr = bearer(c.app, practitioner="dr-1")
        assert [c.get(f"/fhir/Patient/{p}", headers=dr).status_code for p in (p1, p2, p1)] == [200] * 3
        clock.now += 100
        refused = c.get(f"/fhir/Patient/{p3}/$summary", headers=dr)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "500"
        assert "distinct-patient threshold: Practitioner/dr-1" in _diagnostics(refused)
        assert c.get(f"/fhir/Patient/{p2}", headers=dr).status_code == 200  # already read: still open
        assert c.get(f"/fhir/Patient/{p3}", headers=dr).status_code == 429
        events = _events(c, "distinct-patient threshold")
        assert len(events) == 1
        assert events[0]["entity"][0]["what"]["reference"] == f"Patient/{p3}"
        assert events[0]["agent"][0]["who"]["reference"] == "Practitioner/dr-1"
        # the citizen sees the refused attempt; the citizen's own reads are not counted
        log = c.get("/fhir/AuditEvent", params={"patient": p3}, headers=bearer(c.app, patient=p3)).json()
        assert any("distinct-patient" in e["resource"].get("outcomeDesc", "") for e in log["entry"])
        # another clinician has a window of their own; the first one's reopens with time
        share(c, p3, {"sections": "all"}, pr="dr-2")
        assert c.get(f"/fhir/Patient/{p3}", headers=bearer(c.app, practitioner="dr-2")).status_code == 200
        clock.now += 501
        assert c.get(f"/fhir/Patient/{p3}", headers=dr).status_code == 200
    c.app.state.store.close()  # type: ignore[attr-defined]


def test_citizens_and_national_systems_are_not_counted_for_distinct_patients(tmp_path: Path) -> None:
    with _app(tmp_path, Limits(distinct_patients=1)) as c:
        maria, other = load(c)  # Maria's record spans two linked Patients
        me = bearer(c.app, patient=maria)
        for _ in range(3):
            everything = c.get(f"/fhir/Patient/{maria}/$everything", headers=me)
            assert everything.status_code == 200
        assert len({e["resource"]["id"] for e in everything.json()["entry"]
                    if e["resource"]["resourceType"] == "Patient"}) == 2
        assert all(c.post("/ingest", content=unique_message("NS", n), headers=HL7).status_code == 201
                   for n in range(20))
        listed = c.get("/fhir/Patient", params={"_count": "100"})
        assert listed.status_code == 200 and listed.json()["total"] >= 22
        assert c.get(f"/fhir/Patient/{other}/$summary").status_code == 200
    c.app.state.store.close()  # type: ignore[attr-defined]


def test_the_patient_limiter_counts_a_sliding_window_and_all_or_nothing() -> None:
    clock = _Clock()
    limiter = PatientLimiter(Limits(patient_rate_per_second=1, patient_rate_burst=2, distinct_patients=2,
                                    distinct_patients_window=10), clock=clock)
    assert limiter.admit("dr", {"a"}) is None
    clock.now += 4
    assert limiter.admit("dr", {"b"}) is None
    assert limiter.admit("dr", {"b"}) is None  # the same patient again
    refusal = limiter.admit("dr", {"c"})
    assert refusal is not None and refusal.retry_after == 6 and refusal.audit == ("c",)
    again = limiter.admit("dr", {"c"})
    assert again is not None and again.audit == ()  # audited once per run
    assert limiter.admit(None, {"c"}) is None  # not counted for distinct patients
    too_many = limiter.admit("other", {"d", "e", "f"})
    assert too_many is not None and too_many.retry_after == 10
    clock.now += 6  # "a" leaves the window
    assert limiter.admit("dr", {"c"}) is None
    # per patient: a token from every record of a read, or from none
    assert limiter.admit(None, {"x"}) is None and limiter.admit(None, {"x"}) is None
    refused = limiter.admit(None, {"x", "y"})
    assert refused is not None and refused.audit == ("x",) and "Patient/x" in refused.text
    assert limiter.admit(None, {"y"}) is None and limiter.admit(None, {"y"}) is None


def test_the_patient_limiter_memory_is_bounded() -> None:
    clock = _Clock()
    limiter = PatientLimiter(Limits(patient_rate_per_second=1, patient_rate_burst=5, distinct_patients=3),
                             clock=clock)
    limiter.MAX_PEOPLE = 50
    assert limiter.reads is not None
    limiter.reads.MAX_KEYS = 100
    for n in range(1000):
        assert limiter.admit(f"person {n}", {f"p{n}", f"q{n}"}) is None
    assert len(limiter._people) <= 50 and len(limiter.reads._buckets) <= 102
