"""Bring a database to the current schema with Alembic, safely when several
gateway processes start at once (PostgreSQL advisory lock; SQLite's write
lock through BEGIN IMMEDIATE)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

__all__ = ["migrate", "MIGRATIONS"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 7_451_220_118  # any constant: one lock for "schema migration"


def migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # a migration (and waiting for another process's) may take longer
            # than the serving deadline on statements
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
