"""Expand/contract: the previous release's code keeps working on the new schema.

During a rollout the previous release runs on the schema that ``visio db upgrade`` of the
new one made (docs/deployment.md, "Migrations and rollouts"). Instead of running the
previous release's whole suite, this checks it against its frozen snapshot
(tests/previous_release/schema.json, the tables and columns of that release's models
and rows its code wrote), on a database migrated to head:

* every table and column it reads or writes still exists, with a compatible type (same
  kind; a string no shorter; an integer no narrower) and no new NOT NULL;
* every column added since to one of its tables is nullable or has a server default, so
  its INSERTs, which do not name it, still work;
* its INSERTs and SELECTs go through: the frozen rows are written naming only its
  columns, read back through them unchanged, and read by the current models too.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.previous_release.snapshot import BOOKKEEPING, decode, kind_of, load
from visio import models as m
from visio.db import Database

SNAPSHOT = load()

# Widening a column keeps the previous code's values valid.
WIDER = {("int", "int64"), ("string", "text")}


def _type_for(column: dict[str, Any]) -> sa.types.TypeEngine[Any]:
    """The SQLAlchemy type the previous release bound and read a column with."""
    kind = column["kind"]
    types: dict[str, sa.types.TypeEngine[Any]] = {
        "datetime": m.UTCDateTime(),  # its instants: aware UTC, naive text on SQLite
        "date": sa.Date(),
        "time": sa.Time(),
        "json": sa.JSON(),
        "bool": sa.Boolean(),
        "int": sa.Integer(),
        "int64": sa.BigInteger(),
        "number": sa.Float(),
        "text": sa.Text(),
        "string": sa.String(column["length"]),
        "bytes": sa.LargeBinary(),
        "uuid": sa.Uuid(),
    }
    return types[kind]


def previous_tables() -> dict[str, sa.Table]:
    """The previous release's tables, with only its columns."""
    metadata = sa.MetaData()
    return {
        name: sa.Table(
            name,
            metadata,
            *(
                sa.Column(col, _type_for(spec), primary_key=spec["primary_key"])
                for col, spec in columns.items()
            ),
        )
        for name, columns in SNAPSHOT["tables"].items()
    }


def _reflect(inspector: sa.Inspector) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """The dialect and each table's columns, as the database has them."""
    tables = {name: list(inspector.get_columns(name)) for name in inspector.get_table_names()}
    return inspector.dialect.name, tables


def _problems(dialect: str, schema: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every way the schema breaks the previous release's reads and writes."""
    wider = set(WIDER)
    if dialect == "sqlite":
        wider.add(("int64", "int"))  # SQLite's INTEGER is 64 bits (a BigInteger key is one)
    problems: list[str] = []
    for table, columns in SNAPSHOT["tables"].items():
        if table not in schema:
            problems.append(f"{table}: table gone")
            continue
        now = {c["name"]: c for c in schema[table]}
        for name, old in columns.items():
            new = now.get(name)
            if new is None:
                problems.append(f"{table}.{name}: column gone")
                continue
            kind, length = kind_of(new["type"])
            if kind != old["kind"] and (old["kind"], kind) not in wider:
                problems.append(f"{table}.{name}: {old['kind']} became {kind}")
            elif kind == "string" and old["length"] and length and length < old["length"]:
                problems.append(f"{table}.{name}: string({old['length']}) became ({length})")
            if old["nullable"] and not new["nullable"] and new.get("default") is None:
                problems.append(f"{table}.{name}: NOT NULL without a default (it may write NULL)")
        for name, new in now.items():
            if name in columns:
                continue
            if not (new["nullable"] or new.get("default") is not None or new.get("computed")):
                problems.append(
                    f"{table}.{name}: added NOT NULL without a server default "
                    "(the previous release's INSERTs do not name it)"
                )
    return problems


def test_the_snapshot_is_the_previous_release() -> None:
    """The snapshot names its release, holds columns of every kind it records, and rows of
    the main tables."""
    assert SNAPSHOT["release"]["revision"]
    rows = SNAPSHOT["rows"]
    for table in ("sites", "operators", "users", "appointments", "outbox", "call_events"):
        assert rows.get(table), table
        assert set(rows[table][0]) == set(SNAPSHOT["tables"][table])
    assert not BOOKKEEPING & set(rows)


async def test_previous_release_reads_and_writes_the_new_schema(db: Database) -> None:
    async with db.write_engine.connect() as conn:
        dialect, schema = await conn.run_sync(lambda sync: _reflect(sa.inspect(sync)))
    assert _problems(dialect, schema) == []

    tables = previous_tables()
    written = {
        name: [{k: decode(v) for k, v in row.items()} for row in rows]
        for name, rows in SNAPSHOT["rows"].items()
    }
    # Its INSERTs: only its own columns named, parents first (the snapshot's order).
    async with db.write_engine.begin() as conn:
        for name, rows in written.items():
            await conn.execute(tables[name].insert(), rows)
    # Its SELECTs: every row comes back as it wrote it.
    async with db.write_engine.connect() as conn:
        for name, rows in written.items():
            assert await _read(conn, tables[name], rows) == rows, name
    # And the current code reads what the previous release wrote.
    models = {mapper.local_table.name: mapper.class_ for mapper in m.Base.registry.mappers}
    async with db.read() as session:
        for name, rows in written.items():
            model = models.get(name)
            if model is None:
                continue
            found = (await session.scalars(sa.select(model))).all()
            assert len(found) >= len(rows), name


async def _read(
    conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows with the primary keys of ``rows``, in their order, through ``table``."""
    keys = [c.name for c in table.primary_key.columns]
    result = await conn.execute(sa.select(table))
    found = {tuple(r[k] for k in keys): dict(r) for r in result.mappings()}
    return [found.get(tuple(row[k] for k in keys), {}) for row in rows]


async def test_the_check_finds_what_breaks_the_previous_release(db: Database) -> None:
    """The check itself, on this database's real columns changed as a careless migration
    would: a NOT NULL column added without a server default, a column dropped, a string
    shortened, a type changed. Nullable or defaulted additions pass."""
    async with db.write_engine.connect() as conn:
        dialect, schema = await conn.run_sync(lambda sync: _reflect(sa.inspect(sync)))
    added = [
        {"name": "optional", "type": sa.String(10), "nullable": True, "default": None},
        {"name": "defaulted", "type": sa.Integer(), "nullable": False, "default": "0"},
    ]
    assert _problems(dialect, {**schema, "themes": schema["themes"] + added}) == []
    required = {"name": "required", "type": sa.String(10), "nullable": False, "default": None}
    outbox = [c for c in schema["outbox"] if c["name"] != "provider_ref"]
    outbox = [
        {**c, "type": sa.String(100)} if c["name"] == "recipient" else
        {**c, "type": sa.Integer()} if c["name"] == "language" else c
        for c in outbox
    ]
    assert sorted(_problems(dialect, {**schema, "themes": schema["themes"] + [required],
                                      "outbox": outbox})) == [
        "outbox.language: string became int",
        "outbox.provider_ref: column gone",
        "outbox.recipient: string(254) became (100)",
        "themes.required: added NOT NULL without a server default "
        "(the previous release's INSERTs do not name it)",
    ]
