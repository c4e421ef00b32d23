"""The durable outbox: deliveries to peer gateways that survive restarts
and outages (the transactional outbox pattern).

A delivery is a row of ``outbox`` (migration 0004): destination country and
URL, payload, headers, ``status`` (``pending`` → ``sending`` → ``done``, or
``dead`` after ``max_attempts``), ``attempts``, ``next_attempt_at``,
``lease_until`` and ``last_error``. :func:`enqueue_in` writes it on the
caller's connection, so it commits (or not) with the business write of the
same transaction; :func:`enqueue` is the stand-alone form.

:class:`OutboxWorker` (a thread started by ``gateway serve``) claims one due
row at a time in a short transaction: ``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL, the database write lock (``BEGIN IMMEDIATE``) on SQLite, so
several replicas share the work without taking the same row. The claim
sets ``status = sending`` and a lease (``lease_until``); the HTTP call runs
outside any transaction (no lock held across the network), and the outcome
is written only if the row still carries this claim (same ``attempts``). A
worker that dies mid-delivery leaves a lease that expires, and the row is
claimed again: delivery is *at least once*. Every attempt carries the row id
as ``Idempotency-Key``, and the receiver (``/exchange/inbox``) stores a key
once, which makes it exactly once in effect.

Calls have connect and read timeouts; a failure (network error, HTTP 408,
425, 429 or 5xx) is retried after ``base_delay · 2^(attempts-1)`` seconds
(capped at ``max_delay``) times a random jitter in [0.5, 1.5); any other 4xx
is permanent (``dead`` at once). When the destination itself did not answer
(no connection, a timeout, HTTP 408, 429, 502, 503 or 504), its other pending
deliveries are held until the failed one's next attempt (:func:`hold`): a
peer that is down or silent then costs one timeout per backoff period, not
one per queued delivery, and the deliveries to other peers go on. A 500 is
taken as this payload's problem, not the peer's, and holds nothing back.
Each delivery authenticates with a token from the destination's
``/auth/token`` (SMART Backend Services,
:func:`gateway.exchange.fhir_client.get_token`).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from ..records.schema import metadata
from .errors import ExchangeError, PeerUnavailable

__all__ = [
    "INBOX_PATH",
    "Delivery",
    "DeliveryFailed",
    "OutboxWorker",
    "claim",
    "enqueue",
    "enqueue_in",
    "hold",
    "inbox_url",
    "outbox",
    "queue_document",
    "status",
]

log = logging.getLogger("gateway.outbox")

INBOX_PATH = "/exchange/inbox"
DELIVERY_SCOPE = "system/MedicationDispense.c"
RETRYABLE = {408, 425, 429}
UNAVAILABLE = {408, 429, 502, 503, 504}  # the destination, not this delivery

outbox = Table(
    "outbox", metadata,
    Column("id", String(64), primary_key=True),
    Column("destination", String(8), nullable=False),
    Column("url", String(1024), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created", String(40), nullable=False),
    Column("done_at", String(40), nullable=True),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Delivery:
    id: str
    destination: str
    url: str
    payload: bytes
    headers: dict[str, str]
    attempts: int  # including the one this claim is for


def inbox_url(home: Path, country: str) -> str:
    """The destination's inbox, from its trust-list entry."""
    from .context import exchange_for

    return exchange_for(home).trust.peer(country).endpoint("base") + INBOX_PATH


def enqueue_in(conn: Connection, *, destination: str, url: str, payload: bytes,
               headers: dict[str, str] | None = None, delivery_id: str | None = None,
               now: float | None = None) -> str:
    """Queue a delivery on ``conn`` (commits with the caller's transaction)."""
    did = delivery_id or str(uuid.uuid4())
    conn.execute(outbox.insert().values(
        id=did, destination=destination.upper(), url=url, payload=payload,
        headers=json.dumps(headers or {}), status="pending", attempts=0,
        next_attempt_at=time.time() if now is None else now, lease_until=None, last_error=None,
        created=_stamp(), done_at=None))
    return did


def enqueue(store: Any, **kw: Any) -> str:
    """Queue a delivery in a transaction of its own."""
    with store.write_engine.begin() as conn:
        return enqueue_in(conn, **kw)


def queue_document(home: Path, store: Any, xml: bytes, country: str) -> str:
    """Sign a CDA document (XML-DSig, our signing key) and queue it for the
    inbox of ``country`` (e.g. an eDispensation for the prescribing country)."""
    from .context import exchange_for
    from .xmldsig import sign_xml

    signed = sign_xml(xml, exchange_for(home).keys["signing"])
    return enqueue(store, destination=country, url=inbox_url(home, country), payload=signed,
                   headers={"content-type": "application/hl7-cda+xml"})


def claim(store: Any, *, lease: float = 60.0, now: float | None = None) -> Delivery | None:
    """Take the next due delivery (pending and due, or sending with an
    expired lease), or None. Concurrent claimers never get the same row."""
    now = time.time() if now is None else now
    c = outbox.c
    due = or_(and_(c.status == "pending", c.next_attempt_at <= now),
              and_(c.status == "sending", c.lease_until < now))
    query = select(outbox).where(due).order_by(c.next_attempt_at).limit(1)
    with store.write_engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        if row is None:
            return None
        attempts = row.attempts + 1
        conn.execute(update(outbox).where(c.id == row.id, c.attempts == row.attempts).values(
            status="sending", lease_until=now + lease, attempts=attempts))
    return Delivery(row.id, row.destination, row.url, bytes(row.payload),
                    json.loads(row.headers), attempts)


def hold(store: Any, destination: str, until: float) -> int:
    """Defer the pending deliveries to ``destination`` due before ``until``
    to ``until`` (their attempts unchanged); how many were held back."""
    c = outbox.c
    with store.write_engine.begin() as conn:
        held = conn.execute(update(outbox).where(
            c.destination == destination, c.status == "pending", c.next_attempt_at < until).values(
            next_attempt_at=until))
    return int(held.rowcount or 0)


def _finish(store: Any, d: Delivery, **values: Any) -> bool:
    """Record an outcome if the row still carries this claim."""
    c = outbox.c
    with store.write_engine.begin() as conn:
        done = conn.execute(update(outbox).where(
            c.id == d.id, c.status == "sending", c.attempts == d.attempts).values(
            lease_until=None, **values))
    return bool(done.rowcount == 1)


class DeliveryFailed(ExchangeError):
    """One attempt failed; ``retry`` says whether another attempt may succeed,
    ``unavailable`` whether the destination itself did not answer."""

    status = 502

    def __init__(self, why: str, retry: bool, unavailable: bool = False) -> None:
        from ..errors import Issue

        super().__init__(why, [Issue("error", "exception", why)])
        self.retry = retry
        self.unavailable = unavailable


class OutboxWorker:
    """Delivers due rows of the outbox; one thread, any number of replicas."""

    def __init__(self, home: Path, store: Any, *, poll: float = 1.0, base_delay: float = 2.0,
                 max_delay: float = 600.0, max_attempts: int = 10, lease: float = 60.0,
                 timeout: httpx.Timeout | None = None) -> None:
        self.home, self.store = home, store
        self.poll, self.base_delay, self.max_delay = poll, base_delay, max_delay
        self.max_attempts, self.lease = max_attempts, lease
        self.http = httpx.Client(timeout=timeout or httpx.Timeout(30.0, connect=5.0))
        self._tokens: dict[str, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one delivery ------------------------------------------------------
    def _token(self, country: str) -> str:
        from .context import exchange_for
        from .fhir_client import get_token

        hit = self._tokens.get(country)
        if hit and hit[1] > time.time():
            return hit[0]
        ex = exchange_for(self.home)
        try:
            token = get_token(ex, ex.trust.peer(country).endpoint("base"), scope=DELIVERY_SCOPE,
                              client=self.http)
        except ExchangeError as exc:
            raise DeliveryFailed(f"no token from {country}: {exc.issues[0].message}", True,
                                 unavailable=isinstance(exc, PeerUnavailable)) from exc
        self._tokens[country] = (token, time.time() + 240)  # tokens live 5 minutes
        return token

    def _send(self, d: Delivery) -> None:
        headers = {**d.headers, "Idempotency-Key": d.id,
                   "authorization": f"Bearer {self._token(d.destination)}"}
        try:
            r = self.http.post(d.url, content=d.payload, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", True, unavailable=True) from exc
        if r.status_code == 401:
            self._tokens.pop(d.destination, None)
        if r.status_code >= 300:
            retry = r.status_code >= 500 or r.status_code in RETRYABLE or r.status_code == 401
            raise DeliveryFailed(f"HTTP {r.status_code}: {r.text[:300]}", retry,
                                 unavailable=r.status_code in UNAVAILABLE)

    def backoff(self, attempts: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempts - 1)) * random.uniform(0.5, 1.5)

    def run_once(self) -> bool:
        """Claim and attempt one delivery; False when nothing was due."""
        d = claim(self.store, lease=self.lease)
        if d is None:
            return False
        try:
            self._send(d)
        except DeliveryFailed as exc:
            dead = not exc.retry or d.attempts >= self.max_attempts
            retry_at = time.time() + self.backoff(d.attempts)
            _finish(self.store, d, status="dead" if dead else "pending",
                    next_attempt_at=time.time() if dead else retry_at,
                    last_error=str(exc.issues[0].message)[:2000])
            held = hold(self.store, d.destination, retry_at) if exc.unavailable else 0
            log.warning("outbox %s to %s: attempt %d failed%s: %s%s", d.id, d.destination,
                        d.attempts, " (dead)" if dead else "", exc.issues[0].message,
                        f"; {held} more to {d.destination} held back" if held else "")
            return True
        except Exception as exc:
            log.exception("outbox %s: unexpected error", d.id)
            _finish(self.store, d, status="pending", last_error=repr(exc)[:2000],
                    next_attempt_at=time.time() + self.backoff(d.attempts))
            return True
        _finish(self.store, d, status="done", done_at=_stamp(), last_error=None)
        return True

    # -- the thread --------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("outbox worker")
                busy = False
            if not busy:
                self._stop.wait(self.poll)

    def start(self) -> OutboxWorker:
        self._thread = threading.Thread(target=self._run, name="gateway-outbox", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.http.close()


def status(store: Any, delivery_id: str) -> dict[str, Any] | None:
    """A delivery's row (without its payload), for commands and tests."""
    with store.engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.id == delivery_id)).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out.pop("payload")
    return out
