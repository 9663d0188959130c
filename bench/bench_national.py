"""The booking benchmark at national scale, beside the one-département figures (PostgreSQL).

``make bench SCALE=national`` (``bench/run.py --scale national``) builds, in one run, on
two fresh PostgreSQL databases:

1. **one département**: the usual bench dataset (one fixed site with 20 booths, 10
   operators x 10 staff, 20,000 appointments in the coming weeks), the site in the Nord
   (59) and every desk serving the Nord;
2. **national**: the same, and around it the country: 2,700 sites in 101 départements
   (the bench site and 2,699 others), the 10 operators with a desk in each of the 101
   départements (1,010 desks) and 5,000 staff in all, and about 1,000,000 stored
   appointments: two years of history (the bench site's staff included) and the next 8
   weeks elsewhere. It is generated in SQL (``INSERT ... SELECT`` over
   ``generate_series``) through the real exclusion constraints; the build time is
   reported.

Both answer the same 4-week search at the bench site with the same slots: history and
other départements must cost nothing. Both datasets are built first; then the searches
alternate between them run by run (and the bookings run back to back), so that the load of
other processes on the machine weighs on both alike. Printed: ``find_slots`` p50/p95
and their ratio to the in-memory search, booking throughput and p50, and the national /
one-département ratios. (The issue names 9 operators; the bench keeps the one-département
dataset's 10, so that both searches meet exactly the same staff.)
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import time as clock_time
from datetime import timedelta
from typing import Any

import bench_booking as bb
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from visio import models as m
from visio.access import Principal
from visio.db import Database, open_database
from visio.domain.calendars import HolidayCalendar
from visio.domain.kinds import Role
from visio.domain.search import search_slots
from visio.migrate import upgrade
from visio.perf import tune_gc
from visio.services import slot_search
from visio.services.calendars import load_site, load_staff, service_rule
from visio.services.search_cache import SearchCache
from visio.services.territories import covering_desks, site_place

NORD = "59"
#: The 101 départements: 01–19, 2A, 2B, 21–95, and five overseas.
DEPARTEMENTS = ([f"{n:02d}" for n in range(1, 20)] + ["2A", "2B"]
                + [f"{n:02d}" for n in range(21, 96)] + ["971", "972", "973", "974", "976"])
SITES = 2_700
STAFF = 5_000
HISTORY_DAYS = 730
FUTURE_DAYS = 56
# Other staff work one day in ``_PERIOD`` out of ``_WORKED`` (about 190 days each).
_PERIOD, _WORKED = 17, 6


@dataclass(frozen=True, slots=True)
class Built:
    data: bb.Dataset
    seconds: float
    appointments: int


async def _scope_to_nord(db: Database, data: bb.Dataset) -> None:
    """The bench site is in the Nord; the bench operators' desks serve the Nord."""
    async with db.write() as session:
        await session.execute(sa.update(m.Site).where(m.Site.id == data.site_id)
                              .values(departement=NORD, commune_insee="59309"))
        desks = (await session.scalars(sa.select(m.Desk.id))).all()
        await session.execute(sa.insert(m.DeskDepartement),
                              [{"desk_id": d, "departement": NORD} for d in desks])


async def _country(db: Database, data: bb.Dataset) -> None:
    """Everything around the bench site: sites, desks, staff, history and other bookings."""
    others = [d for d in DEPARTEMENTS if d != NORD]
    sites: list[dict[str, Any]] = []
    site_deps: dict[str, list[str]] = {d: [] for d in DEPARTEMENTS}
    for i in range(SITES - 1):
        dep = DEPARTEMENTS[i % len(DEPARTEMENTS)]
        site_id = str(uuid.uuid4())
        site_deps[dep].append(site_id)
        sites.append({"id": site_id, "name": f"France Services {dep}-{i}", "kind": "fixed",
                      "commune": f"Commune {i}", "address": "Place de la mairie",
                      "timezone": "Europe/Paris", "country": "FR", "booths": 2,
                      "departement": dep, "commune_insee": None})
    async with db.read() as session:
        bench_staff = (await session.execute(sa.select(m.StaffMember.id, m.Desk.operator_id)
                       .join(m.Desk, m.Desk.id == m.StaffMember.desk_id)
                       .order_by(m.StaffMember.id))).all()
    desks: list[dict[str, Any]] = []
    territory: list[dict[str, Any]] = []
    desk_of: list[tuple[str, str, str]] = []  # (desk id, operator id, département)
    for operator_id in data.operator_ids:
        for dep in others:
            desk_id = str(uuid.uuid4())
            desks.append({"id": desk_id, "operator_id": operator_id,
                          "name": f"Desk {dep}", "fallback_phone": None})
            territory.append({"desk_id": desk_id, "departement": dep})
            desk_of.append((desk_id, operator_id, dep))
    staff: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    homes: list[dict[str, Any]] = []
    used: dict[str, int] = {}
    for k in range(STAFF - len(bench_staff)):
        desk_id, operator_id, dep = desk_of[k % len(desk_of)]
        staff_id = str(uuid.uuid4())
        staff.append({"id": staff_id, "desk_id": desk_id, "display_name": f"Advisor {k}",
                      "languages": ["fr"], "active": True})
        rules += [{"id": str(uuid.uuid4()), "staff_id": staff_id, "weekday": weekday,
                   "opens": opens, "closes": closes, "valid_from": None, "valid_until": None}
                  for weekday in range(5) for opens, closes in bb.STAFF_HOURS]
        # Each (site, booth) belongs to one staff member: no booth can be double-booked.
        candidates = site_deps[dep]
        site_id = candidates[k % len(candidates)]
        booth = used.get(site_id, 0) + 1
        if booth > 2:
            site_id = next(s for s in candidates if used.get(s, 0) < 2)
            booth = used.get(site_id, 0) + 1
        used[site_id] = booth
        homes.append({"k": k, "staff_id": staff_id, "site_id": site_id, "booth": booth,
                      "slot": 0, "operator_id": operator_id, "desk_id": desk_id,
                      "service_id": data.service_ids[operator_id], "future": True})
    bench_desks = await _desks_of(db, [s for s, _ in bench_staff])
    for b, (staff_id, operator_id) in enumerate(bench_staff):
        # History only, on the bench site's booths: (booth, half-hour) unique per member.
        homes.append({"k": b, "staff_id": staff_id, "site_id": data.site_id,
                      "booth": b % bb.BOOTHS + 1, "slot": b // bb.BOOTHS,
                      "operator_id": operator_id, "desk_id": bench_desks[staff_id],
                      "service_id": data.service_ids[operator_id], "future": False})
    async with db.write() as session:
        for table, rows in ((m.Site, sites), (m.Desk, desks), (m.DeskDepartement, territory),
                            (m.StaffMember, staff), (m.AvailabilityRule, rules)):
            for i in range(0, len(rows), 5000):
                await session.execute(sa.insert(table), rows[i:i + 5000])
        await session.execute(sa.text(
            "CREATE TEMPORARY TABLE bench_homes (k int, staff_id text, site_id text, "
            "booth int, slot int, operator_id text, desk_id text, service_id text, "
            "future bool) ON COMMIT DROP"))
        await session.execute(sa.text(
            "INSERT INTO bench_homes VALUES (:k, :staff_id, :site_id, :booth, :slot, "
            ":operator_id, :desk_id, :service_id, :future)"), homes)
        today = data.monday - timedelta(days=7)
        await session.execute(sa.text("""
            INSERT INTO appointments (id, status, site_id, stop_id, booth, operator_id,
                desk_id, staff_id, service_id, theme, start, "end", staff_until,
                usager_first_name, usager_last_name, usager_phone, usager_email,
                usager_language, usager_consent, booked_by, version, created_at,
                updated_at, cancel_reason)
            SELECT gen_random_uuid()::text,
                   CASE WHEN x.t < now() THEN 'done' ELSE 'booked' END,
                   h.site_id, NULL, h.booth, h.operator_id, h.desk_id, h.staff_id,
                   h.service_id, :theme, x.t, x.t + interval '30 minutes',
                   x.t + interval '30 minutes', 'Jeanne', 'Bench', '+33612345678', NULL,
                   'fr', true, :admin, 1, now(), now(), NULL
            FROM bench_homes h
            CROSS JOIN LATERAL (
                SELECT ((d::date + time '08:00' + h.slot * interval '30 minutes')
                        AT TIME ZONE 'Europe/Paris') AS t, (d::date - CAST(:first AS date)) AS n
                FROM generate_series(CAST(:first AS date)::timestamp,
                                     (CASE WHEN h.future THEN CAST(:last AS date)
                                           ELSE CAST(:today AS date) END)::timestamp,
                                     interval '1 day') AS d
                WHERE extract(isodow FROM d) < 6
            ) x
            WHERE NOT h.future OR (x.n + h.k) % :period < :worked
        """), {"theme": bb.THEME, "admin": data.admin_id,
               "first": today - timedelta(days=HISTORY_DAYS),
               "last": data.monday + timedelta(days=FUTURE_DAYS), "today": today,
               "period": _PERIOD, "worked": _WORKED})
    async with db.write_engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("ANALYZE")


async def _desks_of(db: Database, staff_ids: Sequence[str]) -> dict[str, str]:
    async with db.read() as session:
        return dict((await session.execute(sa.select(m.StaffMember.id, m.StaffMember.desk_id)
                     .where(m.StaffMember.id.in_(list(staff_ids))))).all())


async def build(db: Database, holidays: HolidayCalendar, *, national: bool) -> Built:
    """The one-département dataset, and around it the country if ``national``."""
    started = time.perf_counter()
    data = await bb.load_dataset(db, bb.next_monday(), holidays)
    await _scope_to_nord(db, data)
    if national:
        await _country(db, data)
    else:
        async with db.write_engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("ANALYZE")
    seconds = time.perf_counter() - started
    async with db.read() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(m.Appointment))
    return Built(data, seconds, int(count or 0))


@dataclass(frozen=True, slots=True)
class Figures:
    label: str
    built: Built
    search: bb.SearchResult
    sequential: bb.BookingResult
    concurrent: bb.BookingResult


@dataclass
class _Side:
    label: str
    db: Database
    built: Built
    db_search: Callable[[], Awaitable[list[Any]]]
    memory_search: Callable[[], list[Any]]
    cached_search: Callable[[], Awaitable[list[Any]]]
    db_ms: list[float]
    memory_ms: list[float]
    hit_ms: list[float] = field(default_factory=list)
    changed_ms: list[float] = field(default_factory=list)
    slots: int = 0
    memory_slots: int = 0


async def _side(label: str, db: Database, built: Built,
                holidays: HolidayCalendar) -> _Side:
    """The two searches of one dataset: through find_slots, and in memory (the same staff
    find_slots reads: of the desks covering the site)."""
    data = built.data
    principal = Principal(user_id=data.admin_id, role=Role.ADMIN)
    now = bb.at(data.monday - timedelta(days=1), clock_time(0))
    window = bb.search_window(data)
    query = slot_search.SlotQuery(site_id=data.site_id, theme=bb.THEME, window=window)

    async def db_search() -> list[Any]:
        found = await slot_search.find_slots(db=db, principal=principal, query=query,
                                             now=now, holidays=holidays)
        return found.slots

    cache = SearchCache(16)

    async def cached_search() -> list[Any]:
        found = await slot_search.find_slots(db=db, principal=principal, query=query,
                                             now=now, holidays=holidays, cache=cache)
        return found.slots

    async with db.read() as session:
        site = await session.get(m.Site, data.site_id)
        assert site is not None
        services = [service_rule(s) for s in (await session.scalars(
            sa.select(m.Service).where(m.Service.theme == bb.THEME))).all()]
        site_calendar = await load_site(session=session, site=site, window=window)
        operator_ids = sorted({s.operator_id for s in services})
        place = site_place(site)
        desks = (await covering_desks(session, operator_ids, [place]))[place]
        staff = await load_staff(session=session, operator_ids=operator_ids, window=window,
                                 desk_ids=desks)

    def memory_search() -> list[Any]:
        return search_slots(site=site_calendar, services=services, staff=staff,
                            window=window, now=now, holidays=holidays)

    return _Side(label, db, built, db_search, memory_search, cached_search, [], [])


async def _interleaved(sides: Sequence[_Side], holidays: HolidayCalendar,
                       scale: bb.Scale) -> list[Figures]:
    """Searches alternate between the datasets, run by run, so that the machine's load
    (other processes) weighs on both alike; then each one's bookings, back to back."""
    changing = {}
    for side in sides:
        for _ in range(bb.WARMUPS):
            await side.db_search()
            await side.cached_search()
            side.memory_search()
        changing[side.label] = bb.ChangingSearch(side.db, side.built.data, holidays,
                                                 side.cached_search, scale.runs)
        await changing[side.label].prepare()
    for run in range(scale.runs):
        for side in sides:
            elapsed, found = await bb.timed(side.db_search)
            side.db_ms.append(elapsed)
            side.slots = len(found)
            side.hit_ms.append((await bb.timed(side.cached_search))[0])
            if run % 2 == 0:  # a booking and its cancellation: two samples
                await changing[side.label].run_once(side.changed_ms)
            started = time.perf_counter()
            side.memory_slots = len(side.memory_search())
            side.memory_ms.append((time.perf_counter() - started) * 1000)
    bookings: dict[str, list[bb.BookingResult]] = {s.label: [] for s in sides}
    for concurrency in (1, bb.CONCURRENCY):
        for side in sides:
            bookings[side.label].append(await bb.measure_bookings(
                side.db, side.built.data, holidays, concurrency, scale.bookings))
    return [Figures(s.label, s.built,
                    bb.SearchResult(db_ms=s.db_ms, memory_ms=s.memory_ms, default_gc_ms=[],
                                    slots=s.slots, memory_slots=s.memory_slots,
                                    hit_ms=s.hit_ms, changed_ms=s.changed_ms),
                    *bookings[s.label]) for s in sides]


async def _both(scale: bb.Scale) -> list[Figures]:
    holidays = HolidayCalendar()
    names = [f"visio_bench_{secrets.token_hex(4)}" for _ in range(2)]
    dbs: list[Database] = []
    try:
        sides = []
        for name, (label, national) in zip(names, (("one département", False),
                                                   ("national", True)), strict=True):
            await bb._admin(f'CREATE DATABASE "{name}"')
            url = make_url(bb.POSTGRES_URL).set(database=name).render_as_string(
                hide_password=False)
            await asyncio.to_thread(upgrade, url)
            db = open_database(url)
            dbs.append(db)
            built = await build(db, holidays, national=national)
            bb.log(f"{label}: built {built.appointments} appointments in "
                   f"{built.seconds:.1f} s")
            sides.append(await _side(label, db, built, holidays))
        async with dbs[-1].write_engine.connect() as conn:
            # Let the bulk load's dirty pages reach disk before timing anything.
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("CHECKPOINT")
        figures = await _interleaved(sides, holidays, scale)
        bb.log("measured")
        return figures
    finally:
        for db in dbs:
            await db.dispose()
        for name in names:
            await bb._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rows(f: Figures) -> list[bb.Row]:
    s = f.search
    ratio = bb.p50(s.db_ms) / bb.p50(s.memory_ms)
    p95 = bb.p95(s.db_ms)
    rows = [
        bb.Row(f.label, f"dataset built (s; {f.built.appointments:,} appointments)",
               f"{f.built.seconds:.1f}"),
        *bb.cached_rows(f.label, s, p95_target_ms=20, ratio_target=2),
        bb.Row(f.label, f"find_slots 4 weeks, no cache, p50 (ms; {s.slots} slots)",
               f"{bb.p50(s.db_ms):.1f}"),
        bb.Row(f.label, "find_slots 4 weeks, no cache, p95 (ms)", f"{p95:.1f}"),
        bb.Row(f.label, "search_slots in memory p50 (ms)", f"{bb.p50(s.memory_ms):.1f}"),
        bb.Row(f.label, "ratio find_slots (no cache) p50 / in-memory p50", f"{ratio:.2f}"),
    ]
    for name, r in (("sequential", f.sequential), (f"{bb.CONCURRENCY} tasks", f.concurrent)):
        latency = f"{bb.p50(r.latencies_ms):.1f}" if r.latencies_ms else "—"
        rows.append(bb.Row(f.label, f"book {name}: bookings/s (p50 ms {latency}; "
                                    f"{r.booked} booked, {r.failed} failed)",
                           f"{r.booked / r.seconds:.1f}"))
    return rows


def _compare(one: Figures, nat: Figures) -> list[bb.Row]:
    def within(value: float) -> str:
        return "ok" if value <= 1.2 else "missed"

    same = one.search.slots == nat.search.slots
    rows = [
        bb.Row("national / one", "same slots found", f"{nat.search.slots} / "
               f"{one.search.slots}", "equal", "ok" if same else "missed"),
    ]
    for name, here, there in (("nothing changed", one.search.hit_ms, nat.search.hit_ms),
                       ("after a booking or cancellation", one.search.changed_ms,
                        nat.search.changed_ms),
                       ("no cache", one.search.db_ms, nat.search.db_ms)):
        p50 = bb.p50(there) / bb.p50(here)
        p95 = bb.p95(there) / bb.p95(here)
        rows += [
            bb.Row("national / one", f"find_slots ({name}) p50 ratio", f"{p50:.2f}",
                   "≤ 1.2", within(p50)),
            bb.Row("national / one", f"find_slots ({name}) p95 ratio", f"{p95:.2f}",
                   "≤ 1.2", within(p95)),
        ]
    for name, a, b in (("sequential", one.sequential, nat.sequential),
                       (f"{bb.CONCURRENCY} tasks", one.concurrent, nat.concurrent)):
        throughput = (b.booked / b.seconds) / (a.booked / a.seconds)
        rows.append(bb.Row("national / one", f"book {name}: throughput ratio",
                           f"{throughput:.2f}", "≥ 1/1.2 (0.83)",
                           "ok" if throughput >= 1 / 1.2 else "missed"))
        if a.latencies_ms and b.latencies_ms:
            latency = bb.p50(b.latencies_ms) / bb.p50(a.latencies_ms)
            rows.append(bb.Row("national / one", f"book {name}: p50 latency ratio",
                               f"{latency:.2f}", "≤ 1.2", within(latency)))
    return rows


def run(*, quick: bool = False) -> tuple[str, bool]:
    """Both datasets in one run: the markdown table, and whether both ran."""
    tune_gc()
    scale = bb.QUICK if quick else bb.FULL
    one, nat = asyncio.run(_both(scale))
    rows = _rows(one) + _rows(nat) + _compare(one, nat)
    return bb.markdown(rows), True


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    table, _ = run(quick=args.quick)
    print(table)


if __name__ == "__main__":
    main()
