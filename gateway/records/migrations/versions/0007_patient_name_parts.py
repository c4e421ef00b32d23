"""Patient ``name`` search matches any part of a name (family, given,
prefix, suffix, text), as FHIR defines it: the index held one row per name,
"given family", so that ``name=`` matched only a first given name. The
Patients already stored get their ``name`` rows again, from the same code
that indexes a Patient when it is written.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    from gateway.records.indexing import INDEX_COLUMNS, index_rows

    conn = op.get_bind()
    resource = sa.table("resource", sa.column("resource_type"), sa.column("id"),
                        sa.column("content"))
    search = sa.table("search_index", sa.column("resource_type"), sa.column("id"),
                      *(sa.column(c) for c in INDEX_COLUMNS))
    conn.execute(sa.delete(search).where(search.c.resource_type == "Patient",
                                         search.c.param == "name"))
    last = ""
    while True:  # in batches of ids, so that a large record never sits in memory at once
        batch = conn.execute(
            sa.select(resource.c.id, resource.c.content)
            .where(resource.c.resource_type == "Patient", resource.c.id > last)
            .order_by(resource.c.id).limit(_BATCH)).all()
        if not batch:
            break
        rows = [{"resource_type": "Patient", "id": rid, **dict(zip(INDEX_COLUMNS, row, strict=True))}
                for rid, content in batch
                for row in index_rows(json.loads(content)) if row[0] == "name"]
        if rows:
            conn.execute(sa.insert(search), rows)
        last = batch[-1][0]


def downgrade() -> None:
    """The extra rows do no harm to the code before; nothing to undo."""
