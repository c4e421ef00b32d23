"""Search index: one row per search parameter value of a resource.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_index",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("system", sa.String(256), nullable=True),
        sa.Column("code", sa.String(256), nullable=True),
        sa.Column("text", sa.String(256), nullable=True),
        sa.Column("ref", sa.String(160), nullable=True),
        sa.Column("low", sa.String(40), nullable=True),
        sa.Column("high", sa.String(40), nullable=True),
    )
    op.create_index("ix_search_res", "search_index", ["resource_type", "id"])
    op.create_index("ix_search_token", "search_index", ["resource_type", "param", "code", "system"])
    op.create_index("ix_search_ref", "search_index", ["param", "ref", "resource_type"])
    op.create_index("ix_search_text", "search_index", ["resource_type", "param", "text"])


def downgrade() -> None:
    op.drop_table("search_index")
