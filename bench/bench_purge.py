"""Bookings per second during a retention purge of 500,000 appointments, beside bookings
per second without it, on PostgreSQL and the national dataset (``bench_national.build``).

The purge runs as another process (``visio purge``, as an instance's hourly job would),
with a retention period chosen so that the 500,000 appointments that ended first are due.
Bookings are measured first without it, then while it runs (the run checks it was still
running when the bookings ended); then the purge's own time and rate.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import bench_booking as bb
import bench_national as bn
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from visio import models as m
from visio.clock import utcnow
from visio.db import Database, open_database
from visio.domain.calendars import HolidayCalendar
from visio.migrate import upgrade
from visio.perf import tune_gc

ROOT = Path(__file__).resolve().parents[1]
TARGET = 500_000


@dataclass(frozen=True, slots=True)
class Measured:
    appointments: int
    due: int
    without: tuple[bb.BookingResult, bb.BookingResult]
    during: tuple[bb.BookingResult, bb.BookingResult]
    purge_running_at_end: bool
    purge_seconds: float
    purged: int
    erased_after: int


async def _due_days(db: Database, target: int) -> tuple[int, int]:
    """Whole retention days making at least ``target`` appointments due; how many are."""
    async with db.read() as session:
        total = int(await session.scalar(
            sa.select(sa.func.count()).select_from(m.Appointment)) or 0)
        nth = min(target, total // 2)
        cutoff = await session.scalar(sa.select(m.Appointment.end)
                                      .order_by(m.Appointment.end).offset(nth - 1).limit(1))
        assert cutoff is not None
        days = max(1, (utcnow() - cutoff).days)
        due = int(await session.scalar(
            sa.select(sa.func.count()).select_from(m.Appointment)
            .where(m.Appointment.end <= utcnow() - timedelta(days=days))) or 0)
    return days, due


async def _erased(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(
            sa.select(sa.func.count()).select_from(m.Appointment)
            .where(m.Appointment.usager_erased_at.is_not(None))) or 0)


async def _bookings(db: Database, data: bb.Dataset, holidays: HolidayCalendar,
                    count: int) -> tuple[bb.BookingResult, bb.BookingResult]:
    sequential = await bb.measure_bookings(db, data, holidays, 1, count)
    concurrent = await bb.measure_bookings(db, data, holidays, bb.CONCURRENCY, count)
    return sequential, concurrent


async def _measure(scale: bb.Scale, size: bn.Size) -> Measured:
    holidays = HolidayCalendar()
    name = f"visio_bench_{secrets.token_hex(4)}"
    await bb._admin(f'CREATE DATABASE "{name}"')
    url = make_url(bb.POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    db = None
    try:
        await asyncio.to_thread(upgrade, url)
        db = open_database(url)
        built = await bn.build(db, holidays, national=True, size=size)
        bb.log(f"built {built.appointments} appointments in {built.seconds:.1f} s")
        days, due = await _due_days(db, TARGET)
        bb.log(f"retention {days} days: {due} appointments due")
        async with db.write_engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("CHECKPOINT")
        without = await _bookings(db, built.data, holidays, scale.bookings)
        env = {**os.environ, "VISIO_DATABASE_URL": url, "VISIO_LOG_LEVEL": "WARNING",
               "VISIO_RETENTION_USAGER_DAYS": str(days),
               "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        purge = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "visio", "purge", env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        # The purge is under way (some rows erased) before the bookings start.
        for _ in range(12_000):
            if purge.returncode is not None or await _erased(db) > 0:
                break
            await asyncio.sleep(0.05)
        during = await _bookings(db, built.data, holidays, scale.bookings)
        running = purge.returncode is None
        out_bytes, err_bytes = await purge.communicate()
        out, err = out_bytes.decode(), err_bytes.decode()
        seconds = time.perf_counter() - started
        if purge.returncode != 0:
            raise RuntimeError(f"visio purge failed: {err}")
        purged = int(out.splitlines()[0].split("\t")[1])
        return Measured(built.appointments, due, without, during, running, seconds, purged,
                        await _erased(db))
    finally:
        if db is not None:
            await db.dispose()
        await bb._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rows(r: Measured) -> list[bb.Row]:
    label = "postgresql"
    rows = [bb.Row(label, f"national dataset (appointments; {r.due:,} due for erasure)",
                   f"{r.appointments:,}")]
    for (name, a), (_same, b) in zip(
            (("sequential", r.without[0]), (f"{bb.CONCURRENCY} tasks", r.without[1])),
            (("sequential", r.during[0]), (f"{bb.CONCURRENCY} tasks", r.during[1])),
            strict=True):
        for when, x in (("without a purge", a), ("during the purge", b)):
            latency = f"{bb.p50(x.latencies_ms):.1f}" if x.latencies_ms else "—"
            rows.append(bb.Row(label, f"book {name} {when}: bookings/s (p50 ms {latency}; "
                                      f"{x.booked} booked, {x.failed} failed)",
                               f"{x.booked / x.seconds:.1f}"))
        ratio = (b.booked / b.seconds) / (a.booked / a.seconds)
        rows.append(bb.Row(label, f"book {name}: during / without", f"{ratio:.2f}",
                           "≥ 0.8", "ok" if ratio >= 0.8 else "missed"))
    rows += [
        bb.Row(label, "the purge was still running when the bookings ended",
               "yes" if r.purge_running_at_end else "no", "yes",
               "ok" if r.purge_running_at_end else "missed"),
        bb.Row(label, f"purge: usager details erased ({r.purged:,}) in (s)",
               f"{r.purge_seconds:.1f}"),
        bb.Row(label, "purge: appointments erased per second",
               f"{r.purged / r.purge_seconds:.0f}"),
        bb.Row(label, "all due appointments erased", f"{r.erased_after:,} / {r.due:,}",
               "equal", "ok" if r.erased_after >= r.due else "missed"),
    ]
    return rows


def run(*, quick: bool = False, small: bool = False) -> tuple[str, bool]:
    """The markdown table, and whether it ran."""
    tune_gc()
    measured = asyncio.run(_measure(bb.QUICK if quick else bb.FULL,
                                    bn.SMALL if small else bn.NATIONAL))
    return bb.markdown(_rows(measured)), True


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--small", action="store_true",
                        help="a small country (a smoke run: the figures mean little)")
    args = parser.parse_args()
    table, _ = run(quick=args.quick, small=args.small)
    print(table)


if __name__ == "__main__":
    main()
