"""login successes: addresses known to an account, for login throttling

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_successes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_key", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_successes")),
    )
    with op.batch_alter_table("login_successes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_successes_account_key"), ["account_key"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_login_successes_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_successes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_successes_at"))
        batch_op.drop_index(batch_op.f("ix_login_successes_account_key"))

    op.drop_table("login_successes")
