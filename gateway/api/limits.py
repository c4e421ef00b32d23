"""Limits that keep one client or one input from taking the gateway down.

- **Request bodies** (:class:`BodyGuard`, an ASGI middleware): a declared
  ``Content-Length`` above ``Settings.max_body_bytes`` is refused at once
  (413); a body that grows past it while it is read is refused too; a body
  whose next chunk does not arrive within ``http_body_timeout`` seconds, or
  that is not complete within ``http_request_timeout``, answers 408.
- **JSON bodies** (:func:`read_json`): size, nesting depth and the number of
  members and items are bounded *before* the document is built in memory;
  what is not strict UTF-8 JSON (BOM aside) is refused with a located 400.
- **Per-client rate** (:func:`rate_limit`, an app-wide dependency that runs
  after authentication): a token bucket per verified client id (the caller's
  issuer and ``client_id``; the peer address for the open routes). When a
  client runs dry it gets 429 with ``Retry-After``, and the first refusal of
  a run of refusals is recorded as an AuditEvent.
- **Per point of care** (same dependency): a token bucket per healthcare
  facility (the token's IUA ``subject_organization_id``), shared by all its
  clients and users, so that a facility cannot exceed its threshold by
  spreading requests; a caller without one is counted by its client only.
- **Per patient** (:class:`PatientLimiter`, consulted by
  :class:`gateway.access.RecordAccess` before it audits a read, search or
  operation, through ``READ_LIMITS`` set by the same dependency): a token
  bucket per patient, shared by every caller, bounds how often one record
  is read (a record being scraped); and one person reading in user context
  (a clinician, a trusted contact) may read the records of at most
  ``distinct_patients`` different patients in a sliding window of
  ``distinct_patients_window`` seconds (browsing many records). A citizen
  reading their own record and system clients (ingestion, bulk export,
  national services: population-level by design) are not counted for
  distinct patients. A refusal is a 429 with ``Retry-After`` naming the
  threshold; the first refusal of a run is audited once per patient
  concerned, so that the citizen sees it in their access log.
- **In-flight ingestion** (``app.state.ingest_slots``, a bounded semaphore
  shared by HTTP ``/ingest`` and the MLLP listener of the same process):
  when every slot is taken, HTTP answers 503 with ``Retry-After`` and MLLP an
  ``AE`` whose ERR says "busy, resend".
- **Slow clients** (:func:`server_options` for ``gateway serve``): the HTTP
  request head must arrive within ``http_header_timeout`` seconds of the
  connection (or of the previous response), idle keep-alive connections are
  closed after ``http_keep_alive`` seconds, and at most
  ``http_max_connections`` are served at once; the MLLP listener closes
  connections idle for ``mllp_idle_timeout`` seconds.

Every number comes from :class:`Limits`; :meth:`Limits.from_env` reads the
``GATEWAY_*`` variables listed in ``ENVIRONMENT``; ``GATEWAY_RATE_LIMIT=0``
turns every rate threshold off (client, point of care, patient). Limits hold
per process: with ``--workers N`` each worker has its own buckets, windows
and slots. Their memory is bounded (``MAX_KEYS`` buckets, ``MAX_PEOPLE``
windows): under pressure the idle ones are forgotten first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, fields
from typing import Any, cast

import orjson
from fastapi import FastAPI, Request

from ..access.caller import Caller
from ..access.record import READ_LIMITS, RecordAccess
from ..errors import GatewayError, Issue, IssueCode, PayloadTooLarge, RejectedInput
from ..fhir.jsonio import dumps
from ..fhir.outcome import operation_outcome

__all__ = [
    "ENVIRONMENT",
    "BodyGuard",
    "Limits",
    "PatientLimiter",
    "RateLimiter",
    "RateLimits",
    "RequestTimeout",
    "ServiceBusy",
    "TooManyRequests",
    "check_json",
    "ingest_slot",
    "install_limits",
    "rate_limit",
    "read_json",
    "server_options",
]

logger = logging.getLogger("gateway.api.limits")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """Every configurable limit; the defaults are generous (a normal client
    never meets them) and bound what a hostile one can do."""

    json_max_depth: int = 64
    json_max_fields: int = 500_000
    rate_per_second: float = 200.0  # per client and process; 0 turns every rate threshold off
    rate_burst: int = 2_000
    care_rate_per_second: float = 1_000.0  # per point of care (all its clients); 0: off
    care_rate_burst: int = 10_000
    patient_rate_per_second: float = 1.0  # reads of one patient's record, all callers; 0: off
    patient_rate_burst: int = 300
    distinct_patients: int = 100  # patients one person may read in the window; 0: off
    distinct_patients_window: int = 3_600  # seconds
    max_inflight_ingest: int = 64
    retry_after_seconds: int = 1
    http_header_timeout: float = 10.0
    http_body_timeout: float = 15.0
    http_request_timeout: float = 120.0
    http_keep_alive: int = 5
    http_max_connections: int = 1_024
    mllp_idle_timeout: float = 60.0
    db_timeout: float = 30.0  # longest wait for one database statement (a lock, a stalled server); 0: none

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, overridden by the ``GATEWAY_*`` variables of ``ENVIRONMENT``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENVIRONMENT[f.name]
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            kind = float if f.type in ("float", float) else int
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r}: expected a number") from None
            if value < 0 or (value == 0 and f.name not in _MAY_BE_OFF):
                raise ValueError(f"{name}={raw!r}: must be positive")
            values[f.name] = value
        return cls(**values)


ENVIRONMENT: dict[str, str] = {
    "json_max_depth": "GATEWAY_JSON_MAX_DEPTH",
    "json_max_fields": "GATEWAY_JSON_MAX_FIELDS",
    "rate_per_second": "GATEWAY_RATE_LIMIT",
    "rate_burst": "GATEWAY_RATE_BURST",
    "care_rate_per_second": "GATEWAY_CARE_RATE_LIMIT",
    "care_rate_burst": "GATEWAY_CARE_RATE_BURST",
    "patient_rate_per_second": "GATEWAY_PATIENT_RATE_LIMIT",
    "patient_rate_burst": "GATEWAY_PATIENT_RATE_BURST",
    "distinct_patients": "GATEWAY_DISTINCT_PATIENTS",
    "distinct_patients_window": "GATEWAY_DISTINCT_PATIENTS_WINDOW",
    "max_inflight_ingest": "GATEWAY_MAX_INFLIGHT",
    "retry_after_seconds": "GATEWAY_RETRY_AFTER",
    "http_header_timeout": "GATEWAY_HTTP_HEADER_TIMEOUT",
    "http_body_timeout": "GATEWAY_HTTP_BODY_TIMEOUT",
    "http_request_timeout": "GATEWAY_HTTP_REQUEST_TIMEOUT",
    "http_keep_alive": "GATEWAY_HTTP_KEEPALIVE",
    "http_max_connections": "GATEWAY_HTTP_MAX_CONNECTIONS",
    "mllp_idle_timeout": "GATEWAY_MLLP_IDLE_TIMEOUT",
    "db_timeout": "GATEWAY_DB_TIMEOUT",
}
_MAY_BE_OFF = frozenset({"rate_per_second", "care_rate_per_second", "patient_rate_per_second",
                         "distinct_patients", "db_timeout"})


# --------------------------------------------------------------------------- errors


def _code(code: str) -> IssueCode:
    """FHIR issue types beyond those the readers use (timeout, throttled, transient)."""
    return cast(IssueCode, code)


class _WithRetry(GatewayError):
    """A refusal that tells the client when to come back."""

    def __init__(self, message: str, issues: list[Issue], retry_after: int) -> None:
        super().__init__(message, issues)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class TooManyRequests(_WithRetry):
    status = 429


class ServiceBusy(_WithRetry):
    status = 503


class RequestTimeout(GatewayError):
    status = 408


# --------------------------------------------------------------------------- JSON


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def read_json(body: bytes, limits: Limits, max_bytes: int | None = None) -> Any:
    """The JSON value in ``body``, within ``limits``; else a 400/413 GatewayError.

    The structure is counted on the raw bytes first, so that a body of many
    tiny containers is refused before it becomes millions of objects."""
    if max_bytes is not None and len(body) > max_bytes:
        raise PayloadTooLarge("body too large", [Issue(
            "error", "too-long", f"body of {len(body)} bytes exceeds {max_bytes}")])
    data = body[3:] if body.startswith(b"\xef\xbb\xbf") else body
    check_json(data, limits)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line = data.count(b"\n", 0, exc.pos) + 1
        column = exc.pos - (data.rfind(b"\n", 0, exc.pos) + 1) + 1
        raise RejectedInput("not JSON", [Issue(
            "error", "structure", f"not JSON: {exc.msg}", f"line {line}, column {column}")]) from None


def check_json(data: bytes, limits: Limits) -> None:
    """Refuse JSON text whose nesting or member and item count exceeds the limits."""
    quick = data.count(b",") + data.count(b"[") + data.count(b"{")
    if quick <= limits.json_max_fields and quick < limits.json_max_depth:
        return
    bare = _STRING.sub(b'""', data)
    fields_n = bare.count(b",") + bare.count(b"[") + bare.count(b"{")
    if fields_n > limits.json_max_fields:
        raise PayloadTooLarge("too many JSON fields", [Issue(
            "error", "too-long",
            f"the JSON body has about {fields_n} members and items; at most "
            f"{limits.json_max_fields} are accepted")])
    depth = 0
    for m in _BRACKETS.finditer(bare):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > limits.json_max_depth:
                raise RejectedInput("JSON nested too deeply", [Issue(
                    "error", "too-long",
                    f"the JSON body nests deeper than {limits.json_max_depth} levels",
                    f"byte {m.start()}")])
        else:
            depth -= 1


# --------------------------------------------------------------------------- bodies


def _outcome_bytes(issues: list[Issue]) -> bytes:
    return dumps(operation_outcome(issues))


async def _send_outcome(send: Send, status: int, issues: list[Issue]) -> None:
    body = _outcome_bytes(issues)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/fhir+json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """ASGI middleware: bounded request bodies, read within fixed time."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, max_bytes: int,
                 chunk_timeout: float, total_timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.chunk_timeout = chunk_timeout
        self.total_timeout = total_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await _send_outcome(send, 413, [Issue(
                "error", "too-long", f"body of {int(declared)} bytes exceeds {self.max_bytes}")])
            return
        state = {"received": 0, "complete": False, "deadline": 0.0}

        async def guarded() -> Message:
            if state["complete"]:
                return await receive()
            now = time.monotonic()
            if not state["deadline"]:
                state["deadline"] = now + self.total_timeout
            wait = min(self.chunk_timeout, state["deadline"] - now)
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout("request body too slow", [Issue(
                    "error", _code("timeout"), "the request body did not arrive in time")]) from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["complete"] = not message.get("more_body", False)
                if state["received"] > self.max_bytes:
                    raise PayloadTooLarge("body too large", [Issue(
                        "error", "too-long", f"the body exceeds {self.max_bytes} bytes")])
            else:
                state["complete"] = True
            return message

        await self.app(scope, guarded, send)


# --------------------------------------------------------------------------- rate


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    refusing: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    first_refusal: bool = False


class RateLimiter:
    """Token buckets per key: ``rate`` tokens a second, at most ``burst``."""

    MAX_KEYS = 10_000

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, key: str, now: float, make_room: bool = True) -> _Bucket:
        """``key``'s bucket, refilled up to ``now`` (lock held)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if make_room and len(self._buckets) >= self.MAX_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        return bucket

    def _refuse(self, bucket: _Bucket) -> Verdict:
        first = not bucket.refusing
        bucket.refusing = True
        return Verdict(False, math.ceil((1.0 - bucket.tokens) / self.rate), first)

    def take(self, key: str) -> Verdict:
        now = self._clock()
        with self._lock:
            bucket = self._bucket(key, now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                bucket.refusing = False
                return Verdict(True)
            return self._refuse(bucket)

    def take_all(self, keys: Collection[str]) -> dict[str, Verdict]:
        """A token from the bucket of every key, or from none: the refusals
        (empty when every bucket had a token)."""
        now = self._clock()
        with self._lock:
            if len(self._buckets) + len(keys) > self.MAX_KEYS:
                self._forget_full(now)  # first: the buckets made below must not be forgotten
            buckets = [(key, self._bucket(key, now, make_room=False)) for key in keys]
            refused = {key: self._refuse(b) for key, b in buckets if b.tokens < 1.0}
            if not refused:
                for _, bucket in buckets:
                    bucket.tokens -= 1.0
                    bucket.refusing = False
            return refused

    def _forget_full(self, now: float) -> None:
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.stamp) * self.rate >= self.burst]
        for k in full or list(self._buckets)[: self.MAX_KEYS // 2]:
            del self._buckets[k]


@dataclass(slots=True)
class _Browsing:
    seen: dict[str, float]  # patient -> when last read
    audited: set[str]  # patients whose refusal in the current run is audited
    last: float = -math.inf  # the latest read let through


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a read is refused: the threshold (text), when to come back, and
    the patients whose refusal starts a run (one AuditEvent each)."""

    text: str
    retry_after: int
    audit: tuple[str, ...]


class PatientLimiter:
    """The per-patient thresholds: a token bucket per patient (reads of one
    record by every caller), and per person the distinct patients read in a
    sliding window. :meth:`check` is what :data:`READ_LIMITS` holds."""

    MAX_PEOPLE = 10_000
    MAX_AUDITED = 1_000  # refused patients remembered per person and run

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.reads = (RateLimiter(limits.patient_rate_per_second, limits.patient_rate_burst, clock)
                      if limits.patient_rate_per_second > 0 else None)
        self.distinct = limits.distinct_patients
        self.window = float(limits.distinct_patients_window)
        self._clock = clock
        self._people: dict[str, _Browsing] = {}
        self._lock = threading.Lock()

    def admit(self, person: str | None, patients: Collection[str]) -> Refusal | None:
        """Count a read of ``patients`` by ``person`` (None: a caller whose
        distinct patients are not counted), or the refusal, counting nothing."""
        with self._lock:
            now = self._clock()
            browsing = None
            if person is not None and self.distinct > 0:
                browsing = self._browsing(person, now)
                refusal = self._too_many(person, browsing, patients, now)
                if refusal is not None:
                    return refusal
            if self.reads is not None:
                refused = self.reads.take_all(patients)
                if refused:
                    names = sorted(refused)
                    listed = ", ".join(f"Patient/{p}" for p in names[:3])
                    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
                    return Refusal(
                        f"per-patient threshold: the record of {listed}{more} may be read "
                        f"{self.reads.burst} times in a burst, then {self.reads.rate:g} times a "
                        f"second, by all clients together",
                        max(v.retry_after for v in refused.values()),
                        tuple(p for p in names if refused[p].first_refusal))
            if browsing is not None:
                if any(p not in browsing.seen for p in patients):
                    browsing.audited.clear()  # a new patient was let through: the run is over
                for p in patients:
                    browsing.seen[p] = now
                browsing.last = now
            return None

    def _browsing(self, person: str, now: float) -> _Browsing:
        browsing = self._people.get(person)
        if browsing is None:
            if len(self._people) >= self.MAX_PEOPLE:
                cutoff = now - self.window
                idle = [k for k, b in self._people.items() if b.last <= cutoff]
                for k in idle or list(self._people)[: self.MAX_PEOPLE // 2]:
                    del self._people[k]
            browsing = self._people[person] = _Browsing({}, set())
        return browsing

    def _too_many(self, person: str, browsing: _Browsing, patients: Collection[str],
                  now: float) -> Refusal | None:
        seen = browsing.seen
        new = [p for p in patients if p not in seen]
        if not new or len(seen) + len(new) <= self.distinct:
            return None
        cutoff = now - self.window  # only now is it worth dropping who left the window
        for p in [p for p, t in seen.items() if t <= cutoff]:
            del seen[p]
        new = [p for p in patients if p not in seen]
        excess = len(seen) + len(new) - self.distinct
        if excess <= 0:
            return None
        times = sorted(seen.values())
        wait = times[excess - 1] + self.window - now if excess <= len(times) else self.window
        first = tuple(p for p in sorted(new) if p not in browsing.audited)
        if len(browsing.audited) < self.MAX_AUDITED:
            browsing.audited.update(first)
        who = person.split(" ", 1)[-1]  # the key is "<issuer> <user>"
        return Refusal(f"distinct-patient threshold: {who} may read the records of at most "
                       f"{self.distinct} different patients within {self.window:g} seconds",
                       max(1, math.ceil(wait)), first)

    def check(self, access: RecordAccess, interaction: str, patients: set[str], query: str | None) -> None:
        """Let ``access`` read ``patients``, or refuse the request (429); the
        first refusal of a run is audited for each patient concerned."""
        refusal = self.admit(_person(access.caller), patients)
        if refusal is None:
            return
        if refusal.audit:
            events = [access.event(interaction, p, [], outcome="minor", query=query, description=refusal.text)
                      for p in refusal.audit]
            try:
                access.store.write(events)
            except Exception:  # the refusal stands; the log says why it is not audited
                logger.exception("could not store the AuditEvents of a per-patient refusal")
        raise TooManyRequests("rate limit exceeded", [Issue("error", _code("throttled"),
                                                            f"{refusal.text}; retry later")],
                              refusal.retry_after)


def _person(caller: Caller) -> str | None:
    """Whose distinct patients are counted: a person reading in user context
    (a clinician, a citizen's trusted contact), by issuer and user, or a person
    a peer gateway vouches for (SAML subject over XCA). Not a citizen reading
    their own record, nor a system client on its own behalf."""
    vouched = caller.extra.get("vouched_person")
    if vouched:
        return f"{caller.issuer} {vouched}"
    if caller.kind != "user":
        return None
    who = (f"Practitioner/{caller.practitioner}" if caller.practitioner
           else f"RelatedPerson/{caller.related_person}" if caller.related_person
           else caller.subject or caller.client_id)
    return f"{caller.issuer} {who}"


@dataclass(slots=True)
class RateLimits:
    """The rate thresholds of one app (``app.state.rate_limits``; None: off),
    in one place so that the per-request path looks them up once."""

    client: RateLimiter | None = None
    care: RateLimiter | None = None
    patients: PatientLimiter | None = None


_OFF = RateLimits()


async def rate_limit(request: Request) -> None:
    """App-wide dependency (after authentication): 429 when the caller's
    bucket, or its point of care's, is empty; the first refusal of a run is
    audited. Hands the per-patient thresholds to the request's record reads."""
    rates: RateLimits = getattr(request.app.state, "rate_limits", _OFF)
    READ_LIMITS.set(rates.patients.check if rates.patients is not None else None)
    limiter = rates.client
    if limiter is None:
        return
    caller: Caller | None = getattr(request.state, "caller", None)
    address = request.client.host if request.client else "unknown"
    key = f"client {caller.issuer} {caller.client_id}" if caller is not None else f"address {address}"
    verdict = limiter.take(key)
    if not verdict.allowed:
        who = caller.client_id if caller is not None else address
        await _refuse(request, caller, address, verdict,
                      f"client {who!r} exceeded its rate limit of {limiter.rate:g} requests a second "
                      f"(burst {limiter.burst})")
    care = rates.care
    if care is not None and caller is not None and caller.point_of_care:
        verdict = care.take(_care_key(caller))
        if not verdict.allowed:
            await _refuse(request, caller, address, verdict, _care_text(caller, care))


def _care_key(caller: Caller) -> str:
    return f"care {caller.issuer} {caller.point_of_care}"


def _care_text(caller: Caller, care: RateLimiter) -> str:
    return (f"point of care {caller.point_of_care!r} exceeded its rate limit of {care.rate:g} "
            f"requests a second (burst {care.burst}), all its clients together")


def admit_point_of_care(request: Request, caller: Caller) -> None:
    """The point-of-care threshold for a caller that only the route can tell
    (XCA: the facility named in the SAML assertion): 429, audited, as
    :func:`rate_limit` answers it. Runs in the route's thread."""
    rates: RateLimits = getattr(request.app.state, "rate_limits", _OFF)
    care = rates.care
    if care is None or not caller.point_of_care:
        return
    verdict = care.take(_care_key(caller))
    if not verdict.allowed:
        address = request.client.host if request.client else "unknown"
        text = _care_text(caller, care)
        if verdict.first_refusal:
            _store_refusal(request, _refusal_event(request, caller, address, text))
        raise _too_many(text, verdict)


async def _refuse(request: Request, caller: Caller | None, address: str, verdict: Verdict,
                  text: str) -> None:
    """Raise the 429; audit it first if it starts a run of refusals."""
    if verdict.first_refusal:
        await asyncio.to_thread(_store_refusal, request, _refusal_event(request, caller, address, text))
    raise _too_many(text, verdict)


def _refusal_event(request: Request, caller: Caller | None, address: str, text: str) -> dict[str, Any]:
    from ..access.audit import audit_event

    return audit_event(caller, "operation", patient=None, what=[],
                       request_id=request.headers.get("x-request-id") or str(uuid.uuid4()),
                       outcome="minor", query=f"{request.method} {request.url.path}",
                       client_address=address, description=text)


def _store_refusal(request: Request, event: dict[str, Any]) -> None:
    try:
        request.app.state.store.write([event])
    except Exception:  # the refusal stands; the log says why it is not audited
        logger.exception("could not store the AuditEvent of a rate-limit refusal")


def _too_many(text: str, verdict: Verdict) -> TooManyRequests:
    return TooManyRequests("rate limit exceeded", [Issue("error", _code("throttled"), f"{text}; retry later")],
                           verdict.retry_after)


# --------------------------------------------------------------------------- in flight


@contextlib.contextmanager
def ingest_slot(request: Request) -> Iterator[None]:
    """``with ingest_slot(request):`` one of the process's ingestion slots, or 503."""
    slots: threading.BoundedSemaphore | None = getattr(request.app.state, "ingest_slots", None)
    if slots is not None and not slots.acquire(blocking=False):
        limits: Limits | None = getattr(request.app.state, "limits", None)
        raise ServiceBusy("busy", [Issue(
            "error", _code("transient"),
            "the gateway is at its limit of messages in progress: busy, resend")],
            limits.retry_after_seconds if limits else 1)
    try:
        yield
    finally:
        if slots is not None:
            slots.release()


# --------------------------------------------------------------------------- wiring


def install_limits(app: FastAPI, max_body_bytes: int, limits: Limits | None = None) -> Limits:
    """Put the limits on ``app``: body guard, rate limiters, ingestion slots."""
    chosen = limits or Limits.from_env()
    app.state.limits = chosen
    app.state.ingest_slots = threading.BoundedSemaphore(chosen.max_inflight_ingest)
    if chosen.rate_per_second > 0:  # GATEWAY_RATE_LIMIT=0 turns every rate threshold off
        app.state.rate_limits = RateLimits(
            RateLimiter(chosen.rate_per_second, chosen.rate_burst),
            RateLimiter(chosen.care_rate_per_second, chosen.care_rate_burst)
            if chosen.care_rate_per_second > 0 else None,
            PatientLimiter(chosen)
            if chosen.patient_rate_per_second > 0 or chosen.distinct_patients > 0 else None)
    else:
        app.state.rate_limits = RateLimits()
    app.add_middleware(BodyGuard, max_bytes=max_body_bytes, chunk_timeout=chosen.http_body_timeout,
                       total_timeout=chosen.http_request_timeout)
    return chosen


def server_options(limits: Limits) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``: the HTTP protocol (httptools'
    C parser when installed, else h11) with a request-head deadline,
    slow-client timeouts and the connection limit."""
    return {"http": _guarded_protocol(limits.http_header_timeout),
            "timeout_keep_alive": limits.http_keep_alive,
            "limit_concurrency": limits.http_max_connections}


def _guarded_protocol(header_timeout: float) -> type:
    """uvicorn's HTTP protocol with a deadline for the request head: a client
    that connects and sends nothing, or sends its headers a byte at a time,
    is disconnected after ``header_timeout`` seconds."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools not installed
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class GuardedProtocol(Base):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is None or self.cycle.response_complete:
                if self._head_timer is None:
                    self._arm()
            else:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
                self.transport.close()

    return GuardedProtocol
