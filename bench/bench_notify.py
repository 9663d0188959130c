"""Benchmark of the notification dispatcher: 10,000 due e-mails into a local SMTP sink.

Run with ``.venv/bin/python bench/bench_notify.py`` (or ``bench/run.py --only notify``);
``--quick`` dispatches 1,000. For SQLite (a file) and PostgreSQL: a migrated database with
100 appointments and 10,000 outbox rows (usager confirmations, each to its own address),
all due at the same instant; one in-process ``Dispatcher`` (the code ``visio worker``
runs) drains them into an aiosmtpd server on 127.0.0.1, whose handler only notes the
``X-Visio-Outbox-Id`` and the arrival time. Throughput is messages accepted by the sink
per second from the first claim to the last arrival; lateness is arrival minus due time
(so under a burst it grows with the queue: p50 is about half the drain time). Rows at
``VISIO_DISPATCH_CONCURRENCY`` 1 (the default: at most one repeat per crash) and 8.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from visio import models as m  # noqa: E402
from visio.db import Database, open_database  # noqa: E402
from visio.migrate import upgrade  # noqa: E402
from visio.notify.dispatcher import Dispatcher  # noqa: E402
from visio.settings import Settings  # noqa: E402

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Pacific/Auckland",
         "America/Los_Angeles", "Asia/Kolkata", "Europe/Moscow", "America/Sao_Paulo",
         "Asia/Dubai")
_ID = re.compile(rb"X-Visio-Outbox-Id: ([0-9a-f-]{36})")


class Sink:
    """An SMTP server that notes each message's outbox id and arrival time, nothing else."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.repeats = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        found = _ID.search(getattr(envelope, "original_content", b"") or b"")
        now = time.time()
        with self._lock:
            if found:
                key = found.group(1).decode()
                if key in self.arrivals:
                    self.repeats += 1
                else:
                    self.arrivals[key] = now
        return "250 OK"


async def _fill(db: Database, count: int, due: datetime) -> None:
    async with db.write() as session:
        # A zone where it is daytime now: quiet hours would hold usager messages back.
        zone = next(z for z in ZONES if 9 <= due.astimezone(ZoneInfo(z)).hour < 17)
        site = m.Site(name="Bench", kind="fixed", commune="Hondschoote", address="1 place",
                      timezone=zone, country="FR", booths=20)
        operator = m.Operator(name="CAF du Nord", code=f"B{secrets.token_hex(3)}",
                              country="FR", kind="national", languages=["fr"],
                              timezone="Europe/Paris")
        session.add_all([site, operator])
        await session.flush()
        desk = m.Desk(operator_id=operator.id, name="Desk")
        session.add(desk)
        await session.flush()
        staff = m.StaffMember(desk_id=desk.id, display_name="Staff", languages=["fr"],
                              active=True)
        service = m.Service(operator_id=operator.id, theme="famille", duration_minutes=30,
                            languages=["fr"])
        agent = m.User(email=f"a{secrets.token_hex(3)}@b.test", display_name="A",
                       password_hash="x", role="agent")
        session.add_all([staff, service, agent])
        await session.flush()
        start = due.replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=7)
        appointments = []
        for i in range(100):
            begin = start + timedelta(minutes=30 * i)
            appointment = m.Appointment(
                status="booked", site_id=site.id, booth=1 + i % 20, operator_id=operator.id,
                desk_id=desk.id, staff_id=staff.id, service_id=service.id, theme="famille",
                start=begin, end=begin + timedelta(minutes=30),
                staff_until=begin + timedelta(minutes=30), usager_first_name="Jeanne",
                usager_last_name="Martin", usager_email="x@example.fr",
                usager_language="fr", usager_consent=True, booked_by=agent.id, version=1,
                created_at=due, updated_at=due)
            session.add(appointment)
            appointments.append(appointment)
        await session.flush()
        for chunk in range(0, count, 1000):
            session.add_all([m.OutboxRow(
                appointment_id=appointments[i % 100].id, appointment_version=1,
                kind="confirmation", channel="email", audience="usager",
                recipient=f"u{i}@example.fr", language=("fr", "nl")[i % 2], due_at=due,
                status="pending", attempts=0, created_at=due)
                for i in range(chunk, min(count, chunk + 1000))])
            await session.flush()


async def _postgres_url() -> tuple[str, str]:
    name = f"visio_bench_notify_{secrets.token_hex(3)}"
    admin = make_url(POSTGRES).set(drivername="postgresql").render_as_string(
        hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(POSTGRES).set(database=name).render_as_string(hide_password=False), name


async def _drop(name: str) -> None:
    admin = make_url(POSTGRES).set(drivername="postgresql").render_as_string(
        hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def one_run(url: str, count: int, concurrency: int, port: int) -> dict[str, float]:
    """Fill, drain into the sink, and measure."""
    await asyncio.to_thread(upgrade, url)
    db = open_database(url)
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        await _fill(db, count, due)
        settings = Settings(database_url=url, secret_key="bench-" + "x" * 32,
                            smtp_host="127.0.0.1", smtp_port=port, dispatch_batch=200,
                            dispatch_concurrency=concurrency, notify_daily_cap=10**6)
        dispatcher = Dispatcher(db=db, settings=dataclasses.replace(settings))
        started = time.time()
        await dispatcher.drain(max_batches=10**6)
        await dispatcher.close()
        finished = max(sink.arrivals.values(), default=started)
        late = sorted(t - due.timestamp() for t in sink.arrivals.values())
        async with db.read() as session:
            sent = await session.scalar(sa.select(sa.func.count()).select_from(m.OutboxRow)
                                        .where(m.OutboxRow.status == "sent"))
    finally:
        controller.stop()
        await db.dispose()
    return {"received": len(sink.arrivals), "repeats": sink.repeats, "sent": sent or 0,
            "rate": len(sink.arrivals) / max(finished - started, 1e-9),
            "p50": statistics.quantiles(late, n=100)[49] if len(late) > 1 else 0.0,
            "p99": statistics.quantiles(late, n=100)[98] if len(late) > 1 else 0.0}


async def main_async(quick: bool) -> tuple[str, bool]:
    """Every row of the table."""
    count = 1000 if quick else 10_000
    lines = ["| backend | dispatcher concurrency | e-mails received / sent | throughput "
             "(e-mails/s) | lateness p50 / p99 (s) |", "|---|---|---|---|---|"]
    done = True
    port = 8025 + secrets.randbelow(1000)
    for backend in ("sqlite", "postgresql"):
        for concurrency in (1, 8):
            name = None
            try:
                if backend == "sqlite":
                    folder = tempfile.mkdtemp(prefix="visio-bench-notify-")
                    url = f"sqlite+aiosqlite:///{folder}/bench.db"
                else:
                    url, name = await _postgres_url()
                result = await one_run(url, count, concurrency, port)
                port += 1
                ok = result["received"] == count and result["repeats"] == 0
                done = done and ok
                lines.append(
                    f"| {backend} | {concurrency} | {int(result['received'])} / "
                    f"{int(result['sent'])} of {count} | {result['rate']:.0f} | "
                    f"{result['p50']:.1f} / {result['p99']:.1f} |")
            except Exception as err:  # the other rows still count
                lines.append(f"| {backend} | {concurrency} | failed: {type(err).__name__}: "
                             f"{err} | | |")
                done = False
            finally:
                if name is not None:
                    await _drop(name)
            print(lines[-1], flush=True, file=sys.stderr)
    return "\n".join(lines), done


def run(quick: bool = False) -> tuple[str, bool]:
    """The table, and whether every run completed."""
    return asyncio.run(main_async(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    table, complete = run(parser.parse_args().quick)
    print(table)
    sys.exit(0 if complete else 1)
