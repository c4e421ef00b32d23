"""One gateway's exchange state: its keys, trust list and replay guard,
made lazily per home (keys are created on first use when absent)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .keys import KeyRing, ensure_keys, load_keys
from .replay import ReplayGuard
from .trust import TrustStore

__all__ = ["Exchange", "exchange_for", "sign_document"]


@dataclass
class Exchange:
    home: Path
    trust: TrustStore
    replay: ReplayGuard = field(init=False)

    def __post_init__(self) -> None:
        self.replay = ReplayGuard(home=self.home)  # the store's exchange_seen table

    @property
    def keys(self) -> KeyRing:
        return load_keys(self.home)

    @property
    def country(self) -> str:
        return self.keys.country

    @property
    def urn(self) -> str:
        """Our name as an audience / issuer: ``urn:gateway:<country>``."""
        return f"urn:gateway:{self.country}"


_lock = threading.Lock()
_by_home: dict[str, Exchange] = {}


def exchange_for(home: Path) -> Exchange:
    key = str(home)
    with _lock:
        found = _by_home.get(key)
        if found is None:
            ensure_keys(home)
            found = _by_home[key] = Exchange(home, TrustStore(home))
        return found


def sign_document(home: Path, bundle: dict[str, Any]) -> dict[str, Any]:
    """``bundle`` signed with the home's signing key (see :mod:`.jws`)."""
    from .jws import sign_bundle

    ex = exchange_for(home)
    return sign_bundle(bundle, ex.keys["signing"], country=ex.country)
