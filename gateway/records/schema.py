"""The record store's tables. Alembic migrations (``migrations/``) create and
change them; this module is the current shape, for queries."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, text

__all__ = ["metadata", "resources", "versions", "ingestions", "search_index"]

metadata = MetaData()

resources = Table(
    "resource", metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", String(40), nullable=False),
    Column("content", Text, nullable=False),
    Index("ix_resource_type_updated", "resource_type", "last_updated"),
)

versions = Table(
    "resource_version", metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", String(40), nullable=False),
    Column("content", Text, nullable=False),
)

ingestions = Table(
    "ingestion", metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the normalised source
    Column("source_format", String(32), nullable=False),
    Column("sender", String(256), nullable=False),
    Column("control_id", String(256), nullable=False),
    Column("message_type", String(64), nullable=False),
    Column("received_at", String(40), nullable=False),
    Column("result", Text, nullable=False),  # the stored answer, replayed on a repeat
)

# One row per search parameter value of the current version of a resource
# (rebuilt on every write). ``kind`` says which columns hold the value:
# token (system, code), string (text, lower-cased and accent-folded),
# reference (ref = "Type/id"), date (low, high as ISO strings, inclusive).
search_index = Table(
    "search_index", metadata,
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("system", String(256), nullable=True),
    Column("code", String(256), nullable=True),
    Column("text", String(256), nullable=True),
    Column("ref", String(160), nullable=True),
    Column("low", String(40), nullable=True),
    Column("high", String(40), nullable=True),
    Index("ix_search_res", "resource_type", "id"),
    # partial: each lookup index holds only the rows of its kind (migration 0006)
    Index("ix_search_token", "resource_type", "param", "code", "system",
          sqlite_where=text("code IS NOT NULL"), postgresql_where=text("code IS NOT NULL")),
    Index("ix_search_ref", "param", "ref", "resource_type",
          sqlite_where=text("ref IS NOT NULL"), postgresql_where=text("ref IS NOT NULL")),
    Index("ix_search_text", "resource_type", "param", "text",
          sqlite_where=text("text IS NOT NULL"), postgresql_where=text("text IS NOT NULL")),
)
