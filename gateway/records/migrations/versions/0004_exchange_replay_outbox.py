"""Exchange state shared by every replica: the replay memory (message ids,
assertion ids, client-assertion ``jti``) and the durable outbox of
deliveries to peer gateways.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_seen",
        sa.Column("key", sa.String(400), primary_key=True),  # kind:issuer:value
        sa.Column("until", sa.Float, nullable=False),  # epoch seconds
    )
    op.create_index("ix_exchange_seen_until", "exchange_seen", ["until"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(64), primary_key=True),  # also the Idempotency-Key
        sa.Column("destination", sa.String(8), nullable=False),  # peer country
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),  # JSON object
        sa.Column("status", sa.String(16), nullable=False),  # pending|sending|done|dead
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("done_at", sa.String(40), nullable=True),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("exchange_seen")
