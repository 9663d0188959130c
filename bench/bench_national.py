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
import dataclasses
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
from visio.domain.usager_search import search_text
from visio.migrate import upgrade
from visio.perf import tune_gc
from visio.services import desk, figures, slot_search
from visio.services.appointments import AppointmentFilter
from visio.services.calendars import load_site, load_staff, service_rule
from visio.services.search_cache import SearchCache
from visio.services.territories import covering_desks, site_place

NORD = "59"
#: The 101 départements: 01–19, 2A, 2B, 21–95, and five overseas.
DEPARTEMENTS = ([f"{n:02d}" for n in range(1, 20)] + ["2A", "2B"]
                + [f"{n:02d}" for n in range(21, 96)] + ["971", "972", "973", "974", "976"])
FUTURE_DAYS = 56


@dataclass(frozen=True, slots=True)
class Size:
    """How big the country around the bench site is."""

    sites: int = 2_700
    staff: int = 5_000
    history_days: int = 730


NATIONAL = Size()
SMALL = Size(sites=300, staff=500, history_days=30)

#: Usagers' names as written, and folded as ``visio.domain.usager_search`` stores them.
FIRST_NAMES = (("Hélène", "helene"), ("Jérôme", "jerome"), ("Zoé", "zoe"),
               ("François", "francois"), ("Anaïs", "anais"), ("Noël", "noel"),
               ("Jeanne", "jeanne"), ("Pierre", "pierre"), ("Marie", "marie"),
               ("Luc", "luc"), ("Fatima", "fatima"), ("Mohamed", "mohamed"),
               ("Sofia", "sofia"), ("Jan", "jan"), ("Els", "els"), ("Kevin", "kevin"),
               ("Sylvie", "sylvie"), ("Thierry", "thierry"), ("Léa", "lea"),
               ("Chloé", "chloe"))
LAST_NAMES = (("Dupont", "dupont"), ("Lefèvre", "lefevre"), ("Ménard", "menard"),
              ("Van den Bossche", "van den bossche"), ("Martin", "martin"),
              ("Bernard", "bernard"), ("Dubois", "dubois"), ("Petit", "petit"),
              ("Durand", "durand"), ("Leroy", "leroy"), ("Moreau", "moreau"),
              ("Simon", "simon"), ("Laurent", "laurent"), ("Michel", "michel"),
              ("Garcia", "garcia"), ("Peeters", "peeters"), ("Janssens", "janssens"),
              ("Maes", "maes"), ("Claes", "claes"), ("Wouters", "wouters"),
              ("Dewaele", "dewaele"), ("Vandamme", "vandamme"), ("Deschamps", "deschamps"),
              ("Roussel", "roussel"), ("Boucher", "boucher"), ("Caron", "caron"),
              ("Lemaire", "lemaire"), ("Fontaine", "fontaine"), ("Chevalier", "chevalier"),
              ("Lefebvre", "lefebvre"), ("Bonnet", "bonnet"), ("Mercier", "mercier"))
#: The agent's two searches: a full name, and a phone number typed nationally.
NAME_QUERY = "helene dupont"


def _array(values: Sequence[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _usager_sql(seed: str) -> dict[str, str]:
    """SQL expressions of an usager's names, phone and folded search text from ``seed``
    (a non-negative bigint expression): the same values for the same seed."""
    first = f"(1 + ({seed}) % {len(FIRST_NAMES)})"
    last = f"(1 + (({seed}) / {len(FIRST_NAMES)}) % {len(LAST_NAMES)})"
    digits = f"lpad((({seed}) % 100000000)::text, 8, '0')"
    return {
        "usager_first_name": f"({_array([f for f, _ in FIRST_NAMES])})[{first}]",
        "usager_last_name": f"({_array([n for n, _ in LAST_NAMES])})[{last}]",
        "usager_phone": f"'+336' || {digits}",
        "usager_search": (f"({_array([f for _, f in FIRST_NAMES])})[{first}] || ' ' || "
                          f"({_array([n for _, n in LAST_NAMES])})[{last}] || ' 336' || "
                          f"{digits} || ' 06' || {digits}"),
    }


async def _name_usagers(db: Database) -> None:
    """Varied usagers for the rows written so far (the bench dataset's are all alike)."""
    columns = _usager_sql("abs(hashtext(id)::bigint) * 7919")
    async with db.write() as session:
        await session.execute(sa.text(
            "UPDATE appointments SET " + ", ".join(f"{k} = {v}" for k, v in columns.items())))


async def _check_folded(db: Database) -> None:
    """The SQL-written texts are those the services would write (the search finds them)."""
    async with db.read() as session:
        rows = (await session.execute(
            sa.select(m.Appointment.usager_first_name, m.Appointment.usager_last_name,
                      m.Appointment.usager_phone, m.Appointment.usager_search)
            .order_by(sa.func.random()).limit(500))).all()
    for first, last, phone, stored in rows:
        if search_text(first, last, phone) != stored:
            raise AssertionError(f"folded text differs: {stored!r}")
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


async def _country(db: Database, data: bb.Dataset, size: Size) -> None:
    """Everything around the bench site: sites, desks, staff, history and other bookings."""
    others = [d for d in DEPARTEMENTS if d != NORD]
    sites: list[dict[str, Any]] = []
    site_deps: dict[str, list[str]] = {d: [] for d in DEPARTEMENTS}
    for i in range(size.sites - 1):
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
    for k in range(size.staff - len(bench_staff)):
        desk_id, operator_id, dep = desk_of[k % len(desk_of)]
        staff_id = str(uuid.uuid4())
        staff.append({"id": staff_id, "desk_id": desk_id, "display_name": f"Advisor {k}",
                      "languages": ["fr"], "active": True})
        rules += [{"id": str(uuid.uuid4()), "staff_id": staff_id, "weekday": weekday,
                   "opens": opens, "closes": closes, "valid_from": None, "valid_until": None}
                  for weekday in range(5) for opens, closes in bb.STAFF_HOURS]
        # Each (site, booth) belongs to one staff member: no booth can be double-booked.
        candidates = site_deps[dep] or [s["id"] for s in sites]
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
        usager = _usager_sql("(h.k::bigint * 104729 + x.n * 7919 + h.slot)")
        usager_values = ", ".join(usager[c] for c in ("usager_first_name",
                                                       "usager_last_name", "usager_phone"))
        usager_search = usager["usager_search"]
        await session.execute(sa.text("""
            INSERT INTO appointments (id, status, site_id, stop_id, booth, operator_id,
                desk_id, staff_id, service_id, theme, start, "end", staff_until,
                usager_first_name, usager_last_name, usager_phone, usager_email,
                usager_language, usager_consent, booked_by, version, created_at,
                updated_at, cancel_reason, usager_search)
            SELECT gen_random_uuid()::text,
                   CASE WHEN x.t < now() THEN 'done' ELSE 'booked' END,
                   h.site_id, NULL, h.booth, h.operator_id, h.desk_id, h.staff_id,
                   h.service_id, :theme, x.t, x.t + interval '30 minutes',
                   x.t + interval '30 minutes', """ + usager_values + """, NULL,
                   'fr', true, :admin, 1, now(), now(), NULL, """ + usager_search + """
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
               "first": today - timedelta(days=size.history_days),
               "last": data.monday + timedelta(days=FUTURE_DAYS), "today": today,
               "period": _PERIOD, "worked": _WORKED})
    async with db.write_engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("ANALYZE")


async def _desks_of(db: Database, staff_ids: Sequence[str]) -> dict[str, str]:
    async with db.read() as session:
        return dict((await session.execute(sa.select(m.StaffMember.id, m.StaffMember.desk_id)
                     .where(m.StaffMember.id.in_(list(staff_ids))))).all())


async def build(db: Database, holidays: HolidayCalendar, *, national: bool,
                size: Size = NATIONAL) -> Built:
    """The one-département dataset, and around it the country if ``national``."""
    started = time.perf_counter()
    data = await bb.load_dataset(db, bb.next_monday(), holidays)
    await _scope_to_nord(db, data)
    await _name_usagers(db)
    if national:
        await _country(db, data, size)
    else:
        async with db.write_engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("ANALYZE")
    seconds = time.perf_counter() - started
    await _check_folded(db)
    async with db.read() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(m.Appointment))
    return Built(data, seconds, int(count or 0))


@dataclass(frozen=True, slots=True)
class Finding:
    """The agent's appointment search: timings, rows found (a page at most), the plan."""

    query: str
    ms: list[float]
    found: int
    plan: str

    @property
    def indexed(self) -> bool:
        return "ix_appointments_usager_search" in self.plan


@dataclass(frozen=True, slots=True)
class FiguresTimed:
    """GET /figures' service over a year, grouped by site: timings and what it counted."""

    ms: list[float]
    appointments: int
    groups: int
    outcomes: int


@dataclass(frozen=True, slots=True)
class Figures:
    label: str
    built: Built
    search: bb.SearchResult
    sequential: bb.BookingResult
    concurrent: bb.BookingResult
    findings: tuple[Finding, ...] = ()
    figures: FiguresTimed | None = None


#: The call's outcome as the appointment carries it (migration 0021).
_COPIED = ("attempted", "connected", "kiosk_joined", "operator_joined", "seconds_to_connect",
           "duration_seconds", "audio_only", "ended_by_failure")


async def _with_outcomes(db: Database) -> int:
    """Give the past year's appointments what the outcome job leaves: a call outcome for
    each one held (connected mostly, some failures, some audio only), a few usagers
    absent and cancellations, and the first slot offered at booking."""
    copied = ", ".join(f"call_{column} = c.{column}" for column in _COPIED)
    async with db.write() as session:
        await session.execute(sa.text("""
            UPDATE appointments SET
              status = CASE WHEN abs(hashtext(id)) % 17 = 0 THEN 'no_show'
                            WHEN abs(hashtext(id)) % 11 = 0 THEN 'cancelled'
                            ELSE status END,
              cancelled_by = CASE WHEN abs(hashtext(id)) % 17 <> 0
                                   AND abs(hashtext(id)) % 11 = 0 THEN 'usager' END,
              created_at = start - (1 + abs(hashtext(id)) % 20) * interval '1 day',
              first_offered_start = start - (1 + abs(hashtext(id)) % 15) * interval '1 day'
            WHERE start < now() AND start >= now() - interval '366 days'"""))
        # A bulk load: the trigger that copies each outcome onto its appointment (0021)
        # is held, and the copy made in one statement below, as the migration does.
        await session.execute(sa.text(
            "ALTER TABLE call_outcomes DISABLE TRIGGER call_outcome_to_appointment"))
        inserted = await session.execute(sa.text("""
            INSERT INTO call_outcomes (appointment_id, attempted, connected, kiosk_joined,
                operator_joined, seconds_to_connect, duration_seconds, audio_only,
                ended_by_failure, computed_at)
            SELECT id, true, status = 'done', status = 'done', true,
                   CASE WHEN status = 'done' THEN 2 + abs(hashtext(id)) % 20 END,
                   CASE WHEN status = 'done' THEN 300 + abs(hashtext(id)) % 1500 END,
                   abs(hashtext(id)) % 9 = 0, abs(hashtext(id)) % 29 = 0, now()
            FROM appointments
            WHERE start < now() AND start >= now() - interval '366 days'
              AND status IN ('done', 'no_show')"""))
        await session.execute(sa.text(f"""
            UPDATE appointments a SET {copied} FROM call_outcomes c
            WHERE c.appointment_id = a.id"""))
        await session.execute(sa.text(
            "ALTER TABLE call_outcomes ENABLE TRIGGER call_outcome_to_appointment"))
    async with db.write_engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # What autovacuum does after a bulk change: the visibility map lets the figures
        # read the index alone (an index-only scan), as on a database in service.
        await autocommit.exec_driver_sql("VACUUM ANALYZE appointments")
        await autocommit.exec_driver_sql("ANALYZE")
    return int(inserted.rowcount or 0)  # type: ignore[attr-defined]


async def _time_figures(db: Database, built: Built, runs: int) -> FiguresTimed:
    """The figures of the past year (366 days to yesterday), grouped by site, as an
    administrator asks them (everything in scope)."""
    outcomes = await _with_outcomes(db)
    principal = Principal(user_id=built.data.admin_id, role=Role.ADMIN)
    last = (bb.next_monday() - timedelta(days=8))
    first = last - timedelta(days=365)

    async def once() -> list[figures.Figure]:
        return await figures.figures(db=db, principal=principal, first=first, last=last,
                                     groups=("site",))

    for _ in range(bb.WARMUPS):
        await once()
    ms: list[float] = []
    found: list[figures.Figure] = []
    for _ in range(runs):
        started = time.perf_counter()
        found = await once()
        ms.append((time.perf_counter() - started) * 1000)
    total = sum(int(f.values["booked"] or 0) for f in found)
    return FiguresTimed(ms=ms, appointments=total, groups=len(found), outcomes=outcomes)


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
    finds: dict[str, Callable[[], Awaitable[int]]] = field(default_factory=dict)
    find_ms: dict[str, list[float]] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)


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

    side = _Side(label, db, built, db_search, memory_search, cached_search, [], [])
    agent = Principal(user_id=data.admin_id, role=Role.AGENT,
                      site_ids=frozenset({data.site_id}))
    async with db.read() as session:
        # A phone booked at the bench site, typed as the usager says it: "06 12 …".
        phone = await session.scalar(sa.select(m.Appointment.usager_phone).where(
            m.Appointment.site_id == data.site_id).order_by(m.Appointment.id).limit(1))
    assert phone is not None
    national = "0" + phone.removeprefix("+33")
    for name, q in (("name", NAME_QUERY),
                    ("phone", " ".join(national[i:i + 2] for i in range(0, 10, 2)))):
        filters = AppointmentFilter(q=q)

        async def find(filters: AppointmentFilter = filters) -> int:
            page = await desk.find(db=db, principal=agent, filters=filters, cursor=None,
                                   limit=25)
            return len(page.rows)

        side.finds[f"{name} ({q})"] = find
        side.find_ms[f"{name} ({q})"] = []
        side.plans[f"{name} ({q})"] = await _plan(db, desk.find_query(
            principal=agent, filters=filters, cursor=None, limit=25))
    return side


async def _plan(db: Database, statement: Any) -> str:
    """PostgreSQL's plan of a statement, run once (EXPLAIN ANALYZE)."""
    # The driver's own dialect: its paramstyle leaves LIKE's % as it is.
    sql = str(statement.compile(dialect=db.write_engine.dialect,
                                compile_kwargs={"literal_binds": True}))
    async with db.read() as session:
        rows = (await session.execute(sa.text("EXPLAIN (ANALYZE, COSTS OFF) " + sql))).all()
    return "\n".join(str(r[0]) for r in rows)


async def _interleaved(sides: Sequence[_Side], holidays: HolidayCalendar,
                       scale: bb.Scale) -> list[Figures]:
    """Searches alternate between the datasets, run by run, so that the machine's load
    (other processes) weighs on both alike; then each one's bookings, back to back."""
    changing = {}
    for side in sides:
        for _ in range(bb.WARMUPS):
            for find in side.finds.values():
                await find()
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
            for name, find in side.finds.items():
                elapsed, side.found[name] = await bb.timed(find)
                side.find_ms[name].append(elapsed)
    bookings: dict[str, list[bb.BookingResult]] = {s.label: [] for s in sides}
    for concurrency in (1, bb.CONCURRENCY):
        for side in sides:
            bookings[side.label].append(await bb.measure_bookings(
                side.db, side.built.data, holidays, concurrency, scale.bookings))
    return [Figures(s.label, s.built,
                    bb.SearchResult(db_ms=s.db_ms, memory_ms=s.memory_ms, default_gc_ms=[],
                                    slots=s.slots, memory_slots=s.memory_slots,
                                    hit_ms=s.hit_ms, changed_ms=s.changed_ms),
                    *bookings[s.label],
                    tuple(Finding(q, s.find_ms[q], s.found[q], s.plans[q]) for q in s.finds))
            for s in sides]


async def _both(scale: bb.Scale, size: Size = NATIONAL) -> list[Figures]:
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
            built = await build(db, holidays, national=national, size=size)
            bb.log(f"{label}: built {built.appointments} appointments in "
                   f"{built.seconds:.1f} s")
            sides.append(await _side(label, db, built, holidays))
        async with dbs[-1].write_engine.connect() as conn:
            # Let the bulk load's dirty pages reach disk before timing anything.
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("CHECKPOINT")
        measured = await _interleaved(sides, holidays, scale)
        bb.log("measured")
        # Last: the figures' data changes the appointments the other measures read.
        timed = [await _time_figures(s.db, s.built, min(scale.runs, 20)) for s in sides]
        bb.log("figures measured")
        return [dataclasses.replace(f, figures=t) for f, t in zip(measured, timed,
                                                                   strict=True)]
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
    for finding in f.findings:
        rows += [
            bb.Row(f.label, f"appointment search, one site, by {finding.query} p50 (ms; "
                            f"{finding.found} shown)", f"{bb.p50(finding.ms):.1f}"),
            bb.Row(f.label, f"appointment search, one site, by {finding.query} p95 (ms)",
                   f"{bb.p95(finding.ms):.1f}"),
            bb.Row(f.label, f"appointment search by {finding.query}: plan uses the "
                            "trigram index", "yes" if finding.indexed else "no", "yes",
                   "ok" if finding.indexed else "missed"),
        ]
    if f.figures is not None:
        t = f.figures
        p95_figures = bb.p95(t.ms)
        rows += [
            bb.Row(f.label, f"figures, a year grouped by site, p50 (ms; {t.appointments:,} "
                            f"appointments, {t.groups} sites, {t.outcomes:,} call outcomes)",
                   f"{bb.p50(t.ms):.1f}"),
            bb.Row(f.label, "figures, a year grouped by site, p95 (ms)", f"{p95_figures:.1f}",
                   "< 1000", "ok" if p95_figures < 1000 else "missed"),
        ]
    for name, r in (("sequential", f.sequential), (f"{bb.CONCURRENCY} tasks", f.concurrent)):
        latency = f"{bb.p50(r.latencies_ms):.1f}" if r.latencies_ms else "—"
        rows.append(bb.Row(f.label, f"book {name}: bookings/s (p50 ms {latency}; "
                                    f"{r.booked} booked, {r.failed} failed)",
                           f"{r.booked / r.seconds:.1f}"))
    return rows


def plans(figures: Sequence[Figures]) -> str:
    """The plans of the agent's searches, as markdown code blocks."""
    parts = []
    for f in figures:
        for finding in f.findings:
            parts.append(f"\n{f.label}, appointment search by {finding.query}:\n\n"
                         f"```\n{finding.plan}\n```")
    return "\n".join(parts)


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


def run(*, quick: bool = False, small: bool = False) -> tuple[str, bool]:
    """Both datasets in one run: the markdown table, and whether both ran."""
    tune_gc()
    scale = bb.QUICK if quick else bb.FULL
    one, nat = asyncio.run(_both(scale, SMALL if small else NATIONAL))
    rows = _rows(one) + _rows(nat) + _compare(one, nat)
    return bb.markdown(rows) + "\n" + plans((one, nat)), True


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
