"""Replay guard: message ids, assertion ids and token ``jti`` values are
remembered until their validity window ends (SAML 2.0 core §2.5.1.2 and
RFC 7523 §3: a receiver may refuse an assertion or token it has seen).

One guard per process, in memory, pruned as it goes. Replicas behind one
load balancer each keep their own, so an id replayed to another replica
inside the window is caught only by that replica's own record: the windows
are short (minutes) and every id is also bound to one audience.
"""

from __future__ import annotations

import threading
import time

from .errors import Replayed, refuse

__all__ = ["ReplayGuard"]


class ReplayGuard:
    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def check(self, kind: str, value: str, until: float, now: float | None = None) -> None:
        """Remember ``kind:value`` until ``until`` (epoch seconds); refuse a repeat."""
        now = time.time() if now is None else now
        key = f"{kind}:{value}"
        with self._lock:
            if len(self._seen) > self._max // 2:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            seen = self._seen.get(key)
            if seen is not None and seen > now:
                raise refuse(Replayed, f"{kind} {value} was already used")
            if len(self._seen) >= self._max:
                raise refuse(Replayed, "too many recent messages: try again later")
            self._seen[key] = max(until, now + 1)
