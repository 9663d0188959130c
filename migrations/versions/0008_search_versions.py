"""search_versions: counters that tell slot search's cache what changed

Every table the slot search reads is watched by triggers that bump a counter per scope
in the writing transaction: ``site:<id>`` (a site, its hours, stops and closures),
``desk:<id>`` (its staff, their weekly rules, overrides, absences and imported busy
time, the desk's closures), ``catalogue`` (themes, services, operators, desks,
territories, operator closures), and for appointments ``booked:site:<id>`` and
``booked:staff:<id>``. A search compares the counters its cached data depends on, in
its own transaction, so a change made by any instance (or by hand in SQL) is seen by
every instance's next search.

On PostgreSQL, statement triggers note the touched scopes in ``search_touches`` (one
row per scope and statement, so a bulk load of a million rows notes a few thousand) and
a deferred trigger bumps the counters at commit, in scope order: a booking locks its
counters only while it commits. On SQLite (one writer at a time) row triggers bump the
counters directly; ``search_touches`` stays empty there.

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


def _pg_keys(table: str, alias: str, rows: str) -> str:
    """The scopes touched by the rows ``alias`` of ``rows`` (transition tables)."""
    return " UNION ALL ".join(f"SELECT {scope.format(r=alias)} AS k FROM {rows}"
                              for scope in SCOPES[table])


def _pg_upgrade() -> None:
    # Statement triggers note the scopes a statement touched in search_touches (one row
    # per scope and statement, however many rows it changed); at commit, a deferred
    # trigger turns this transaction's notes into counter bumps, all at once and in scope
    # order: a booking locks its counters only while it commits, and two transactions
    # always lock them in the same order.
    op.execute("ALTER TABLE search_touches ALTER COLUMN txid SET DEFAULT txid_current()")
    op.execute("""
        CREATE FUNCTION visio_search_settle() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- The transaction's first note settles them all; the others find theirs gone.
            IF NOT EXISTS (SELECT 1 FROM search_touches WHERE id = NEW.id) THEN
                RETURN NULL;
            END IF;
            WITH mine AS (DELETE FROM search_touches WHERE txid = txid_current()
                          RETURNING scope)
            INSERT INTO search_versions AS v (scope, value)
            SELECT scope, count(*) FROM mine GROUP BY scope ORDER BY scope
            ON CONFLICT (scope) DO UPDATE SET value = v.value + EXCLUDED.value;
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE CONSTRAINT TRIGGER search_touches_settle AFTER INSERT ON search_touches
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION visio_search_settle()""")
    op.execute("""
        CREATE FUNCTION visio_search_touch_all() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO search_touches (scope) VALUES ('catalogue');
            RETURN NULL;
        END $$""")
    for table in SCOPES:
        inserted, deleted = "new_rows n", "old_rows o"
        changed = f"{_pg_keys(table, 'o', deleted)} UNION ALL {_pg_keys(table, 'n', inserted)}"
        if table == "appointments":
            # An update that neither moves nor frees time touches nothing.
            old = ", ".join(f"o.{c}" for c in _APPOINTMENT_TIME)
            new = ", ".join(f"n.{c}" for c in _APPOINTMENT_TIME)
            moved = (f"old_rows o JOIN new_rows n ON n.id = o.id"
                     f" WHERE ({old}) IS DISTINCT FROM ({new})")
            changed = f"{_pg_keys(table, 'o', moved)} UNION ALL {_pg_keys(table, 'n', moved)}"
        op.execute(f"""
            CREATE FUNCTION visio_search_touch_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO search_touches (scope) SELECT DISTINCT k FROM
                        ({_pg_keys(table, 'n', inserted)}) keys WHERE k IS NOT NULL;
                ELSIF TG_OP = 'DELETE' THEN
                    INSERT INTO search_touches (scope) SELECT DISTINCT k FROM
                        ({_pg_keys(table, 'o', deleted)}) keys WHERE k IS NOT NULL;
                ELSE
                    INSERT INTO search_touches (scope) SELECT DISTINCT k FROM
                        ({changed}) keys WHERE k IS NOT NULL;
                END IF;
                RETURN NULL;
            END $$""")
        for event, transitions in (("INSERT", "NEW TABLE AS new_rows"),
                                   ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                                   ("DELETE", "OLD TABLE AS old_rows")):
            op.execute(f"""
                CREATE TRIGGER search_touch_{table}_{event.lower()} AFTER {event} ON {table}
                REFERENCING {transitions} FOR EACH STATEMENT
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
    op.create_table(
        "search_touches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=60), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_touches")),
    )
    op.create_index(op.f("ix_search_touches_txid"), "search_touches", ["txid"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _pg_upgrade()
    elif dialect == "sqlite":
        _sqlite_upgrade()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in SCOPES:
        for event in ("insert", "update", "delete", "truncate"):
            if dialect == "postgresql":
                op.execute(f"DROP TRIGGER IF EXISTS search_touch_{table}_{event} ON {table}")
            elif dialect == "sqlite":
                op.execute(f"DROP TRIGGER IF EXISTS search_touch_{table}_{event}")
        if dialect == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS visio_search_touch_{table}()")
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS search_touches_settle ON search_touches")
        op.execute("DROP FUNCTION IF EXISTS visio_search_touch_all()")
        op.execute("DROP FUNCTION IF EXISTS visio_search_settle()")
    op.drop_index(op.f("ix_search_touches_txid"), table_name="search_touches")
    op.drop_table("search_touches")
    op.drop_table("search_versions")
