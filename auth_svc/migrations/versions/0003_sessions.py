"""session epochs, revoked tokens, and the purpose of a pending code

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("session_epoch", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("users", sa.Column("epoch_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "verification_codes",
        sa.Column("purpose", sa.String(16), server_default=sa.text("'verify'"), nullable=False),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("token_id", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name="pk_revoked_tokens"),
    )


def downgrade() -> None:
    op.drop_table("revoked_tokens")
    op.drop_column("verification_codes", "purpose")
    op.drop_column("users", "epoch_changed_at")
    op.drop_column("users", "session_epoch")
