"""The audit trail is hash-chained: concurrent writers append one chain, and ``verify``
finds an entry changed, removed or reordered, and says which."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from itertools import pairwise

import pytest
import sqlalchemy as sa
from alembic import command

from tests.conftest import DEFAULT_NOW, in_thread
from visio import models as m
from visio.db import Database, open_database
from visio.domain.audit_chain import GENESIS, Link, canonical, digest
from visio.migrate import alembic_config
from visio.services import audit


async def write(db: Database, count: int) -> None:
    """``count`` entries, each from its own concurrent transaction."""
    async def one(n: int) -> None:
        async with db.write() as session:
            audit.record(session, at=DEFAULT_NOW + timedelta(seconds=n), actor=audit.THE_SYSTEM,
                         action="closure.added", target_kind="closure", target_id=f"c-{n}",
                         fields=("day", "reason"), detail={"n": n})

    await asyncio.gather(*(one(n) for n in range(count)))


async def chain(db: Database) -> list[m.AuditEntry]:
    async with db.read() as session:
        return list((await session.scalars(
            sa.select(m.AuditEntry).order_by(m.AuditEntry.seq))).all())


async def run(db: Database, *statements: str) -> None:
    async with db.write() as session:
        for statement in statements:
            await session.execute(sa.text(statement))


def test_canonical_bytes_are_the_documented_json() -> None:
    link = Link(id="e-1", at=DEFAULT_NOW, actor_id=None, actor_kind="system", action="done",
                appointment_id="a-1", target_kind=None, target_id=None, site_id="s-1",
                request_id="r-1", detail={"version": 2, "fields": ["status"]},
                prev_hash=GENESIS)
    assert canonical(link) == (
        '["e-1","2026-11-23T07:00:00.000000Z",null,"system","done","a-1",null,null,"s-1",'
        f'"r-1",{{"fields":["status"],"version":2}},"{GENESIS}"]').encode()
    assert len(digest(link)) == 64


async def test_concurrent_writers_append_one_unbroken_chain(db: Database) -> None:
    await write(db, 12)
    entries = await chain(db)
    assert [e.seq for e in entries] == list(range(1, 13))
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in pairwise(entries))
    verdict = await audit.verify(db=db)
    assert verdict.intact, verdict.problems
    assert (verdict.checked, verdict.head_seq, verdict.head_hash) == (12, 12, entries[-1].hash)


async def test_a_changed_entry_is_found(db: Database) -> None:
    await write(db, 5)
    changed = (await chain(db))[2]
    await run(db, f"UPDATE audit_log SET action = 'nothing' WHERE seq = {changed.seq}")
    verdict = await audit.verify(db=db)
    assert [(p.kind, p.seq, p.entry_id) for p in verdict.problems] == [
        ("changed", 3, changed.id)]


@pytest.mark.parametrize("seq", [3, 1, 5])
async def test_a_removed_entry_is_found(db: Database, seq: int) -> None:
    await write(db, 5)
    await run(db, f"DELETE FROM audit_log WHERE seq = {seq}")
    verdict = await audit.verify(db=db)
    assert [(p.kind, p.seq) for p in verdict.problems] == [
        ("removed", seq + 1 if seq < 5 else 4)]
    assert not verdict.intact


async def test_a_removed_entry_is_found_even_with_the_seq_renumbered(db: Database) -> None:
    await write(db, 5)
    await run(db, "DELETE FROM audit_log WHERE seq = 3",
              "UPDATE audit_log SET seq = 3 WHERE seq = 4",
              "UPDATE audit_log SET seq = 4 WHERE seq = 5",
              "UPDATE audit_chain SET seq = 4")
    verdict = await audit.verify(db=db)
    assert [(p.kind, p.seq) for p in verdict.problems] == [("removed", 3)]


async def test_reordered_entries_are_found(db: Database) -> None:
    await write(db, 5)
    entries = await chain(db)
    await run(db, "UPDATE audit_log SET seq = 100 WHERE seq = 2",
              "UPDATE audit_log SET seq = 2 WHERE seq = 3",
              "UPDATE audit_log SET seq = 3 WHERE seq = 100")
    verdict = await audit.verify(db=db)
    kinds = [(p.kind, p.seq, p.entry_id) for p in verdict.problems]
    assert kinds[0] == ("reordered", 2, entries[2].id)
    assert {k for k, _seq, _id in kinds} == {"reordered"}


async def test_the_migration_chains_the_entries_written_before_it(database_url: str) -> None:
    config = alembic_config(database_url)
    in_thread(lambda: command.downgrade(config, "0016"))
    old = sa.table("audit_log", sa.column("id", sa.String), sa.column("at", m.UTCDateTime()),
                   sa.column("actor_id", sa.String), sa.column("actor_kind", sa.String),
                   sa.column("action", sa.String), sa.column("appointment_id", sa.String),
                   sa.column("detail", sa.JSON))
    db = open_database(database_url)
    try:
        async with db.write() as session:
            await session.execute(sa.insert(old), [
                {"id": f"old-{n}", "at": DEFAULT_NOW - timedelta(minutes=n), "actor_id": None,
                 "actor_kind": "system", "action": "done", "appointment_id": None,
                 "detail": {"version": n}} for n in (3, 1, 2)])
    finally:
        await db.dispose()
    in_thread(lambda: command.upgrade(config, "heads"))
    db = open_database(database_url)
    try:
        await write(db, 2)
        entries = await chain(db)
        assert [e.id for e in entries[:3]] == ["old-3", "old-2", "old-1"]
        assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
        verdict = await audit.verify(db=db)
        assert verdict.intact, verdict.problems
    finally:
        await db.dispose()
