"""the agent's search: usager names and phone folded, indexed (trigrams on PostgreSQL)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from visio.domain.usager_search import search_text

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        # Names and phone folded (lower-case ASCII words, phone digits) for the search.
        batch_op.add_column(sa.Column("usager_search", sa.String(length=400),
                                      server_default="", nullable=False))
    appointments = sa.table("appointments", sa.column("id", sa.String),
                            sa.column("usager_first_name", sa.String),
                            sa.column("usager_last_name", sa.String),
                            sa.column("usager_phone", sa.String),
                            sa.column("usager_search", sa.String))
    last = ""
    while True:
        rows = bind.execute(
            sa.select(appointments.c.id, appointments.c.usager_first_name,
                      appointments.c.usager_last_name, appointments.c.usager_phone)
            .where(appointments.c.id > last).order_by(appointments.c.id).limit(_BATCH)).all()
        if not rows:
            break
        bind.execute(sa.update(appointments)
                     .where(appointments.c.id == sa.bindparam("row_id"))
                     .values(usager_search=sa.bindparam("text")),
                     [{"row_id": r[0], "text": search_text(r[1], r[2], r[3])} for r in rows])
        last = rows[-1][0]
    if bind.dialect.name == "postgresql":
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index("ix_appointments_usager_search", "appointments", ["usager_search"],
                        postgresql_using="gin",
                        postgresql_ops={"usager_search": "gin_trgm_ops"})
    else:
        op.create_index("ix_appointments_usager_search", "appointments", ["usager_search"])


def downgrade() -> None:
    op.drop_index("ix_appointments_usager_search", table_name="appointments")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("usager_search")
