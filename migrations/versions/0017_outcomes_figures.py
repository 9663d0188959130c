"""outcomes and figures: the call's outcome, reschedules counted, the first slot offered,
and a coordinator role scoped to départements

Expand-only: new tables, nullable or defaulted columns, a wider role column whose check
accepts one more value (the previous release writes none of them).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 05:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role"), type_="check")
        batch_op.alter_column("role", type_=sa.String(12), existing_type=sa.String(10),
                              existing_nullable=False)
        batch_op.create_check_constraint(
            op.f("ck_users_role"), "role IN ('agent', 'staff', 'admin', 'coordinator')")
    op.create_table(
        "user_departements",
        sa.Column("user_id", sa.String(36), sa.ForeignKey(
            "users.id", name="fk_user_departements_user_id_users"), nullable=False),
        sa.Column("departement", sa.String(3), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "departement", name="pk_user_departements"),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        # How often the appointment was moved (the audit trail says when and by whom).
        batch_op.add_column(sa.Column("reschedule_count", sa.Integer(), nullable=False,
                                      server_default="0"))
        # The start of the first slot the search offered when it was booked.
        batch_op.add_column(sa.Column("first_offered_start", sa.DateTime(timezone=True),
                                      nullable=True))
        # When the outcome (done, no_show) was set, and the reason of the last correction.
        batch_op.add_column(sa.Column("outcome_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("outcome_reason", sa.String(500), nullable=True))
    op.create_index("ix_appointments_start", "appointments", ["start"])
    op.create_table(
        "call_outcomes",
        sa.Column("appointment_id", sa.String(36), sa.ForeignKey(
            "appointments.id", name="fk_call_outcomes_appointment_id_appointments"),
            nullable=False),
        sa.Column("attempted", sa.Boolean(), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("kiosk_joined", sa.Boolean(), nullable=False),
        sa.Column("operator_joined", sa.Boolean(), nullable=False),
        sa.Column("seconds_to_connect", sa.Float(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("audio_only", sa.Boolean(), nullable=False),
        sa.Column("ended_by_failure", sa.Boolean(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id", name="pk_call_outcomes"),
    )


def downgrade() -> None:
    op.drop_table("call_outcomes")
    op.drop_index("ix_appointments_start", table_name="appointments")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("outcome_reason")
        batch_op.drop_column("outcome_at")
        batch_op.drop_column("first_offered_start")
        batch_op.drop_column("reschedule_count")
    op.drop_table("user_departements")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_users_role"),
                                         "role IN ('agent', 'staff', 'admin')")
        batch_op.alter_column("role", type_=sa.String(10), existing_type=sa.String(12),
                              existing_nullable=False)
