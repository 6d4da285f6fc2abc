"""account changes: a numbered record of changes to users, keys and logins, read by servers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 21:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    count = op.create_table(
        "change_count",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_count")),
    )
    op.bulk_insert(count, [{"id": 1, "seq": 0}])
    op.create_table(
        "account_changes",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_account_changes")),
    )


def downgrade() -> None:
    op.drop_table("account_changes")
    op.drop_table("change_count")
