"""Benchmark of slot search and booking on SQLite and PostgreSQL.

Run with ``.venv/bin/python bench/bench_booking.py`` (or through ``bench/run.py``);
``--quick`` runs fewer repetitions (a smoke run; its p95/p99 mean little).
For each backend: a fresh, migrated database; a bulk-loaded dataset (one fixed site with
20 booths, 10 operators x 10 staff, 20,000 booked appointments); then

1. ``slot_search.find_slots`` over a 4-week window (3 warm-ups, 30 timed runs);
2. the same search with the calendars already in memory (``search_slots`` only);
3. on PostgreSQL only, the same search through the real HTTP server: ``create_app`` served
   by ``web.AppRunner`` + ``web.TCPSite`` on 127.0.0.1 in this process, 32 agent accounts
   of the bench site logged in through ``POST /api/v1/auth/token``, each an
   ``aiohttp.ClientSession`` sending ``GET /api/v1/slots`` one after another; requests per
   second and p50/p99 latency with 1, 8 and 32 agents at once (the per-user search rate
   limit is raised so that it never answers; ``VISIO_SEARCH_CONCURRENCY`` stays at its
   default, reported in the table);
4. ``booking.book`` throughput, sequential and with 8 concurrent tasks (the service alone:
   the Idempotency-Key record now lives in the API layer and is not part of it).

Times use ``time.perf_counter()``; nothing is asserted on time. Prints a markdown table.

The process runs with the server's garbage-collector settings (``visio.perf.tune_gc``,
which ``visio serve`` applies after start-up), applied here before the first backend.
``find_slots`` is also timed with CPython's default GC settings, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import make_url

from visio import models as m
from visio.access import Principal
from visio.app import create_app
from visio.clock import utcnow
from visio.contract import bodies as api
from visio.db import Database, open_database
from visio.domain.calendars import HolidayCalendar
from visio.domain.intervals import Interval
from visio.domain.kinds import Language, Role
from visio.domain.search import search_slots
from visio.domain.slot_types import Slot
from visio.errors import VisioError
from visio.keys import database_key, hasher_key
from visio.migrate import upgrade
from visio.perf import DEFAULT_GC_THRESHOLDS, tune_gc
from visio.security import hash_password
from visio.services import booking, changes, slot_search
from visio.services.calendars import load_site, load_staff, service_rule
from visio.services.search_cache import SearchCache
from visio.services.territories import covering_desks, site_place
from visio.settings import Settings

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PARIS = ZoneInfo("Europe/Paris")
THEME = "famille"

OPERATORS = 10
STAFF_PER_OPERATOR = 10
BOOTHS = 20
APPOINTMENTS = 20_000
# Average appointments per half-hour of the site's grid: below BOOTHS, so that the site is
# never full and a booth or two stays free at each time for the booking benchmark.
TARGET_PER_SLOT = 18.2
SITE_OPENS, SITE_CLOSES = clock_time(8), clock_time(19)
STAFF_HOURS = ((clock_time(9), clock_time(12)), (clock_time(13, 30), clock_time(17)))
DURATION = timedelta(minutes=30)

SEARCH_DAYS = 28
WARMUPS = 3
CONCURRENCY = 8
BOOKING_DAYS = 42  # bookings are taken from the first 6 weeks (inside the 56-day horizon)
SEARCH_P95_TARGET_MS = 50.0

HTTP_AGENTS = (1, 8, 32)  # agents searching at once through the HTTP server
AGENT_PASSWORD = "bench-agent-password-2026"
# High enough that the per-user token bucket never refuses a bench search.
HTTP_RATE_PER_MINUTE = 1_000_000


@dataclass(frozen=True, slots=True)
class Scale:
    """How many repetitions: the full run, or a quick smoke run."""

    runs: int = 30  # timed find_slots / in-memory searches
    bookings: int = 200
    http_requests: int = 20  # timed HTTP searches per agent


FULL = Scale()
QUICK = Scale(runs=8, bookings=40, http_requests=6)


# ------------------------------------------------------------------------------ report


@dataclass(frozen=True, slots=True)
class Row:
    backend: str
    measure: str
    value: str
    target: str = "—"
    ok: str = ""


def markdown(rows: Sequence[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| backend | measure | value | target | ok |", "|---|---|---|---|---|"]
    lines += [f"| {r.backend} | {r.measure} | {r.value} | {r.target} | {r.ok} |" for r in rows]
    return "\n".join(lines)


def p50(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def p95(samples: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    return percentile(samples, 0.95)


def p99(samples: Sequence[float]) -> float:
    """Nearest-rank 99th percentile."""
    return percentile(samples, 0.99)


def log(message: str) -> None:
    print(f"  [bench_booking] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ dataset


def next_monday() -> date:
    """The first Monday strictly after today (Europe/Paris)."""
    today = utcnow().astimezone(PARIS).date()
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7)


def at(day: date, hour: clock_time) -> datetime:
    """A wall-clock time in Paris as an aware UTC instant."""
    return datetime.combine(day, hour, tzinfo=PARIS).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Dataset:
    site_id: str
    admin_id: str
    operator_ids: list[str]
    service_ids: dict[str, str]  # operator id -> service id
    monday: date
    appointments: int
    first_day: date
    last_day: date


def _grid(day: date) -> list[datetime]:
    starts = []
    wall = datetime.combine(day, SITE_OPENS, tzinfo=PARIS)
    closes = datetime.combine(day, SITE_CLOSES, tzinfo=PARIS)
    while wall + DURATION <= closes:
        starts.append(wall.astimezone(UTC))
        wall += DURATION
    return starts


def _appointment_days(monday: date, holidays: HolidayCalendar) -> list[date]:
    """Enough open weekdays from ``monday`` on to hold the appointments below the cap."""
    per_day = len(_grid(monday))
    needed = math.ceil(APPOINTMENTS / (per_day * TARGET_PER_SLOT))
    days: list[date] = []
    day = monday
    while len(days) < needed:
        if day.weekday() < 5 and not holidays.is_holiday("FR", day):
            days.append(day)
        day += timedelta(days=1)
    return days


async def load_dataset(db: Database, monday: date, holidays: HolidayCalendar) -> Dataset:
    """Insert the benchmark's rows with bulk core inserts, in one transaction."""
    created = utcnow()
    site_id = str(uuid.uuid4())
    admin_id = str(uuid.uuid4())
    operators, desks, services, staff, rules = [], [], [], [], []
    staff_ids: list[str] = []
    staff_desk: dict[str, tuple[str, str]] = {}  # staff id -> (operator id, desk id)
    service_ids: dict[str, str] = {}
    for o in range(OPERATORS):
        operator_id, desk_id, service_id = (str(uuid.uuid4()) for _ in range(3))
        operators.append({"id": operator_id, "name": f"Bench operator {o}",
                          "code": f"BENCH{o:02d}", "country": "FR", "kind": "national",
                          "languages": ["fr"], "timezone": "Europe/Paris"})
        desks.append({"id": desk_id, "operator_id": operator_id, "name": f"Desk {o}"})
        services.append({"id": service_id, "operator_id": operator_id, "theme": THEME,
                         "duration_minutes": 30, "buffer_minutes": 0, "languages": ["fr"],
                         "notice_minutes": 120, "horizon_days": 56})
        service_ids[operator_id] = service_id
        for s in range(STAFF_PER_OPERATOR):
            staff_id = str(uuid.uuid4())
            staff_ids.append(staff_id)
            staff_desk[staff_id] = (operator_id, desk_id)
            staff.append({"id": staff_id, "desk_id": desk_id,
                          "display_name": f"Advisor {o}-{s}", "languages": ["fr"],
                          "active": True})
            rules += [{"id": str(uuid.uuid4()), "staff_id": staff_id, "weekday": weekday,
                       "opens": opens, "closes": closes, "valid_from": None,
                       "valid_until": None}
                      for weekday in range(5) for opens, closes in STAFF_HOURS]

    # Appointments on the site's half-hour grid (08:00-19:00): the staff rules cover only
    # 6.5 h a day, and 20 booths x 13 half-hours x 50 days is 13,000 < 20,000, so part of
    # them lie outside the weekly rules (as earlier rules or overrides would leave them).
    # At each time, booths 1..k and k distinct staff: no booth and no staff overlap.
    days = _appointment_days(monday, holidays)
    times = [start for day in days for start in _grid(day)]
    base, extra = divmod(APPOINTMENTS, len(times))
    assert base + (extra > 0) < BOOTHS
    every = len(times) / extra if extra else 0.0
    plus_one = {int(i * every) for i in range(extra)}
    appointments: list[dict[str, Any]] = []
    cursor = 0
    for index, start in enumerate(times):
        count = base + (index in plus_one)
        for booth in range(1, count + 1):
            staff_id = staff_ids[cursor % len(staff_ids)]
            cursor += 1
            operator_id, desk_id = staff_desk[staff_id]
            appointments.append({
                "id": str(uuid.uuid4()), "status": "booked", "site_id": site_id,
                "stop_id": None, "booth": booth, "operator_id": operator_id,
                "desk_id": desk_id, "staff_id": staff_id,
                "service_id": service_ids[operator_id], "theme": THEME, "start": start,
                "end": start + DURATION, "staff_until": start + DURATION,
                "usager_first_name": "Jeanne", "usager_last_name": f"Bench{len(appointments)}",
                "usager_phone": "+33612345678", "usager_email": None,
                "usager_language": "fr", "usager_consent": True, "booked_by": admin_id,
                "version": 1, "created_at": created, "updated_at": created,
                "cancel_reason": None,
            })
    assert len(appointments) == APPOINTMENTS

    async with db.write() as session:
        await session.execute(sa.insert(m.User), [{
            "id": admin_id, "email": f"bench-admin-{secrets.token_hex(4)}@visio.test",
            "display_name": "Bench admin", "password_hash": "not-a-hash", "role": "admin",
            "staff_id": None, "active": True, "created_at": created}])
        await session.execute(sa.insert(m.Site), [{
            "id": site_id, "name": "France Services bench", "kind": "fixed",
            "commune": "Hondschoote", "address": "1 place de la mairie",
            "timezone": "Europe/Paris", "country": "FR", "booths": BOOTHS}])
        await session.execute(sa.insert(m.SiteHours), [
            {"id": str(uuid.uuid4()), "site_id": site_id, "weekday": weekday,
             "opens": SITE_OPENS, "closes": SITE_CLOSES} for weekday in range(5)])
        await session.execute(sa.insert(m.Operator), operators)
        await session.execute(sa.insert(m.Desk), desks)
        await session.execute(sa.insert(m.Service), services)
        await session.execute(sa.insert(m.StaffMember), staff)
        await session.execute(sa.insert(m.AvailabilityRule), rules)
        # Latest first: SQLite's overlap triggers then scan only the few rows starting at or
        # after the new one (in time order each insert would scan every earlier row).
        appointments.reverse()
        for i in range(0, len(appointments), 2000):
            await session.execute(sa.insert(m.Appointment), appointments[i:i + 2000])
    if db.dialect == "postgresql":
        # What autovacuum would soon do after such a load; without it the planner guesses.
        async with db.write_engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("ANALYZE")
    return Dataset(site_id=site_id, admin_id=admin_id, operator_ids=list(service_ids),
                   service_ids=service_ids, monday=monday, appointments=len(appointments),
                   first_day=days[0], last_day=days[-1])


# ------------------------------------------------------------------------------ measures


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await fn()
    return (time.perf_counter() - started) * 1000, result


@contextmanager
def cpython_default_gc() -> Iterator[None]:
    """CPython's default GC settings for the duration (nothing frozen, default thresholds);
    the server's settings again afterwards."""
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_GC_THRESHOLDS)
    try:
        yield
    finally:
        tune_gc()


@dataclass(frozen=True, slots=True)
class SearchResult:
    db_ms: list[float]  # find_slots without a cache: everything loaded every time
    memory_ms: list[float]
    default_gc_ms: list[float]
    slots: int
    memory_slots: int
    hit_ms: list[float] = field(default_factory=list)  # cache: nothing changed since
    changed_ms: list[float] = field(default_factory=list)  # cache: right after a booking
    # or a cancellation at the site (that staff member's and the site's appointments read
    # again, the slots found again)


class ChangingSearch:
    """Times the cached search right after a real booking at the site, and again right
    after its cancellation: each search finds the appointments changed."""

    def __init__(self, db: Database, data: Dataset, holidays: HolidayCalendar,
                 search: Callable[[], Awaitable[list[Slot]]], runs: int) -> None:
        self.db, self.data, self.holidays, self.search = db, data, holidays, search
        self.principal = Principal(user_id=data.admin_id, role=Role.ADMIN)
        self.runs = runs
        self.free: list[Plan] = []

    async def prepare(self) -> None:
        self.free = await plan_bookings(self.db, self.data, self.holidays, utcnow(),
                                        self.runs)

    async def run_once(self, samples: list[float]) -> None:
        item = self.free.pop()
        booked = await booking.book(
            db=self.db, principal=self.principal, now=utcnow(), holidays=self.holidays,
            request=api.Booking(
                site_id=self.data.site_id, start=item.start, operator_id=item.operator_id,
                theme=THEME, usager=api.UsagerIn(
                    first_name="Jeanne", last_name="Martin", phone="+33612345678",
                    email=None, language=Language.FR, consent=True)))
        samples.append((await timed(self.search))[0])
        await changes.cancel(db=self.db, principal=self.principal,
                             appointment_id=booked.appointment.id, reason="bench",
                             expected_version=None, now=utcnow(), rooms=changes.no_rooms)
        samples.append((await timed(self.search))[0])


def search_window(data: Dataset) -> Interval:
    """The 4-week window every search of the benchmark asks for."""
    return Interval(at(data.monday, clock_time(0)),
                    at(data.monday + timedelta(days=SEARCH_DAYS), clock_time(0)))


async def measure_search(db: Database, data: Dataset, holidays: HolidayCalendar,
                         scale: Scale) -> SearchResult:
    principal = Principal(user_id=data.admin_id, role=Role.ADMIN)
    now = at(data.monday - timedelta(days=1), clock_time(0))
    window = search_window(data)
    query = slot_search.SlotQuery(site_id=data.site_id, theme=THEME, window=window)

    async def db_search() -> list[Slot]:
        found = await slot_search.find_slots(db=db, principal=principal, query=query,
                                             now=now, holidays=holidays)
        return found.slots

    async def measure_db() -> tuple[list[float], list[Slot]]:
        for _ in range(WARMUPS):
            await db_search()
        samples: list[float] = []
        found: list[Slot] = []
        for _ in range(scale.runs):
            elapsed, found = await timed(db_search)
            samples.append(elapsed)
        return samples, found

    db_ms, slots = await measure_db()
    with cpython_default_gc():
        default_gc_ms, _ = await measure_db()

    cache = SearchCache(16)

    async def cached_search() -> list[Slot]:
        found = await slot_search.find_slots(db=db, principal=principal, query=query,
                                             now=now, holidays=holidays, cache=cache)
        return found.slots

    for _ in range(WARMUPS):
        await cached_search()
    hit_ms = [(await timed(cached_search))[0] for _ in range(scale.runs)]
    changing = ChangingSearch(db, data, holidays, cached_search, scale.runs // 2)
    await changing.prepare()
    changed_ms: list[float] = []
    for _ in range(scale.runs // 2):
        await changing.run_once(changed_ms)

    async with db.read() as session:
        site = await session.get(m.Site, data.site_id)
        assert site is not None
        services = [service_rule(s) for s in (await session.scalars(
            sa.select(m.Service).where(m.Service.theme == THEME))).all()]
        site_calendar = await load_site(session=session, site=site, window=window)
        # The staff find_slots reads: of the desks whose territory covers the site.
        operator_ids = sorted({s.operator_id for s in services})
        place = site_place(site)
        desks = (await covering_desks(session, operator_ids, [place]))[place]
        staff = await load_staff(session=session, operator_ids=operator_ids, window=window,
                                 desk_ids=desks)

    def memory_search() -> list[Slot]:
        return search_slots(site=site_calendar, services=services, staff=staff, window=window,
                            now=now, holidays=holidays)

    for _ in range(WARMUPS):
        memory_search()
    memory_ms: list[float] = []
    memory_slots: list[Slot] = []
    for _ in range(scale.runs):
        started = time.perf_counter()
        memory_slots = memory_search()
        memory_ms.append((time.perf_counter() - started) * 1000)
    return SearchResult(db_ms=db_ms, memory_ms=memory_ms, default_gc_ms=default_gc_ms,
                        slots=len(slots), memory_slots=len(memory_slots), hit_ms=hit_ms,
                        changed_ms=changed_ms)


@dataclass(frozen=True, slots=True)
class Plan:
    start: datetime
    operator_id: str


async def free_booths(
    db: Database, site_id: str, starts: Sequence[datetime]
) -> dict[datetime, int]:
    """How many booths are still free at each of ``starts``."""
    async with db.read() as session:
        taken = Counter((await session.scalars(
            sa.select(m.Appointment.start).where(
                m.Appointment.site_id == site_id, m.Appointment.status != "cancelled",
                m.Appointment.start.in_(list(starts)))
        )).all())
    return {s: BOOTHS - taken.get(s, 0) for s in starts}


async def plan_bookings(db: Database, data: Dataset, holidays: HolidayCalendar, now: datetime,
                        count: int) -> list[Plan]:
    """``count`` (start, operator) pairs that are free now, one booth each, interleaved so
    that neighbours in the list (booked at the same moment by concurrent tasks) differ in
    start and never race for one booth or one advisor."""
    principal = Principal(user_id=data.admin_id, role=Role.ADMIN)
    window = Interval(max(now + timedelta(hours=3), at(data.monday, clock_time(0))),
                      at(data.monday + timedelta(days=BOOKING_DAYS), clock_time(0)))
    found = await slot_search.find_slots(
        db=db, principal=principal, now=now, holidays=holidays,
        query=slot_search.SlotQuery(site_id=data.site_id, theme=THEME, window=window))
    by_start: dict[datetime, list[str]] = defaultdict(list)
    for slot in found.slots:
        by_start[slot.start].append(slot.operator_id)
    booths = await free_booths(db, data.site_id, list(by_start))
    rounds: list[list[Plan]] = []
    for start in sorted(by_start):
        operators = by_start[start][:booths[start]]
        for i, operator_id in enumerate(operators):
            if i == len(rounds):
                rounds.append([])
            rounds[i].append(Plan(start, operator_id))
    plan = [p for r in rounds for p in r][:count]
    if len(plan) < count:
        log(f"only {len(plan)} free (start, operator) pairs for {count} bookings")
    return plan


@dataclass(frozen=True, slots=True)
class BookingResult:
    seconds: float
    booked: int
    failed: int
    latencies_ms: list[float]


async def measure_bookings(db: Database, data: Dataset, holidays: HolidayCalendar,
                           concurrency: int, count: int) -> BookingResult:
    principal = Principal(user_id=data.admin_id, role=Role.ADMIN)
    plan = await plan_bookings(db, data, holidays, utcnow(), count)
    queue: asyncio.Queue[Plan] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)
    latencies: list[float] = []
    failures: Counter[str] = Counter()

    async def book_one(item: Plan) -> None:
        request = api.Booking(
            site_id=data.site_id, start=item.start, operator_id=item.operator_id, theme=THEME,
            usager=api.UsagerIn(first_name="Jeanne", last_name="Martin",
                                phone="+33612345678", email=None, language=Language.FR,
                                consent=True),
        )
        started = time.perf_counter()
        try:
            booked = await booking.book(db=db, principal=principal, request=request,
                                        now=utcnow(), holidays=holidays)
        except VisioError as err:
            failures[type(err).__name__] += 1
            return
        latencies.append((time.perf_counter() - started) * 1000)
        if booked.appointment.start != item.start:
            failures["booked another start"] += 1

    async def worker() -> None:
        while not queue.empty():
            await book_one(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    if failures:
        log(f"booking failures ({concurrency} task(s)): {dict(failures)}")
    failed = sum(failures.values())
    return BookingResult(seconds=seconds, booked=len(plan) - failed, failed=failed,
                         latencies_ms=latencies)


# ------------------------------------------------------------------------------ HTTP


@dataclass(frozen=True, slots=True)
class HttpLevel:
    agents: int
    seconds: float
    latencies_ms: list[float]  # of the 200 answers
    refused: Counter[int]  # other statuses, by status
    slots: set[int]  # item counts seen (one per agent: its first answer is parsed)
    errors: dict[int, str]  # the first body of each status other than 200 and 429


@dataclass(frozen=True, slots=True)
class HttpResult:
    levels: list[HttpLevel]
    search_concurrency: int
    search_max_wait: float
    requests_per_agent: int


async def create_agents(app: web.Application, site_id: str, count: int) -> list[str]:
    """``count`` agent accounts of the bench site (one password, hashed by the app)."""
    password_hash = hash_password(app[hasher_key], AGENT_PASSWORD)
    created = utcnow()
    tag = secrets.token_hex(3)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    emails = [f"bench-agent-{i}-{tag}@visio.test" for i in range(count)]
    async with app[database_key].write() as session:
        await session.execute(sa.insert(m.User), [
            {"id": user_id, "email": email, "display_name": f"Bench agent {i}",
             "password_hash": password_hash, "role": Role.AGENT.value, "staff_id": None,
             "active": True, "created_at": created}
            for i, (user_id, email) in enumerate(zip(ids, emails, strict=True))])
        await session.execute(sa.insert(m.UserSite),
                              [{"user_id": user_id, "site_id": site_id} for user_id in ids])
    return emails


async def log_in(client: aiohttp.ClientSession, base: str, email: str) -> str:
    async with client.post(f"{base}/api/v1/auth/token",
                           json={"email": email, "password": AGENT_PASSWORD}) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"login of {email}: {response.status} {body}")
        return str(body["access_token"])


async def http_search(client: aiohttp.ClientSession, url: str, params: dict[str, str],
                      parse: bool) -> tuple[int, float, int, bytes]:
    """One search: its status, its latency (until the whole body is read), its item count
    when ``parse`` (-1 otherwise: the clients only read the bytes), and its body."""
    started = time.perf_counter()
    async with client.get(url, params=params) as response:
        raw = await response.read()
        elapsed = (time.perf_counter() - started) * 1000
        items = len(json.loads(raw)["items"]) if parse and response.status == 200 else -1
        return response.status, elapsed, items, raw


async def http_level(clients: Sequence[aiohttp.ClientSession], url: str,
                     params: dict[str, str], requests: int) -> HttpLevel:
    """``len(clients)`` agents at once, each sending ``requests`` searches in turn."""
    for client in clients:  # one untimed warm-up each (connection, first query)
        await http_search(client, url, params, parse=False)
    latencies: list[float] = []
    refused: Counter[int] = Counter()
    counts: set[int] = set()
    errors: dict[int, str] = {}

    async def agent(client: aiohttp.ClientSession) -> None:
        for i in range(requests):
            status, elapsed, items, raw = await http_search(client, url, params,
                                                            parse=i == 0)
            if status != 200:
                refused[status] += 1
                if status != 429:
                    errors.setdefault(status, raw[:300].decode(errors="replace"))
                continue
            latencies.append(elapsed)
            if items >= 0:
                counts.add(items)

    started = time.perf_counter()
    await asyncio.gather(*(agent(c) for c in clients))
    return HttpLevel(len(clients), time.perf_counter() - started, latencies, refused, counts,
                     errors)


async def measure_http(url: str, data: Dataset, scale: Scale) -> HttpResult:
    """Slot searches through the real application served on a loopback port."""
    settings = Settings(database_url=url, secret_key=secrets.token_hex(32),
                        search_rate_per_minute=HTTP_RATE_PER_MINUTE, log_level="WARNING")
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    clients: list[aiohttp.ClientSession] = []
    try:
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        emails = await create_agents(app, data.site_id, max(HTTP_AGENTS))
        window = search_window(data)
        params = {"site_id": data.site_id, "theme": THEME,
                  "from": window.start.astimezone(PARIS).isoformat(),
                  "to": window.end.astimezone(PARIS).isoformat()}
        for email in emails:
            client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            clients.append(client)
            token = await log_in(client, base, email)
            client.headers["Authorization"] = f"Bearer {token}"
        tune_gc()  # start-up done, as `visio serve` does

        levels = []
        for agents in HTTP_AGENTS:
            level = await http_level(clients[:agents], f"{base}/api/v1/slots", params,
                                     scale.http_requests)
            if level.refused:
                log(f"HTTP search, {agents} agent(s): refused {dict(level.refused)}")
            for status, text in level.errors.items():
                log(f"HTTP search, {agents} agent(s): first {status} answer: {text}")
            levels.append(level)
        return HttpResult(levels, settings.search_concurrency,
                          settings.search_max_wait_seconds, scale.http_requests)
    finally:
        for client in clients:
            await client.close()
        await runner.cleanup()


def http_rows(label: str, result: HttpResult, expected_slots: int) -> list[Row]:
    rows = []
    for level in result.levels:
        done = len(level.latencies_ms)
        sent = level.agents * result.requests_per_agent
        notes = [f"{level.agents} agent{'s' if level.agents > 1 else ''} x "
                 f"{result.requests_per_agent}"]
        if level.refused:
            notes.append("refused " + ", ".join(f"{n} x {status}" for status, n in
                                                sorted(level.refused.items())))
        if level.slots != {expected_slots}:
            notes.append(f"slots {sorted(level.slots)} ≠ {expected_slots}!")
        value = (f"{done / level.seconds:.1f} req/s; p50 {p50(level.latencies_ms):.0f} / "
                 f"p99 {p99(level.latencies_ms):.0f} ms" if done else "none answered")
        # Only 200 and 429 (the server shedding load) are answers a search may get.
        wrong = bool(level.errors) or level.slots != {expected_slots}
        rows.append(Row(label, f"HTTP GET /slots 4 weeks ({'; '.join(notes)}; "
                               f"{done}/{sent} ok)", value, ok="error" if wrong else ""))
    return rows


# ------------------------------------------------------------------------------ backends


async def bench_backend(label: str, url: str, scale: Scale, http: bool = False) -> list[Row]:
    holidays = HolidayCalendar()
    db = open_database(url)
    http_result: HttpResult | None = None
    try:
        started = time.perf_counter()
        data = await load_dataset(db, next_monday(), holidays)
        log(f"{label}: loaded {data.appointments} appointments "
            f"({data.first_day}..{data.last_day}) in {time.perf_counter() - started:.1f} s")
        search = await measure_search(db, data, holidays, scale)
        log(f"{label}: search done")
        if http:  # before the bookings, so that it finds the same slots
            started = time.perf_counter()
            http_result = await measure_http(url, data, scale)
            log(f"{label}: HTTP search done in {time.perf_counter() - started:.1f} s")
        sequential = await measure_bookings(db, data, holidays, 1, scale.bookings)
        concurrent = await measure_bookings(db, data, holidays, CONCURRENCY, scale.bookings)
        log(f"{label}: bookings done")
    finally:
        await db.dispose()

    db_p95 = p95(search.db_ms)
    rows = [
        *cached_rows(label, search),
        Row(label, f"find_slots 4 weeks, no cache, p50 (ms; {search.slots} slots)",
            f"{p50(search.db_ms):.1f}"),
    ]
    if label == "postgresql":
        ok = "ok" if db_p95 < SEARCH_P95_TARGET_MS else "missed"
        rows.append(Row(label, "find_slots 4 weeks, no cache, p95 (ms)", f"{db_p95:.1f}",
                        f"< {SEARCH_P95_TARGET_MS:.0f} ms", ok))
    else:
        rows.append(Row(label, "find_slots 4 weeks, no cache, p95 (ms)", f"{db_p95:.1f}"))
    rows += [
        Row(label, "find_slots 4 weeks, no cache, p50, CPython default GC (ms)",
            f"{p50(search.default_gc_ms):.1f}"),
        Row(label, "find_slots 4 weeks, no cache, p95, CPython default GC (ms)",
            f"{p95(search.default_gc_ms):.1f}"),
    ]
    same = "" if search.memory_slots == search.slots else f" ≠ {search.slots}!"
    rows += [
        Row(label, f"search_slots in memory p50 (ms; {search.memory_slots} slots{same})",
            f"{p50(search.memory_ms):.1f}"),
        Row(label, "search_slots in memory p95 (ms)", f"{p95(search.memory_ms):.1f}"),
        Row(label, "ratio find_slots (no cache) p50 / in-memory p50",
            f"{p50(search.db_ms) / p50(search.memory_ms):.2f}"),
    ]
    if http_result is not None:
        rows.append(Row(
            label, "HTTP server: VISIO_SEARCH_CONCURRENCY / _MAX_WAIT_SECONDS (defaults; "
                   "searches at once / wait for a place before 429)",
            f"{http_result.search_concurrency} / {http_result.search_max_wait:g} s"))
        rows += http_rows(label, http_result, search.slots)
    for name, result in (("sequential", sequential), (f"{CONCURRENCY} tasks", concurrent)):
        failed = f", {result.failed} failed" if result.failed else ""
        latency = (f"; p50 {p50(result.latencies_ms):.1f} ms" if result.latencies_ms else "")
        rows.append(Row(
            label, f"book {name} (bookings/s; {result.booked} booked{failed}{latency})",
            f"{result.booked / result.seconds:.1f}",
        ))
    return rows


def cached_rows(label: str, search: SearchResult, p95_target_ms: float | None = None,
                ratio_target: float | None = None) -> list[Row]:
    """The cached search's rows: nothing changed since the last search, and right after
    a booking or cancellation at the site; p50 and p95, and the p50 ratio to in-memory."""
    rows: list[Row] = []
    memory = p50(search.memory_ms)
    for name, samples in (("nothing changed (cache hit)", search.hit_ms),
                          ("after a booking or cancellation", search.changed_ms)):
        if not samples:
            continue
        high, ratio = p95(samples), p50(samples) / memory
        rows += [
            Row(label, f"find_slots 4 weeks, {name}, p50 (ms)", f"{p50(samples):.1f}"),
            Row(label, f"find_slots 4 weeks, {name}, p95 (ms)", f"{high:.1f}",
                *((f"< {p95_target_ms:g} ms", "ok" if high < p95_target_ms else "missed")
                  if p95_target_ms is not None else ())),
            Row(label, f"ratio find_slots ({name}) p50 / in-memory p50", f"{ratio:.2f}",
                *((f"≤ {ratio_target:g}", "ok" if ratio <= ratio_target else "missed")
                  if ratio_target is not None else ())),
        ]
    return rows


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(make_url(POSTGRES_URL).set(drivername="postgresql")
                                 .render_as_string(hide_password=False), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


#: A benchmark of one backend: (label, database URL, its scale) to its rows.
AnyScale = TypeVar("AnyScale")
Bench = Callable[[str, str, AnyScale], Coroutine[Any, Any, list[Row]]]


def on_sqlite(bench: Bench[AnyScale], scale: AnyScale) -> list[Row]:
    """``bench`` on a fresh, migrated SQLite file, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="visio_bench_"))
    try:
        url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        upgrade(url)
        return asyncio.run(bench("sqlite", url, scale))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def on_postgres(bench: Bench[AnyScale], scale: AnyScale) -> list[Row]:
    """``bench`` on a fresh, migrated PostgreSQL database, dropped afterwards."""
    name = f"visio_bench_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        return [Row("postgresql", "unreachable", f"{type(err).__name__}: {err}", "—",
                    "skipped")]
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        return asyncio.run(bench("postgresql", url, scale))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_sqlite(scale: Scale) -> list[Row]:
    return on_sqlite(bench_backend, scale)


def run_postgres(scale: Scale) -> list[Row]:
    return on_postgres(partial(bench_backend, http=True), scale)


BACKENDS: dict[str, Callable[[Scale], list[Row]]] = {
    "sqlite": run_sqlite, "postgres": run_postgres}


def run(backends: Sequence[str] = tuple(BACKENDS), *, quick: bool = False) -> tuple[str, bool]:
    """Run the benchmark on ``backends``: the markdown table, and whether all ran."""
    tune_gc()  # as `visio serve` does once started
    scale = QUICK if quick else FULL
    rows: list[Row] = []
    complete = True
    for name in backends:
        try:
            rows += BACKENDS[name](scale)
        except Exception as err:  # one backend's failure must not hide the other's numbers
            traceback.print_exc()
            rows.append(Row(name, "error", f"{type(err).__name__}: {err}", "—", "error"))
            complete = False
    complete = complete and all(r.ok != "error" for r in rows)
    return markdown(rows), complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions: a smoke run, not numbers to publish")
    args = parser.parse_args()
    table, complete = run(tuple(BACKENDS) if args.backend == "all" else (args.backend,),
                          quick=args.quick)
    print(table)
    sys.exit(0 if complete else 1)


if __name__ == "__main__":
    main()
