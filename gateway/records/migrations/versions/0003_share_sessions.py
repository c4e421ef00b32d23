"""Share sessions (clinician handshake codes) and failed redemptions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "share_session",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("practitioner", sa.String(64), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("expires", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("consent", sa.String(64), nullable=True),
    )
    op.create_index("ix_share_practitioner", "share_session", ["practitioner", "state"])
    op.create_index("ix_share_patient", "share_session", ["patient", "state"])
    op.create_table(
        "share_failure",
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_index("ix_share_failure", "share_failure", ["patient", "at"])


def downgrade() -> None:
    op.drop_table("share_failure")
    op.drop_table("share_session")
