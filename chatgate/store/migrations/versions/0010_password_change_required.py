"""one-time passwords: an account must choose a new password before anything else

``users.password_change_required`` is set when an administrator creates an account or resets a
password with a generated (or explicitly one-time) password, and cleared when the user chooses
their own. Every account that exists keeps its password as it is (false).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "password_change_required",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_change_required")
