"""the agent's desk: a note for the operator, who cancelled, a cancellation seen, to rebook

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        # The agent's question for the operator: personal data, purged with the usager's.
        batch_op.add_column(sa.Column("note", sa.String(length=1000), nullable=True))
        # Who cancelled: agent, staff, usager (by their link), admin or closure.
        batch_op.add_column(sa.Column("cancelled_by", sa.String(length=12), nullable=True))
        # When an agent first saw a cancellation by the usager (None: still new).
        batch_op.add_column(sa.Column("cancel_seen_at", sa.DateTime(timezone=True), nullable=True))
        # Set when a staff member's absence or closed day now covers this appointment.
        batch_op.add_column(sa.Column("to_rebook_since", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        # agent, staff, usager, admin, system: the history names who, not only which user.
        batch_op.add_column(sa.Column("actor_kind", sa.String(length=12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("actor_kind")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("to_rebook_since")
        batch_op.drop_column("cancel_seen_at")
        batch_op.drop_column("cancelled_by")
        batch_op.drop_column("note")
