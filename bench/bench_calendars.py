"""Benchmark of imported calendars (busy time from staff members' own calendars).

Run with ``.venv/bin/python bench/bench_calendars.py`` (or ``bench/run.py --only calendars``);
``--quick`` runs fewer repetitions.

1. Import of one 5,000-event feed with recurrences (Outlook-style: Windows zone names,
   weekly RRULEs with EXDATEs and moved occurrences, one-off events, all-day events,
   transparent ones): parsing and expansion over the 8-week booking horizon alone
   (``visio.calendars.busy.busy_intervals``), then the whole import (HTTP fetch from a local
   server, expansion, storage of the busy periods) into a fresh SQLite database.
2. Slot search with 100 staff members who each have imported busy time, beside the same
   search without it: the booking benchmark's dataset (one site with 20 booths, 10
   operators x 10 staff, 20,000 appointments), ``find_slots`` over 4 weeks timed; then
   each staff member's own calendar (weekly meetings and one-off events) imported by the
   background job's code from a local HTTP server, and ``find_slots`` timed again.

Times use ``time.perf_counter()``; nothing is asserted on time. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import secrets
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_booking as bb  # noqa: E402

from visio import models as m  # noqa: E402
from visio.access import Principal  # noqa: E402
from visio.calendars.busy import busy_intervals  # noqa: E402
from visio.db import Database, open_database  # noqa: E402
from visio.domain.calendars import HolidayCalendar  # noqa: E402
from visio.domain.kinds import Role  # noqa: E402
from visio.migrate import upgrade  # noqa: E402
from visio.perf import tune_gc  # noqa: E402
from visio.services import imported_calendars, slot_search  # noqa: E402
from visio.settings import Settings  # noqa: E402

FEED_EVENTS = 5_000
HORIZON_DAYS = 57
Row = bb.Row


@dataclasses.dataclass(frozen=True, slots=True)
class Scale:
    expansions: int = 10
    imports: int = 3
    searches: int = 30


FULL = Scale()
QUICK = Scale(expansions=3, imports=1, searches=8)


def log(message: str) -> None:
    print(f"  [bench_calendars] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ feeds

ROMANCE = """BEGIN:VTIMEZONE\r
TZID:Romance Standard Time\r
BEGIN:STANDARD\r
DTSTART:16010101T030000\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:16010101T020000\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r
END:DAYLIGHT\r
END:VTIMEZONE\r
"""


def _local(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def _event(uid: str, start: datetime, minutes: int, *extra: str) -> str:
    end = start + timedelta(minutes=minutes)
    lines = [
        "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z",
        f"DTSTART;TZID=Romance Standard Time:{_local(start)}",
        f"DTEND;TZID=Romance Standard Time:{_local(end)}", "SUMMARY:Réunion",
        "X-MICROSOFT-CDO-BUSYSTATUS:BUSY", *extra, "END:VEVENT"]
    return "\r\n".join(lines) + "\r\n"


def feed(first: date, events: int, *, seed: int, past_days: int = 540,
         ahead_days: int = 120) -> bytes:
    """An Outlook-style feed of ``events`` VEVENTs, as a calendar of some years holds them:
    most in the past, a fifth weekly series (some with an EXDATE or a moved occurrence,
    some still running), a few all-day and free events."""
    rng = random.Random(seed)
    parts = ["BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook "
             "16.0 MIMEDIR//EN\r\nMETHOD:PUBLISH\r\n", ROMANCE]
    for index in range(events):
        day = first + timedelta(days=rng.randrange(-past_days, ahead_days))
        if day.weekday() >= 5:
            day -= timedelta(days=2)
        hour = rng.choice((8, 9, 10, 11, 13, 14, 15, 16))
        start = datetime.combine(day, clock_time(hour, rng.choice((0, 30))))
        kind = index % 50
        uid = f"040000008200E00074C5B7101A82E008{seed:04d}{index:06d}"
        if kind < 10:  # weekly series, some with an EXDATE and a moved occurrence
            extra = [f"RRULE:FREQ=WEEKLY;COUNT={rng.randrange(4, 60)}"]
            if kind == 0:
                extra.append(f"EXDATE;TZID=Romance Standard Time:"
                             f"{_local(start + timedelta(weeks=1))}")
            parts.append(_event(uid, start, 60, *extra))
            if kind == 1:
                moved = start + timedelta(weeks=2)
                parts.append(_event(uid, moved + timedelta(days=1), 60,
                                    f"RECURRENCE-ID;TZID=Romance Standard Time:"
                                    f"{_local(moved)}"))
        elif kind == 10:  # all day
            parts.append("BEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20260101T000000Z\r\n"
                         f"DTSTART;VALUE=DATE:{day:%Y%m%d}\r\n"
                         f"DTEND;VALUE=DATE:{day + timedelta(days=1):%Y%m%d}\r\n"
                         "SUMMARY:Congé\r\nEND:VEVENT\r\n")
        elif kind == 11:  # free
            parts.append(_event(uid, start, 30, "TRANSP:TRANSPARENT"))
        else:
            parts.append(_event(uid, start, rng.choice((30, 45, 60, 90))))
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts).encode()


@asynccontextmanager
async def serve(feeds: dict[str, bytes]) -> AsyncIterator[str]:
    """Serve ``feeds`` (path -> body) on a free loopback port; the base URL."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=feeds[request.path], content_type="text/calendar",
                            headers={"ETag": f'"{secrets.token_hex(4)}"'})

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def add_calendars(db: Database, staff_ids: Sequence[str], base: str) -> list[str]:
    async with db.write() as session:
        rows = [m.ImportedCalendar(staff_id=s, url=f"{base}/{s}.ics", status="pending",
                                   busy_count=0) for s in staff_ids]
        session.add_all(rows)
    return [r.id for r in rows]


# ------------------------------------------------------------------------------ part 1


def bench_import(scale: Scale) -> list[Row]:
    directory = Path(tempfile.mkdtemp(prefix="visio_bench_cal_"))
    try:
        url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        upgrade(url)
        return asyncio.run(_bench_import(url, scale))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _bench_import(url: str, scale: Scale) -> list[Row]:
    monday = bb.next_monday()
    text = feed(monday, FEED_EVENTS, seed=1)
    start = bb.at(monday, clock_time(0)) - timedelta(days=1)
    end = start + timedelta(days=HORIZON_DAYS)
    samples, periods = [], 0
    for _ in range(scale.expansions):
        began = time.perf_counter()
        periods = len(busy_intervals(text, start=start, end=end, zone="Europe/Paris"))
        samples.append((time.perf_counter() - began) * 1000)
    rows = [Row("—", f"parse + expand a {FEED_EVENTS:,}-event feed ({len(text) / 1e6:.1f} MB, "
                     f"{periods:,} busy periods over {HORIZON_DAYS} days) p50 (ms)",
                f"{bb.p50(samples):.0f}")]

    db = open_database(url)
    try:
        staff_id = await _one_staff(db)
        async with serve({f"/{staff_id}.ics": text}) as base:
            (calendar_id,) = await add_calendars(db, [staff_id], base)
            settings = Settings(database_url=url, secret_key="bench" * 10,
                                calendar_allow_private=True)
            imports: list[float] = []
            for _ in range(scale.imports):
                began = time.perf_counter()
                result = await imported_calendars.refresh_due(
                    db=db, settings=settings, now=start + timedelta(days=1),
                    only=calendar_id)
                imports.append((time.perf_counter() - began) * 1000)
                assert result == {calendar_id: None}, result
    finally:
        await db.dispose()
    rows.append(Row("sqlite", "import it: HTTP fetch + expand + store, p50 (ms)",
                    f"{bb.p50(imports):.0f}"))
    return rows


async def _one_staff(db: Database) -> str:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with db.write() as session:
        await session.execute(sa.insert(m.Operator), [{
            "id": ids[0], "name": "Bench", "code": "BENCHCAL", "country": "FR",
            "kind": "national", "languages": ["fr"], "timezone": "Europe/Paris"}])
        await session.execute(sa.insert(m.Desk), [{"id": ids[1], "operator_id": ids[0],
                                                   "name": "Desk"}])
        await session.execute(sa.insert(m.StaffMember), [{
            "id": ids[2], "desk_id": ids[1], "display_name": "Advisor", "languages": ["fr"],
            "active": True}])
    return ids[2]


# ------------------------------------------------------------------------------ part 2


async def bench_search(label: str, url: str, scale: Scale) -> list[Row]:
    holidays = HolidayCalendar()
    db = open_database(url)
    try:
        data = await bb.load_dataset(db, bb.next_monday(), holidays)
        log(f"{label}: dataset loaded")
        principal = Principal(user_id=data.admin_id, role=Role.ADMIN)
        now = bb.at(data.monday - timedelta(days=1), clock_time(0))
        query = slot_search.SlotQuery(site_id=data.site_id, theme=bb.THEME,
                                      window=bb.search_window(data))

        async def measure() -> tuple[list[float], int]:
            found = 0
            for _ in range(bb.WARMUPS):
                await slot_search.find_slots(db=db, principal=principal, query=query,
                                             now=now, holidays=holidays)
            samples = []
            for _ in range(scale.searches):
                began = time.perf_counter()
                result = await slot_search.find_slots(db=db, principal=principal,
                                                      query=query, now=now, holidays=holidays)
                samples.append((time.perf_counter() - began) * 1000)
                found = len(result.slots)
            return samples, found

        without, slots_without = await measure()
        async with db.read() as session:
            staff_ids = list((await session.scalars(sa.select(m.StaffMember.id)
                                                    .order_by(m.StaffMember.id))).all())
        feeds = {f"/{s}.ics": feed(data.monday, 40, seed=i, past_days=0, ahead_days=28)
                 for i, s in enumerate(staff_ids)}
        async with serve(feeds) as base:
            await add_calendars(db, staff_ids, base)
            settings = Settings(database_url=url, secret_key="bench" * 10,
                                calendar_allow_private=True)
            began = time.perf_counter()
            results = await imported_calendars.refresh_due(db=db, settings=settings, now=now)
            job_s = time.perf_counter() - began
        assert len(results) == len(staff_ids)
        assert set(results.values()) == {None}, results
        async with db.read() as session:
            periods = await session.scalar(sa.select(sa.func.count()).select_from(
                m.BusyPeriod).where(m.BusyPeriod.source.like("cal:%")))
        log(f"{label}: {periods} imported busy periods")
        with_busy, slots_with = await measure()
    finally:
        await db.dispose()
    return [
        Row(label, f"background job: {len(staff_ids)} calendars of 40 events fetched, "
                   f"expanded, stored (s; {periods:,} busy periods)", f"{job_s:.1f}"),
        Row(label, f"find_slots 4 weeks, no imported busy time, p50 / p95 (ms; "
                   f"{slots_without} slots)", f"{bb.p50(without):.1f} / {bb.p95(without):.1f}"),
        Row(label, f"find_slots 4 weeks, 100 staff with imported busy time, p50 / p95 (ms; "
                   f"{slots_with} slots)", f"{bb.p50(with_busy):.1f} / {bb.p95(with_busy):.1f}"),
    ]


def run_sqlite(scale: Scale) -> list[Row]:
    return bb.on_sqlite(bench_search, scale)


def run_postgres(scale: Scale) -> list[Row]:
    return bb.on_postgres(bench_search, scale)


BACKENDS: dict[str, Callable[[Scale], list[Row]]] = {
    "sqlite": run_sqlite, "postgres": run_postgres}


def run(backends: Sequence[str] = tuple(BACKENDS), *, quick: bool = False) -> tuple[str, bool]:
    """Both parts: the markdown table, and whether all ran."""
    tune_gc()
    scale = QUICK if quick else FULL
    rows: list[Row] = []
    complete = True
    parts: list[tuple[str, Callable[[], list[Row]]]] = [
        ("import", lambda: bench_import(scale))]
    parts += [(name, lambda name=name: BACKENDS[name](scale)) for name in backends]
    for name, part in parts:
        try:
            rows += part()
        except Exception as err:  # one part's failure must not hide the others' numbers
            traceback.print_exc()
            rows.append(Row(name, "error", f"{type(err).__name__}: {err}", "—", "error"))
            complete = False
    return bb.markdown(rows), complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    table, complete = run(tuple(BACKENDS) if args.backend == "all" else (args.backend,),
                          quick=args.quick)
    print(table)
    sys.exit(0 if complete else 1)


if __name__ == "__main__":
    main()
