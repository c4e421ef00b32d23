"""Replay guard: message ids, assertion ids and token ``jti`` values are
remembered until their validity window ends (SAML 2.0 core §2.5.1.2,
RFC 7523 §3 and SMART Backend Services: a receiver refuses an assertion or
token it has seen).

The memory is a table of the record store (``exchange_seen``, migration
0004), so every replica on one database shares it: an id accepted by one
replica is refused by all others until it expires. One statement does the
check and the remembering (``INSERT … ON CONFLICT DO UPDATE … WHERE`` the
stored entry has expired), so two replicas racing on one id cannot both win.
Ids whose window has already ended (stale) or that were issued further in
the future than the allowed clock skew are refused without being stored.

The store is the one the application runs on (:func:`bind`, called by
``create_app``); without one, the home's default database is used.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Index, String, Table, delete

from ..records.schema import metadata
from .errors import Replayed, refuse

__all__ = ["SKEW_SECONDS", "ReplayGuard", "bind", "exchange_seen"]

SKEW_SECONDS = 60
PRUNE_EVERY = 256

exchange_seen = Table(
    "exchange_seen", metadata,
    Column("key", String(400), primary_key=True),
    Column("until", Float, nullable=False),
    Index("ix_exchange_seen_until", "until"),
)

_bound: dict[str, Any] = {}
_own: dict[str, Any] = {}
_lock = threading.Lock()


def bind(home: Path, store: Any) -> None:
    """Remember ids of ``home`` in ``store`` (the application's store)."""
    with _lock:
        _bound[str(home)] = store


def _store_for(home: Path | None) -> Any:
    key = str(home)
    with _lock:
        found = _bound.get(key) or _own.get(key)
        if found is not None:
            return found
    if home is None:
        raise RuntimeError("a replay guard needs a store or a home")
    from ..records import Store
    from ..settings import Settings

    store = Store(Settings.resolve(home).db_url)
    with _lock:
        return _own.setdefault(key, store)


class ReplayGuard:
    """``check`` refuses an id seen before within its window; see the module."""

    def __init__(self, store: Any = None, *, home: Path | None = None,
                 skew: int = SKEW_SECONDS) -> None:
        self._store = store
        self._home = home
        self.skew = skew
        self._calls = 0

    @property
    def store(self) -> Any:
        return self._store if self._store is not None else _store_for(self._home)

    def check(self, kind: str, value: str, until: float, now: float | None = None, *,
              issued_at: float | None = None) -> None:
        """Remember ``kind:value`` until ``until`` (epoch seconds); refuse a
        repeat, a stale id (``until`` passed) or one issued in the future."""
        now = time.time() if now is None else now
        if until < now - self.skew:
            raise refuse(Replayed, f"{kind} {value} is stale: its validity ended")
        if issued_at is not None and issued_at > now + self.skew:
            raise refuse(Replayed, f"{kind} {value} is issued in the future")
        key = f"{kind}:{value}"[:400]
        store = self.store
        engine = store.write_engine
        values = {"key": key, "until": max(until, now + 1)}
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        ins = insert(exchange_seen).values(**values)
        stmt = ins.on_conflict_do_update(
            index_elements=[exchange_seen.c.key], set_={"until": ins.excluded.until},
            where=exchange_seen.c.until <= now).returning(exchange_seen.c.key)
        with engine.begin() as conn:
            taken = len(conn.execute(stmt).all())  # a row: inserted, or an expired one renewed
            self._calls += 1
            if self._calls % PRUNE_EVERY == 0:
                conn.execute(delete(exchange_seen).where(exchange_seen.c.until < now - self.skew))
        if taken != 1:
            raise refuse(Replayed, f"{kind} {value} was already used")
