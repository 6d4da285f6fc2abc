"""conversation settings: pinned, and the conversation's own temperature and max_tokens

A sidebar lists pinned conversations first, newest first within each group, so the keyset index
of that listing leads with the owner and the flag.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE, never a batch copy: SQLite's full-text index of titles follows the
    # table's rowids, which a copy of the table would renumber.
    op.add_column(
        "conversations",
        sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("conversations", sa.Column("temperature", sa.Float(), nullable=True))
    op.add_column("conversations", sa.Column("max_tokens", sa.Integer(), nullable=True))
    op.create_index(
        "ix_conversations_user_pinned_updated_id",
        "conversations",
        ["user_id", "pinned", "updated_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_user_pinned_updated_id", table_name="conversations")
    for column in ("max_tokens", "temperature", "pinned"):
        op.drop_column("conversations", column)
