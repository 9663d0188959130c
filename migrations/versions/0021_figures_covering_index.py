"""the appointments' start index covers what the figures read (PostgreSQL)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 21:45:00.000000

GET /figures reads, for a period of appointments, a handful of columns; the table's rows
also carry the usager's details and search text (about 670 bytes each on the national
dataset), so reading them costs more than counting. On PostgreSQL the index on ``start``
now includes those columns, and the figures come from an index-only scan. SQLite has no
INCLUDE and keeps its plain index. Expand only: the previous release reads and writes
appointments as before. The index is rebuilt inside the migration's transaction, which
holds writes to appointments for its duration (about 2 s per million rows here): run
``visio db upgrade`` outside opening hours, as every migration.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Kept equal to visio.models.FIGURES_COLUMNS.
INCLUDED = ["site_id", "operator_id", "theme", "status", "cancelled_by", "reschedule_count",
            "created_at", "first_offered_start", "id"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_appointments_start", table_name="appointments")
    op.create_index("ix_appointments_start", "appointments", ["start"],
                    postgresql_include=INCLUDED)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_appointments_start", table_name="appointments")
    op.create_index("ix_appointments_start", "appointments", ["start"])
