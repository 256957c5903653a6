"""notifier_deliveries: the dedup ledger every notifier instance shares

Revision ID: n0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "n0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_deliveries",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_notifier_deliveries"),
    )
    op.create_index("ix_notifier_deliveries_expires_at", "notifier_deliveries", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_notifier_deliveries_expires_at", table_name="notifier_deliveries")
    op.drop_table("notifier_deliveries")
