"""Trusted contacts' one-time invitations (tokens stored as digests).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_invite",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("related_person", sa.String(64), nullable=False),
        sa.Column("consent", sa.String(64), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("expires", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),  # open | used | revoked
    )
    op.create_index("ix_contact_patient", "contact_invite", ["patient"])
    op.create_index("ix_contact_person", "contact_invite", ["related_person"])


def downgrade() -> None:
    op.drop_table("contact_invite")
