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
- ``delay_hours`` and ``offered_delay_hours``, the delays from booking to the appointment
  and to the first slot offered, kept by a trigger on ``appointments`` (both dialects),
  so that the percentiles sort stored numbers instead of computing them row by row;
- on PostgreSQL the indexes on ``start`` and on ``(site_id, start)`` include every
  column the figures read, which then come from an index-only scan (by site: already in
  the order of the groups, no sort). SQLite has no INCLUDE and keeps its plain indexes.

Expand only: the previous release reads and writes appointments and call outcomes as
before (the trigger follows its writes). The copy and the index are made inside the
migration's transaction, which holds writes to appointments for its duration (about 12
minutes for 1,050,947 appointments and 436,601 outcomes on this 2-core machine): run
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
            "delay_hours", "offered_delay_hours", "id", *COPIED.values()]
#: The delays from booking, in hours, as each dialect computes them from a row.
PG_DELAYS = ("date_part('epoch', {r}.start - {r}.created_at) / 3600.0",
             "date_part('epoch', {r}.first_offered_start - {r}.created_at) / 3600.0")
SQLITE_DELAYS = ("(julianday({r}.start) - julianday({r}.created_at)) * 24.0",
                 "(julianday({r}.first_offered_start) - julianday({r}.created_at)) * 24.0")


def _copy(source: str) -> str:
    return ", ".join(f"{copy} = {source}.{column}" for column, copy in COPIED.items())


def _erase() -> str:
    return ", ".join(f"{copy} = NULL" for copy in COPIED.values())


def upgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        for column, copy in COPIED.items():
            kind = sa.Float() if "seconds" in column else sa.Boolean()
            batch_op.add_column(sa.Column(copy, kind, nullable=True))
        batch_op.add_column(sa.Column("delay_hours", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("offered_delay_hours", sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        delay, offered = (d.format(r="NEW") for d in PG_DELAYS)
        op.execute(f"""
            CREATE FUNCTION appointment_delays() RETURNS trigger AS $$
            BEGIN
              NEW.delay_hours := {delay};
              NEW.offered_delay_hours := {offered};
              RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        op.execute("CREATE TRIGGER appointment_delays BEFORE INSERT OR UPDATE OF start, "
                   "created_at, first_offered_start ON appointments "
                   "FOR EACH ROW EXECUTE FUNCTION appointment_delays()")
        delay, offered = (d.format(r="appointments") for d in PG_DELAYS)
        op.execute(f"UPDATE appointments SET delay_hours = {delay}, "
                   f"offered_delay_hours = {offered}")
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
    delay, offered = (d.format(r="appointments") for d in SQLITE_DELAYS)
    op.execute(f"UPDATE appointments SET delay_hours = {delay}, "
               f"offered_delay_hours = {offered}")
    delay, offered = (d.format(r="NEW") for d in SQLITE_DELAYS)
    for event in ("INSERT", "UPDATE OF start, created_at, first_offered_start"):
        name = event.split()[0].lower()
        op.execute(f"CREATE TRIGGER appointment_{name}_delays AFTER {event} ON appointments "
                   f"FOR EACH ROW BEGIN UPDATE appointments SET delay_hours = {delay}, "
                   f"offered_delay_hours = {offered} WHERE id = NEW.id; END")
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
        op.execute("DROP TRIGGER appointment_delays ON appointments")
        op.execute("DROP FUNCTION appointment_delays()")
        op.drop_index("ix_appointments_start", table_name="appointments")
        op.create_index("ix_appointments_start", "appointments", ["start"])
        op.drop_index("ix_appointments_site_start", table_name="appointments")
        op.create_index("ix_appointments_site_start", "appointments", ["site_id", "start"])
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER call_outcome_{event}_to_appointment")
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER appointment_{event}_delays")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("delay_hours")
        batch_op.drop_column("offered_delay_hours")
        for copy in COPIED.values():
            batch_op.drop_column(copy)
