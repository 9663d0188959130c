"""imported calendars: a fetch's lease, so that one instance fetches a calendar at a time

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("imported_calendars", schema=None) as batch_op:
        # Until when an instance's fetch holds the calendar (None: nobody fetches it).
        batch_op.add_column(sa.Column("fetching_until", sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("imported_calendars", schema=None) as batch_op:
        batch_op.drop_column("fetching_until")
