"""the figures read one index: the call's outcome copied onto its appointment, and the
start index covering what the figures read (PostgreSQL)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 21:45:00.000000

GET /figures counts, for a period of appointments, a handful of columns and the outcome
of each one's call. Reading the rows (about 670 bytes each on the national dataset: the
usager's details, the search text) and joining the call outcomes cost more than the
counting. So:

- ``appointments`` gets ``call_*`` columns, the appointment's row in ``call_outcomes``
  copied by a trigger on that table (insert, update, delete; both dialects), whoever
  writes it; filled here for the outcomes already computed;
- on PostgreSQL the indexes on ``start`` and on ``(site_id, start)`` include every
  column the figures read, which then come from an index-only scan (by site: already in
  the order of the groups, no sort). SQLite has no INCLUDE and keeps its plain indexes.

Expand only: the previous release reads and writes appointments and call outcomes as
before (the trigger follows its writes). The copy and the index are made inside the
migration's transaction, which holds writes to appointments for its duration (3.5 minutes
for 1,050,947 appointments and 436,601 outcomes on this 2-core machine, busy): run
``visio db upgrade`` outside opening hours, as every migration.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: call_outcomes' column -> the appointment's copy.
COPIED = {"attempted": "call_attempted", "connected": "call_connected",
          "kiosk_joined": "call_kiosk_joined", "operator_joined": "call_operator_joined",
          "seconds_to_connect": "call_seconds_to_connect",
          "duration_seconds": "call_duration_seconds", "audio_only": "call_audio_only",
          "ended_by_failure": "call_ended_by_failure"}
#: Kept equal to visio.models.FIGURES_COLUMNS.
INCLUDED = ["site_id", "operator_id", "theme", "status", "cancelled_by", "reschedule_count",
            "created_at", "first_offered_start", "id", *COPIED.values()]


def _copy(source: str) -> str:
    return ", ".join(f"{copy} = {source}.{column}" for column, copy in COPIED.items())


def _erase() -> str:
    return ", ".join(f"{copy} = NULL" for copy in COPIED.values())


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        for column, copy in COPIED.items():
            kind = sa.Float() if "seconds" in column else sa.Boolean()
            batch_op.add_column(sa.Column(copy, kind, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"UPDATE appointments a SET {_copy('c')} FROM call_outcomes c "
                   "WHERE c.appointment_id = a.id")
        op.execute(f"""
            CREATE FUNCTION call_outcome_to_appointment() RETURNS trigger AS $$
            BEGIN
              IF TG_OP = 'DELETE' THEN
                UPDATE appointments SET {_erase()} WHERE id = OLD.appointment_id;
                RETURN OLD;
              END IF;
              UPDATE appointments SET {_copy('NEW')} WHERE id = NEW.appointment_id;
              RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        op.execute("CREATE TRIGGER call_outcome_to_appointment "
                   "AFTER INSERT OR UPDATE OR DELETE ON call_outcomes "
                   "FOR EACH ROW EXECUTE FUNCTION call_outcome_to_appointment()")
        op.drop_index("ix_appointments_start", table_name="appointments")
        op.create_index("ix_appointments_start", "appointments", ["start"],
                        postgresql_include=INCLUDED)
        # Ordered by site: the figures grouped by site need no sort.
        op.drop_index("ix_appointments_site_start", table_name="appointments")
        op.create_index("ix_appointments_site_start", "appointments", ["site_id", "start"],
                        postgresql_include=[c for c in INCLUDED if c != "site_id"])
        return
    columns = ", ".join(COPIED.values())
    sources = ", ".join(f"c.{column}" for column in COPIED)
    op.execute(f"UPDATE appointments SET ({columns}) = (SELECT {sources} FROM call_outcomes c "
               "WHERE c.appointment_id = appointments.id) "
               "WHERE id IN (SELECT appointment_id FROM call_outcomes)")
    for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW")):
        op.execute(f"CREATE TRIGGER call_outcome_{event.lower()}_to_appointment "
                   f"AFTER {event} ON call_outcomes FOR EACH ROW BEGIN "
                   f"UPDATE appointments SET {_copy(row)} WHERE id = {row}.appointment_id; "
                   "END")
    op.execute("CREATE TRIGGER call_outcome_delete_to_appointment "
               "AFTER DELETE ON call_outcomes FOR EACH ROW BEGIN "
               f"UPDATE appointments SET {_erase()} WHERE id = OLD.appointment_id; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER call_outcome_to_appointment ON call_outcomes")
        op.execute("DROP FUNCTION call_outcome_to_appointment()")
        op.drop_index("ix_appointments_start", table_name="appointments")
        op.create_index("ix_appointments_start", "appointments", ["start"])
        op.drop_index("ix_appointments_site_start", table_name="appointments")
        op.create_index("ix_appointments_site_start", "appointments", ["site_id", "start"])
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER call_outcome_{event}_to_appointment")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        for copy in COPIED.values():
            batch_op.drop_column(copy)
