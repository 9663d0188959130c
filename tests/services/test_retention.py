"""Personal data goes when the retention policy says, across a fake clock; the appointment
rows stay, so the figures (appointments per site, status, operator, theme) do not move."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import DEFAULT_NOW, Client, in_thread
from tests.factories import make_appointment, make_operator, make_site, make_user
from visio import jobs
from visio import models as m
from visio.clock import utcnow
from visio.db import Database, open_database
from visio.migrate import upgrade
from visio.services import audit, retention

MakeClient = Callable[..., Awaitable[Client]]
DAY = timedelta(days=1)


async def figures(db: Database) -> list[tuple[str, str, str, str, int]]:
    """Appointments per site, operator, theme and status: what the figures count."""
    a = m.Appointment
    async with db.read() as session:
        rows = (await session.execute(
            sa.select(a.site_id, a.operator_id, a.theme, a.status, sa.func.count())
            .group_by(a.site_id, a.operator_id, a.theme, a.status)
            .order_by(a.site_id, a.status))).all()
    return [(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]


async def usagers(db: Database) -> dict[str, tuple[object, ...]]:
    a = m.Appointment
    async with db.read() as session:
        rows = (await session.execute(
            sa.select(a.id, a.usager_first_name, a.usager_last_name, a.usager_phone,
                      a.usager_email, a.note, a.usager_search))).all()
    return {r[0]: tuple(r[1:]) for r in rows}


async def count(db: Database, table: type[m.Base]) -> int:
    async with db.read() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def world(db: Database, *, base: object = DEFAULT_NOW) -> list[m.Appointment]:
    """Two sites; appointments 100, 50 and 10 days before ``base``, some cancelled, each
    with a call log and a sent message."""
    start0 = base
    assert isinstance(start0, type(DEFAULT_NOW))
    op = await make_operator(db)
    sites = [await make_site(db), await make_site(db)]
    agent = await make_user(db, role="agent", sites=sites)
    made = []
    for n, (site, days) in enumerate([(sites[0], 100), (sites[0], 50), (sites[1], 100),
                                      (sites[1], 10), (sites[0], 200)]):
        start = start0 - days * DAY + n * timedelta(hours=1)
        made.append(await make_appointment(db, site=site, op=op, start=start,
                                           booked_by=agent))
    async with db.write() as session:
        for n, appointment in enumerate(made):
            row = await session.get(m.Appointment, appointment.id)
            assert row is not None
            row.usager_phone, row.usager_email = "+33612345678", "jeanne@example.org"
            row.note = "Dossier de retraite"
            if n % 2:
                row.status, row.cancelled_by = "cancelled", "agent"
            session.add(m.CallEventRow(appointment_id=row.id, at=row.start, kind="joined",
                                       peer_id="kiosk-x", role="kiosk", detail={}))
            session.add(m.OutboxRow(
                appointment_id=row.id, appointment_version=1, kind="booked", channel="sms",
                audience="usager", recipient="+33612345678", language="fr",
                due_at=row.start - 5 * DAY, status="sent", attempts=1, created_at=row.start,
                finished_at=row.start - 5 * DAY))
    return made


async def test_the_purge_erases_on_time_and_the_figures_stay(
    db: Database, make_client: MakeClient,
) -> None:
    made = await world(db)
    before = await figures(db)
    policy = retention.Policy(usager_details=90 * DAY, call_events=180 * DAY,
                              messages=30 * DAY, login_window=timedelta(minutes=15),
                              login_remember=90 * DAY, batch=2)

    # Nothing is due yet where the clock stands before the first appointment ends + 90 days.
    early = DEFAULT_NOW - 100 * DAY + 89 * DAY
    assert (await retention.due(db=db, policy=policy, now=early))["usager_details"] == 1

    # The app's clock at DEFAULT_NOW: the 100- and 200-day-old ones go, not the others.
    client = await make_client(DEFAULT_NOW)
    dry = await retention.due(db=db, policy=policy, now=DEFAULT_NOW)
    assert dry == {"usager_details": 3, "call_events": 1, "messages": 4,
                   "idempotency_keys": 0, "login_failures": 0, "login_successes": 0}
    assert await usagers(db) == await usagers(db)  # the dry run changed nothing
    done = await retention.purge(db=db, policy=policy, now=DEFAULT_NOW)
    assert done == dry
    details = await usagers(db)
    erased = {made[0].id, made[2].id, made[4].id}
    for appointment_id, values in details.items():
        if appointment_id in erased:
            assert values == ("", "", None, None, None, "")
        else:
            assert values[:5] == ("Jeanne", "Martin", "+33612345678", "jeanne@example.org",
                                  "Dossier de retraite")
    assert await figures(db) == before
    assert await count(db, m.CallEventRow) == 4
    assert await count(db, m.OutboxRow) == 1
    assert await retention.due(db=db, policy=policy, now=DEFAULT_NOW) == dict.fromkeys(
        retention.KINDS, 0)

    # A month and a half on, the hourly job (on the app's clock and the settings' policy)
    # erases the 50-day-old one too (and the last message record); the last stays.
    later = await make_client(DEFAULT_NOW + 45 * DAY)
    assert await jobs.purge_retained(later.app) == 2
    assert await jobs.purge_retained(later.app) == 0
    assert {k for k, v in (await usagers(db)).items() if v[0] == ""} == erased | {made[1].id}
    assert await figures(db) == before
    await client.close()

    # The purges are in the audit trail, by the system, with counts and no personal data.
    async with db.read() as session:
        purged = (await session.scalars(sa.select(m.AuditEntry).where(
            m.AuditEntry.action == "retention.purged").order_by(m.AuditEntry.seq))).all()
    assert [(e.actor_kind, e.detail) for e in purged] == [
        ("system", {"usager_details": 3, "call_events": 1, "messages": 4}),
        ("system", {"usager_details": 1, "messages": 1})]
    assert (await audit.verify(db=db)).intact


def visio(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``visio`` command, run to its end."""
    return subprocess.run([sys.executable, "-m", "visio", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_visio_purge_dry_run_says_what_would_go(tmp_path: Path, backend: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'purge.db'}"
    in_thread(lambda: upgrade(url))
    db = open_database(url)
    try:
        await world(db, base=utcnow())
        before = await usagers(db)
    finally:
        await db.dispose()
    env = {**os.environ, "VISIO_DATABASE_URL": url, "VISIO_LOG_LEVEL": "WARNING"}
    run = visio(["purge", "--dry-run"], env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "usager_details\t3\twould go", "call_events\t1\twould go", "messages\t4\twould go",
        "idempotency_keys\t0\twould go", "login_failures\t0\twould go",
        "login_successes\t0\twould go"]
    db = open_database(url)
    try:
        assert await usagers(db) == before
    finally:
        await db.dispose()
    purged = visio(["purge"], env)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.splitlines()[0] == "usager_details\t3\tpurged"
    verified = visio(["audit", "verify"], env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("1 entries checked")
