"""search_versions: counters that tell slot search's cache what changed

Every table the slot search reads is watched by triggers that bump a counter per scope
in the writing transaction: ``site:<id>`` (a site, its hours, stops and closures),
``desk:<id>`` (its staff, their weekly rules, overrides, absences and imported busy
time, the desk's closures), ``catalogue`` (themes, services, operators, desks,
territories, operator closures), and for appointments ``booked:site:<id>`` and
``booked:staff:<id>``. A search compares the counters its cached data depends on, in
its own transaction, so a change made by any instance (or by hand in SQL) is seen by
every instance's next search.

On PostgreSQL the triggers are deferred constraint triggers: they run at commit, so a
booking holds the lock on its counters only while it commits.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CATALOGUE = ("'catalogue'",)
_OF_STAFF = ("(SELECT 'desk:' || s.desk_id FROM staff_members s WHERE s.id = {r}.staff_id)",)
#: Per watched table, the scopes a changed row touches ({r}: the old or the new row).
SCOPES: dict[str, tuple[str, ...]] = {
    "themes": _CATALOGUE,
    "operators": _CATALOGUE,
    "services": _CATALOGUE,
    "desks": _CATALOGUE,
    "desk_departements": _CATALOGUE,
    "desk_communes": _CATALOGUE,
    "sites": ("'site:' || {r}.id",),
    "site_hours": ("'site:' || {r}.site_id",),
    "tour_stops": ("'site:' || {r}.site_id",),
    "closure_days": (
        "CASE WHEN {r}.id IS NULL THEN NULL"
        " WHEN {r}.site_id IS NOT NULL THEN 'site:' || {r}.site_id"
        " WHEN {r}.desk_id IS NOT NULL THEN 'desk:' || {r}.desk_id"
        " ELSE 'catalogue' END",
    ),
    "staff_members": ("'desk:' || {r}.desk_id",),
    "availability_rules": _OF_STAFF,
    "availability_overrides": _OF_STAFF,
    "busy_periods": _OF_STAFF,
    "appointments": ("'booked:site:' || {r}.site_id", "'booked:staff:' || {r}.staff_id"),
}
#: An appointment's update matters only when it moves or frees time.
_APPOINTMENT_TIME = ("status", "site_id", "staff_id", "start", '"end"', "staff_until")


def _pg_upgrade() -> None:
    op.execute("""
        CREATE FUNCTION visio_search_bump(keys text[]) RETURNS void LANGUAGE sql AS $$
            INSERT INTO search_versions AS v (scope, value)
            SELECT DISTINCT k, 1 FROM unnest(keys) AS k WHERE k IS NOT NULL ORDER BY 1
            ON CONFLICT (scope) DO UPDATE SET value = v.value + 1
        $$""")
    op.execute("""
        CREATE FUNCTION visio_search_touch_all() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM visio_search_bump(ARRAY['catalogue']);
            RETURN NULL;
        END $$""")
    for table, scopes in SCOPES.items():
        keys = ", ".join(s.format(r=r) for r in ("OLD", "NEW") for s in scopes)
        skip = ""
        if table == "appointments":
            old = ", ".join(f"OLD.{c}" for c in _APPOINTMENT_TIME)
            new = ", ".join(f"NEW.{c}" for c in _APPOINTMENT_TIME)
            skip = (f"IF TG_OP = 'UPDATE' AND ({old}) IS NOT DISTINCT FROM ({new}) THEN"
                    " RETURN NULL; END IF;")
        op.execute(f"""
            CREATE FUNCTION visio_search_touch_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {skip}
                PERFORM visio_search_bump(ARRAY[{keys}]);
                RETURN NULL;
            END $$""")
        op.execute(f"""
            CREATE CONSTRAINT TRIGGER search_touch_{table}
            AFTER INSERT OR UPDATE OR DELETE ON {table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            EXECUTE FUNCTION visio_search_touch_{table}()""")
        op.execute(f"""
            CREATE TRIGGER search_touch_{table}_truncate AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION visio_search_touch_all()""")


def _sqlite_upgrade() -> None:
    for table, scopes in SCOPES.items():
        for event, rows in (("INSERT", ("NEW",)), ("UPDATE", ("OLD", "NEW")),
                            ("DELETE", ("OLD",))):
            columns = ""
            if table == "appointments" and event == "UPDATE":
                columns = " OF " + ", ".join(_APPOINTMENT_TIME)
            bumps = "".join(
                f"INSERT INTO search_versions (scope, value)"
                f" SELECT k, 1 FROM (SELECT {scope.format(r=r)} AS k) WHERE k IS NOT NULL"
                f" ON CONFLICT (scope) DO UPDATE SET value = value + 1;\n"
                for r in rows for scope in scopes
            )
            op.execute(f"CREATE TRIGGER search_touch_{table}_{event.lower()}"
                       f" AFTER {event}{columns} ON {table}\nBEGIN\n{bumps}END")


def upgrade() -> None:
    op.create_table(
        "search_versions",
        sa.Column("scope", sa.String(length=60), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_search_versions")),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _pg_upgrade()
    elif dialect == "sqlite":
        _sqlite_upgrade()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in SCOPES:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS search_touch_{table} ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS search_touch_{table}_truncate ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS visio_search_touch_{table}()")
        elif dialect == "sqlite":
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS search_touch_{table}_{event}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS visio_search_touch_all()")
        op.execute("DROP FUNCTION IF EXISTS visio_search_bump(text[])")
    op.drop_table("search_versions")
