"""Where the gateway keeps its state: one home folder.

``--home DIR`` (environment ``GATEWAY_HOME``, default ``./.gateway``) holds
the SQLite database and, later, keys and configuration; ``--db URL``
(environment ``GATEWAY_DB``) overrides the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    db_url: str
    max_body_bytes: int = 20 * 1024 * 1024

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None, db: str | None = None) -> "Settings":
        home_path = Path(home or os.environ.get("GATEWAY_HOME") or ".gateway").resolve()
        url = db or os.environ.get("GATEWAY_DB") or f"sqlite:///{home_path / 'gateway.db'}"
        return cls(home_path, url)

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
