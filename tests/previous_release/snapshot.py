"""The previous release's schema and rows, frozen in ``schema.json`` beside this file.

**Previous release** = the code and migrations at the ``release`` recorded in the file
(a migration revision and the commit it was taken from). When a release ships, run from
the repository root, on that release's commit::

    .venv/bin/python -m tests.previous_release.snapshot

It migrates a fresh SQLite database to head, writes rows through that release's own
models and factories (a site, an operator with desk, services and staff, an agent, an
appointment, outbox messages, a call event, an audit entry), and records every table's
columns as the models declare them (a type kind, the length of strings, nullability,
server default, primary key) and the rows as stored, in foreign-key order.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator, TypeEngine

HERE = Path(__file__).resolve().parent
SNAPSHOT = HERE / "schema.json"
# Counters the database keeps itself (PostgreSQL triggers bump them on every write to the
# tables they watch): never written by a release's code, so never replayed.
BOOKKEEPING = frozenset({"search_versions", "search_touches"})


def kind_of(type_: TypeEngine[Any]) -> tuple[str, int | None]:
    """A column type as a kind that survives reflection on SQLite and PostgreSQL alike,
    with the length of strings."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    checks: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
        (sa.JSON, "json"),
        (sa.Boolean, "bool"),
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.Time, "time"),
        (sa.BigInteger, "int64"),
        (sa.Integer, "int"),
        (sa.Float, "number"),
        (sa.Numeric, "number"),
        (sa.Text, "text"),
        (sa.String, "string"),
        (sa.LargeBinary, "bytes"),
        (sa.Uuid, "uuid"),
    )
    for cls, name in checks:
        if isinstance(type_, cls):
            length = getattr(type_, "length", None) if name == "string" else None
            return name, length
    return type(type_).__name__.lower(), None


def encode(value: Any) -> Any:
    """A stored value as JSON (instants, dates and times tagged)."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    return value


def decode(value: Any) -> Any:
    """The inverse of ``encode``."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "$datetime":
            return datetime.fromisoformat(text)
        if tag == "$date":
            return date.fromisoformat(text)
        if tag == "$time":
            return time.fromisoformat(text)
    return value


async def _write_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    from tests.factories import make_appointment, make_operator, make_site, make_user
    from visio import models as m
    from visio.db import open_database

    db = open_database(url)
    try:
        # What the migrations themselves wrote (the themes) is no row of the release's code.
        seeded: dict[str, list[dict[str, Any]]] = {}
        async with db.read() as session:
            for table in m.Base.metadata.sorted_tables:
                found = (await session.execute(sa.select(table))).mappings().all()
                seeded[table.name] = [dict(r) for r in found]
        site = await make_site(db, zone="Europe/Paris")
        op = await make_operator(db)
        agent = await make_user(db, role="agent", sites=[site])
        start = datetime(2026, 3, 2, 9, 0, tzinfo=m.UTC)
        appointment = await make_appointment(db, site=site, op=op, start=start, booked_by=agent)
        async with db.write() as session:
            for i, status in enumerate(("pending", "sent")):
                session.add(m.OutboxRow(
                    id=m.new_id(), appointment_id=appointment.id, appointment_version=1,
                    kind="confirmation", channel="email", audience="usager",
                    recipient=f"u{i}@example.fr", language="fr", due_at=start - timedelta(days=2),
                    status=status, attempts=i, created_at=start - timedelta(days=3),
                    finished_at=start - timedelta(days=2) if status == "sent" else None))
            session.add(m.CallEventRow(appointment_id=appointment.id, at=start, kind="join",
                                       peer_id="agent-1", role="agent",
                                       detail={"reconnected": False}))
        rows: dict[str, list[dict[str, Any]]] = {}
        async with db.read() as session:
            for table in m.Base.metadata.sorted_tables:
                if table.name in BOOKKEEPING:
                    continue
                found = (await session.execute(sa.select(table))).mappings().all()
                written = [dict(r) for r in found if dict(r) not in seeded[table.name]]
                if written:
                    rows[table.name] = [{k: encode(v) for k, v in r.items()} for r in written]
        return rows
    finally:
        await db.dispose()


def write() -> None:
    """Write ``schema.json`` for the code of this checkout (see the module's docstring)."""
    from visio import models as m
    from visio.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/snapshot.db"
        upgrade(url)
        rows = asyncio.run(_write_rows(url))
    tables: dict[str, Any] = {}
    for table in m.Base.metadata.sorted_tables:
        columns = {}
        for column in table.columns:
            kind, length = kind_of(column.type)
            columns[column.name] = {
                "kind": kind,
                "length": length,
                "nullable": bool(column.nullable),
                "server_default": column.server_default is not None,
                "primary_key": column.primary_key,
            }
        tables[table.name] = columns
    heads = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           check=False).stdout.strip()
    from alembic.script import ScriptDirectory

    from visio.migrate import alembic_config

    revision = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    snapshot = {"release": {"revision": revision, "commit": heads}, "tables": tables,
                "rows": rows}
    # One line per column and per row: a new release's snapshot diffs readably.
    def lines(mapping: dict[str, Any], indent: str) -> str:
        inner = ",\n".join(f"{indent} {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                           for k, v in mapping.items())
        return "{\n" + inner + f"\n{indent}}}"

    text = "{\n" + f' "release": {json.dumps(snapshot["release"])},\n' + ' "tables": {\n'
    text += ",\n".join(f"  {json.dumps(name)}: {lines(columns, '  ')}"
                       for name, columns in tables.items())
    text += "\n },\n" + ' "rows": {\n'
    text += ",\n".join(
        f"  {json.dumps(name)}: [\n" + ",\n".join(
            "   " + json.dumps(row, ensure_ascii=False) for row in table_rows) + "\n  ]"
        for name, table_rows in rows.items())
    text += "\n }\n}\n"
    assert json.loads(text) == json.loads(json.dumps(snapshot))
    SNAPSHOT.write_text(text)
    print(f"wrote {SNAPSHOT} (revision {revision}, {len(tables)} tables)", file=sys.stderr)


def load() -> dict[str, Any]:
    """The snapshot, as written."""
    data: dict[str, Any] = json.loads(SNAPSHOT.read_text())
    return data


if __name__ == "__main__":
    write()
