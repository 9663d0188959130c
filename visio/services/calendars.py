"""Loading: database rows into the domain's calendars, for one site and a time window.

Slot search reads thousands of appointment rows per request, so the loaders here stay on
SQLAlchemy Core (``session.connection()``), select only the columns they need, and decode
each distinct stored value once: on a half-hour grid, thousands of appointments share a
few hundred distinct instants, so equal values become one shared object (datetimes and
``Interval``\\ s alike). Booth occupation is aggregated in SQL (``GROUP BY start, end``)
and reduced to the periods where every booth is taken.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, time, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import NullType

from visio import models as m
from visio.domain.calendars import DailyRange, DateOverride, WeeklyRule, local_days
from visio.domain.intervals import Interval, saturated_spans
from visio.domain.slot_types import ServiceRule, SiteCalendar, StaffCalendar, Stop

HOLDS_TIME = m.Appointment.status != "cancelled"
#: The longest time one appointment can hold: its duration (at most 480 minutes) and the
#: booth; plus the buffer (at most 240 minutes) for its staff member. A lower bound on
#: ``start`` lets the (staff_id, start) and (site_id, start) indexes skip all history.
LONGEST_BOOTH_HOLD = timedelta(minutes=480)
LONGEST_STAFF_HOLD = timedelta(minutes=480 + 240)

_BOUNDS = attrgetter("start", "end")


def parse_hours(hours: Sequence[Sequence[str]]) -> tuple[DailyRange, ...]:
    """Stored ``[["09:30", "12:30"], …]`` into daily ranges."""
    return tuple(DailyRange(time.fromisoformat(a), time.fromisoformat(b)) for a, b in hours)


def service_rule(service: m.Service) -> ServiceRule:
    """A service row as the domain sees it."""
    return ServiceRule(
        service_id=service.id,
        operator_id=service.operator_id,
        duration=timedelta(minutes=service.duration_minutes),
        buffer_after=timedelta(minutes=service.buffer_minutes),
        notice=timedelta(minutes=service.notice_minutes),
        horizon=timedelta(days=service.horizon_days),
        languages=frozenset(service.languages),
    )


def _widen(window: Interval, zone: str) -> tuple[date, date]:
    days = local_days(window, ZoneInfo(zone))
    return days[0] - timedelta(days=1), days[-1] + timedelta(days=1)


# ------------------------------------------------------------------------------ decoding


def _raw(column: Any) -> Any:
    """``column`` selected as the driver returns it, for a :class:`_Decoder` to convert."""
    return sa.type_coerce(column, NullType())


class _Decoder:
    """The column type's own result conversion, memoised per distinct driver value."""

    __slots__ = ("_process", "_seen")

    def __init__(self, dialect: Dialect, column: Any) -> None:
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        self._process: Callable[[Any], Any] = process if process is not None else _same
        self._seen: dict[Any, Any] = {}

    def __call__(self, raw: Any) -> Any:
        found = self._seen.get(raw, _MISSING)
        if found is _MISSING:
            found = self._seen[raw] = self._process(raw)
        return found


_MISSING = object()


def _same(value: Any) -> Any:
    return value


class _Intervals:
    """Intervals from raw (start, end) pairs, one shared ``Interval`` per distinct pair."""

    __slots__ = ("_decode", "_seen")

    def __init__(self, dialect: Dialect, column: Any) -> None:
        self._decode = _Decoder(dialect, column)
        self._seen: dict[tuple[Any, Any], Interval] = {}

    def __call__(self, start: Any, end: Any) -> Interval:
        key = (start, end)
        found = self._seen.get(key)
        if found is None:
            found = self._seen[key] = Interval(self._decode(start), self._decode(end))
        return found


def one_of(dialect: Dialect, column: Any, values: Collection[Any]) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY`` of one array parameter, which spares
    rendering and binding one parameter per value (a hundred staff ids per search)."""
    if dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _collect(dialect: Dialect, column: Any) -> tuple[Any, Callable[[Any], list[Any]]] | None:
    """An aggregate gathering ``column`` into one list per group, with its decoder; None
    on a database that has neither ``array_agg`` nor ``json_group_array``."""
    if dialect.name == "postgresql":
        return _raw(sa.func.array_agg(column)), list
    if dialect.name == "sqlite":
        return _raw(sa.func.json_group_array(column)), json.loads
    return None


async def _connection(session: AsyncSession) -> AsyncConnection:
    """The session's connection, after the flush an ORM query would have done first."""
    if session.sync_session.autoflush:
        await session.flush()
    return await session.connection()


# ------------------------------------------------------------------------------ site


async def load_site(
    *, session: AsyncSession, site: m.Site, window: Interval,
    exclude_appointment_id: str | None = None,
) -> SiteCalendar:
    """The site's hours or stops, closures and booth occupation over ``window``."""
    calendar = await load_site_rules(session=session, site=site, window=window)
    return replace(calendar, booth_full=await load_booth_full(
        session=session, site_id=site.id, booths=site.booths, window=window,
        exclude_appointment_id=exclude_appointment_id))


async def load_site_rules(
    *, session: AsyncSession, site: m.Site, window: Interval,
) -> SiteCalendar:
    """The site's hours or stops and closures over ``window``, without its appointments
    (``booth_full`` is empty: see :func:`load_booth_full`)."""
    conn = await _connection(session)
    first, last = _widen(window, site.timezone)
    hours: dict[int, list[DailyRange]] = defaultdict(list)
    stops: tuple[Stop, ...] = ()
    if site.kind == "fixed":
        for weekday, opens, closes in (await conn.execute(
            sa.select(m.SiteHours.weekday, m.SiteHours.opens, m.SiteHours.closes)
            .where(m.SiteHours.site_id == site.id)
            .order_by(m.SiteHours.weekday, m.SiteHours.opens)
        )).all():
            hours[weekday].append(DailyRange(opens, closes))
    else:
        stops = tuple(
            Stop(stop_id=stop_id, day=day, ranges=parse_hours(stop_hours))
            for stop_id, day, stop_hours in (await conn.execute(
                sa.select(m.TourStop.id, m.TourStop.day, m.TourStop.hours).where(
                    m.TourStop.site_id == site.id, m.TourStop.day.between(first, last)
                ).order_by(m.TourStop.day)
            )).all()
        )
    closures = frozenset((await conn.execute(
        sa.select(m.ClosureDay.day).where(
            m.ClosureDay.site_id == site.id, m.ClosureDay.day.between(first, last)
        )
    )).scalars().all())
    return SiteCalendar(
        site_id=site.id, kind=site.kind, zone=site.timezone, country=site.country,
        weekly_hours={k: tuple(v) for k, v in hours.items()}, stops=stops,
        closures=closures, booths=site.booths, booth_full=(),
    )


async def load_booth_full(
    *, session: AsyncSession, site_id: str, booths: int, window: Interval,
    exclude_appointment_id: str | None = None,
) -> tuple[Interval, ...]:
    """The periods around ``window`` where all ``booths`` booths of the site are taken
    (appointments counted per distinct (start, end) in SQL)."""
    conn = await _connection(session)
    busy_query = (
        sa.select(_raw(m.Appointment.start), _raw(m.Appointment.end), sa.func.count())
        .where(
            m.Appointment.site_id == site_id, HOLDS_TIME,
            m.Appointment.start < window.end, m.Appointment.end > window.start,
            m.Appointment.start > window.start - LONGEST_BOOTH_HOLD,
        )
        .group_by(m.Appointment.start, m.Appointment.end)
    )
    if exclude_appointment_id is not None:
        busy_query = busy_query.where(m.Appointment.id != exclude_appointment_id)
    instant = _Decoder(conn.dialect, m.Appointment.start)
    return tuple(saturated_spans(
        ((instant(start), instant(end), count)
         for start, end, count in (await conn.execute(busy_query)).all()),
        booths,
    ))


# ------------------------------------------------------------------------------ staff


@dataclass(frozen=True, slots=True)
class StaffRow:
    staff_id: str
    desk_id: str
    operator_id: str
    country: str
    zone: str
    languages: tuple[str, ...]


async def _weekly_rules(
    conn: AsyncConnection, ids: list[str], first: date, last: date
) -> dict[str, tuple[WeeklyRule, ...]]:
    """Each staff member's weekly rules, by weekday and opening time.

    Where the database can, one row per distinct rule with the list of its staff (staff
    usually share their hours). Equal rules, and equal sets of rules, are shared objects.
    """
    rule = m.AvailabilityRule
    columns = (rule.weekday, rule.opens, rule.closes, rule.valid_from, rule.valid_until)
    conditions = (
        one_of(conn.dialect, rule.staff_id, ids),
        sa.or_(rule.valid_from.is_(None), rule.valid_from <= last),
        sa.or_(rule.valid_until.is_(None), rule.valid_until >= first),
    )
    collect = _collect(conn.dialect, rule.staff_id)
    groups: list[tuple[tuple[Any, ...], list[str]]] = []
    if collect is None:
        for staff_id, *values in (await conn.execute(
            sa.select(rule.staff_id, *(_raw(c) for c in columns)).where(*conditions)
            .order_by(*columns)
        )).all():
            groups.append((tuple(values), [staff_id]))
    else:
        aggregate, decode_ids = collect
        for *values, staff_ids in (await conn.execute(
            sa.select(*(_raw(c) for c in columns), aggregate).where(*conditions)
            .group_by(*columns).order_by(*columns)
        )).all():
            groups.append((tuple(values), decode_ids(staff_ids)))

    decoders = [_Decoder(conn.dialect, c) for c in columns]
    rules: dict[tuple[Any, ...], WeeklyRule] = {}
    keys: dict[str, list[WeeklyRule]] = defaultdict(list)
    for raw, staff_ids in groups:
        one = rules.get(raw)
        if one is None:
            weekday, opens, closes, valid_from, valid_until = (
                decode(value) for decode, value in zip(decoders, raw, strict=True)
            )
            one = rules[raw] = WeeklyRule(
                weekday=weekday, opens=opens, closes=closes,
                valid_from=valid_from, valid_until=valid_until,
            )
        for staff_id in staff_ids:
            keys[staff_id].append(one)
    sets: dict[tuple[int, ...], tuple[WeeklyRule, ...]] = {}
    result: dict[str, tuple[WeeklyRule, ...]] = {}
    for staff_id, staff_rules in keys.items():
        key = tuple(map(id, staff_rules))  # the rules live in ``rules`` meanwhile
        found = sets.get(key)
        if found is None:
            found = sets[key] = tuple(staff_rules)
        result[staff_id] = found
    return result


async def load_staff_busy(
    *, session: AsyncSession, staff_ids: Sequence[str], window: Interval,
    exclude_appointment_id: str | None = None,
) -> dict[str, tuple[Interval, ...]]:
    """Each staff member's appointments (start to ``staff_until``) around ``window``,
    sorted; staff without any are absent from the mapping."""
    conn = await _connection(session)
    return {sid: tuple(sorted(found, key=_BOUNDS)) for sid, found in (
        await _staff_busy(conn, list(staff_ids), window, exclude_appointment_id)).items()}


async def _staff_busy(
    conn: AsyncConnection, ids: list[str], window: Interval,
    exclude_appointment_id: str | None,
) -> dict[str, list[Interval]]:
    """Each staff member's appointments (start to ``staff_until``) around ``window``.

    Where the database can, one row per distinct (start, staff_until) with the list of its
    staff: on a shared grid that is a few hundred rows rather than thousands.
    """
    appointment = m.Appointment
    conditions = [
        one_of(conn.dialect, appointment.staff_id, ids), HOLDS_TIME,
        appointment.start < window.end + timedelta(hours=4),
        appointment.start > window.start - timedelta(hours=4) - LONGEST_STAFF_HOLD,
        appointment.staff_until > window.start - timedelta(hours=4),
    ]
    if exclude_appointment_id is not None:
        conditions.append(appointment.id != exclude_appointment_id)
    interval = _Intervals(conn.dialect, appointment.start)
    busy: dict[str, list[Interval]] = defaultdict(list)
    collect = _collect(conn.dialect, appointment.staff_id)
    if collect is None:
        for sid, start, until in (await conn.execute(
            sa.select(appointment.staff_id, _raw(appointment.start),
                      _raw(appointment.staff_until)).where(*conditions)
        )).all():
            busy[sid].append(interval(start, until))
        return busy
    aggregate, decode = collect
    for start, until, staff_ids in (await conn.execute(
        sa.select(_raw(appointment.start), _raw(appointment.staff_until), aggregate)
        .where(*conditions)
        .group_by(appointment.start, appointment.staff_until)
    )).all():
        iv = interval(start, until)
        for sid in decode(staff_ids):
            busy[sid].append(iv)
    return busy


async def load_staff(
    *, session: AsyncSession, operator_ids: Sequence[str], window: Interval,
    staff_id: str | None = None, exclude_appointment_id: str | None = None,
    desk_ids: Collection[str] | None = None, with_busy: bool = True,
) -> list[StaffCalendar]:
    """Availability, absences, closures and busy time of the operators' active staff
    (of these desks only, when ``desk_ids`` is given; without their appointments unless
    ``with_busy``: see :func:`load_staff_busy`)."""
    conn = await _connection(session)
    query = (
        sa.select(m.StaffMember.id, m.StaffMember.desk_id, m.Desk.operator_id,
                  m.Operator.country, m.Operator.timezone, m.StaffMember.languages)
        .join(m.Desk, m.Desk.id == m.StaffMember.desk_id)
        .join(m.Operator, m.Operator.id == m.Desk.operator_id)
        .where(one_of(conn.dialect, m.Desk.operator_id, operator_ids), m.StaffMember.active)
        .order_by(m.StaffMember.id)
    )
    if staff_id is not None:
        query = query.where(m.StaffMember.id == staff_id)
    if desk_ids is not None:
        if not desk_ids:
            return []
        query = query.where(one_of(conn.dialect, m.StaffMember.desk_id, sorted(desk_ids)))
    rows = [StaffRow(a, b, c, d, e, tuple(f or ())) for a, b, c, d, e, f
            in (await conn.execute(query)).all()]
    if not rows:
        return []
    ids = [r.staff_id for r in rows]
    zones = {r.zone for r in rows}
    first = min(_widen(window, z)[0] for z in zones)
    last = max(_widen(window, z)[1] for z in zones)

    rules = await _weekly_rules(conn, ids, first, last)

    override_ranges: dict[str, dict[date, list[DailyRange]]] = defaultdict(dict)
    for sid, day, opens, closes in (await conn.execute(
        sa.select(m.AvailabilityOverride.staff_id, m.AvailabilityOverride.day,
                  m.AvailabilityOverride.opens, m.AvailabilityOverride.closes).where(
            one_of(conn.dialect, m.AvailabilityOverride.staff_id, ids),
            m.AvailabilityOverride.day.between(first, last),
        ).order_by(m.AvailabilityOverride.day, m.AvailabilityOverride.opens)
    )).all():
        day_ranges = override_ranges[sid].setdefault(day, [])
        if opens is not None and closes is not None:
            day_ranges.append(DailyRange(opens, closes))

    absences: dict[str, list[Interval]] = defaultdict(list)
    absence = _Intervals(conn.dialect, m.BusyPeriod.start)
    for sid, start, end in (await conn.execute(
        sa.select(m.BusyPeriod.staff_id, _raw(m.BusyPeriod.start), _raw(m.BusyPeriod.end)).where(
            one_of(conn.dialect, m.BusyPeriod.staff_id, ids),
            m.BusyPeriod.start < window.end, m.BusyPeriod.end > window.start,
        )
    )).all():
        absences[sid].append(absence(start, end))

    desk_ids = {r.desk_id for r in rows}
    closures: dict[str, set[date]] = defaultdict(set)
    for op_id, desk_id, day in (await conn.execute(
        sa.select(m.ClosureDay.operator_id, m.ClosureDay.desk_id, m.ClosureDay.day).where(
            sa.or_(one_of(conn.dialect, m.ClosureDay.operator_id, operator_ids),
                   one_of(conn.dialect, m.ClosureDay.desk_id, desk_ids)),
            m.ClosureDay.day.between(first, last),
        )
    )).all():
        owner = op_id if op_id is not None else desk_id
        if owner is not None:
            closures[owner].add(day)

    busy = (await _staff_busy(conn, ids, window, exclude_appointment_id) if with_busy
            else {})

    no_rules: tuple[WeeklyRule, ...] = ()
    return [
        StaffCalendar(
            staff_id=r.staff_id, desk_id=r.desk_id, operator_id=r.operator_id,
            country=r.country, zone=r.zone, rules=rules.get(r.staff_id, no_rules),
            overrides=tuple(
                DateOverride(day=d, ranges=tuple(rs))
                for d, rs in sorted(override_ranges[r.staff_id].items())
            ),
            absences=tuple(sorted(absences[r.staff_id], key=_BOUNDS)),
            closures=frozenset(closures[r.operator_id] | closures[r.desk_id]),
            busy=tuple(sorted(busy.get(r.staff_id, ()), key=_BOUNDS)),
            languages=frozenset(r.languages),
        )
        for r in rows
    ]
