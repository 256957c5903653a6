"""index the users whose session epoch changed (GetRevocations reads them every second)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_users_epoch_changed_at",
        "users",
        ["epoch_changed_at"],
        postgresql_where=sa.text("epoch_changed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_users_epoch_changed_at", table_name="users")
