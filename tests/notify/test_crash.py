"""Dispatchers as separate processes (``visio worker``), killed with SIGKILL at random.

Counted at the receiving SMTP server: no message may be lost, and once the receiver drops
repeated X-Visio-Outbox-Id none is duplicated. A kill after the server accepted a message
and before the row was marked sends that message again (at least once delivery); the raw
count of such repeats is printed, and can be at most one per kill (one send in flight).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tests.factories import make_appointment, make_operator, make_site, make_user
from tests.notify.receivers import SmtpSink, duplicates
from visio import models as m
from visio.clock import utcnow
from visio.db import Database

ROOT = Path(__file__).resolve().parents[2]


ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Pacific/Auckland",
         "America/Los_Angeles", "Asia/Kolkata", "Europe/Moscow", "America/Sao_Paulo",
         "Asia/Dubai")


def daytime_zone() -> str:
    """A zone where it is 09:00-17:00 now, so quiet hours hold no usager message back."""
    now = utcnow()
    return next(z for z in ZONES if 9 <= now.astimezone(ZoneInfo(z)).hour < 17)


async def _fill(db: Database, count: int) -> set[str]:
    """``count`` due usager e-mails, each to its own address, for one appointment."""
    site = await make_site(db, zone=daytime_zone())
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    start = utcnow().replace(microsecond=0) + timedelta(days=7)
    appointment = await make_appointment(db, site=site, op=op, start=start, booked_by=agent)
    now = utcnow()
    rows = [m.OutboxRow(id=m.new_id(), appointment_id=appointment.id, appointment_version=1,
                        kind="confirmation", channel="email", audience="usager",
                        recipient=f"u{i}@example.fr", language=("fr", "nl", "en")[i % 3],
                        due_at=now - timedelta(seconds=1), status="pending", attempts=0,
                        created_at=now) for i in range(count)]
    async with db.write() as session:
        session.add_all(rows)
    return {r.id for r in rows}


def _env(database_url: str, smtp: SmtpSink, *, lease: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIO_")}
    env.update({
        "VISIO_DATABASE_URL": database_url, "VISIO_SECRET_KEY": "crash-test-" + "x" * 32,
        "VISIO_SMTP_HOST": "127.0.0.1", "VISIO_SMTP_PORT": str(smtp.port),
        "VISIO_DISPATCH_INTERVAL_SECONDS": "0.2", "VISIO_DISPATCH_BATCH": "20",
        "VISIO_DISPATCH_LEASE_SECONDS": str(lease), "VISIO_DISPATCH_RETRY_SECONDS": "0.5",
        "VISIO_LOG_LEVEL": "WARNING", "VISIO_MAIL_FROM": "rdv@visio.test",
        # The code under test (this checkout), whatever the virtualenv has installed.
        "PYTHONPATH": str(ROOT),
    })
    return env


async def _worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    # `python -m visio worker` is the `visio worker` console script.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "visio", "worker", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def _statuses(db: Database) -> dict[str, int]:
    async with db.read() as session:
        rows = (await session.execute(sa.select(m.OutboxRow.status, sa.func.count())
                                      .group_by(m.OutboxRow.status))).all()
    return {status: count for status, count in rows}


async def settled(db: Database, deadline: float) -> bool:
    """Wait until no row is pending (True) or ``deadline`` (monotonic) passes (False)."""
    while True:
        if not (await _statuses(db)).get("pending", 0):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)


async def test_killed_dispatchers_lose_nothing_and_duplicate_nothing(
        db: Database, database_url: str, smtp_sink: SmtpSink, backend: str) -> None:
    """2,000 e-mails, two workers, one killed with SIGKILL at random every 0.2-1.5 s, 30 times."""
    count = int(os.environ.get("VISIO_CRASH_MESSAGES", "2000"))
    most = int(os.environ.get("VISIO_CRASH_KILLS", "30"))
    expected = await _fill(db, count)
    env = _env(database_url, smtp_sink, lease=2)
    rng = random.Random(10)
    workers = [await _worker(env), await _worker(env)]
    kills = 0
    deadline = time.monotonic() + 300
    try:
        while len(set(smtp_sink.ids())) < count and time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            assert all(w.returncode is None for w in workers), "a worker stopped by itself"
            if kills < most:
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                await workers[victim].wait()
                kills += 1
                workers[victim] = await _worker(env)
        # After the last kill, the survivors finish what the dead left (leases run out).
        await settled(db, deadline)
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            await worker.wait()
    ids = smtp_sink.ids()
    raw = duplicates(ids)
    print(f"\n[{backend}] {count} messages, {kills} SIGKILLs: received {len(ids)}, "
          f"distinct {len(set(ids))}, lost {len(expected - set(ids))}, "
          f"raw duplicates {raw}, duplicates after dropping repeated ids 0")
    assert set(ids) == expected  # nothing lost, nothing unknown
    assert len(set(ids)) == len(ids) - raw  # after dropping repeats: each exactly once
    assert raw <= kills  # at most the one send in flight per kill
    assert kills >= 10
    assert await _statuses(db) == {"sent": count}
