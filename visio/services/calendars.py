"""Loading: database rows into the domain's calendars, for one site and a time window."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.domain.calendars import DailyRange, DateOverride, WeeklyRule, local_days
from visio.domain.intervals import Interval
from visio.domain.slots import ServiceRule, SiteCalendar, StaffCalendar, Stop

HOLDS_TIME = m.Appointment.status != "cancelled"


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


async def load_site(
    *, session: AsyncSession, site: m.Site, window: Interval,
    exclude_appointment_id: str | None = None,
) -> SiteCalendar:
    """The site's hours or stops, closures and booth occupation over ``window``."""
    first, last = _widen(window, site.timezone)
    hours: dict[int, list[DailyRange]] = defaultdict(list)
    stops: tuple[Stop, ...] = ()
    if site.kind == "fixed":
        for row in (await session.scalars(
            sa.select(m.SiteHours).where(m.SiteHours.site_id == site.id)
            .order_by(m.SiteHours.weekday, m.SiteHours.opens)
        )).all():
            hours[row.weekday].append(DailyRange(row.opens, row.closes))
    else:
        stops = tuple(
            Stop(stop_id=row.id, day=row.day, ranges=parse_hours(row.hours))
            for row in (await session.scalars(
                sa.select(m.TourStop).where(
                    m.TourStop.site_id == site.id, m.TourStop.day.between(first, last)
                ).order_by(m.TourStop.day)
            )).all()
        )
    closures = frozenset((await session.scalars(
        sa.select(m.ClosureDay.day).where(
            m.ClosureDay.site_id == site.id, m.ClosureDay.day.between(first, last)
        )
    )).all())
    busy_query = sa.select(m.Appointment.start, m.Appointment.end).where(
        m.Appointment.site_id == site.id, HOLDS_TIME,
        m.Appointment.start < window.end, m.Appointment.end > window.start,
    )
    if exclude_appointment_id is not None:
        busy_query = busy_query.where(m.Appointment.id != exclude_appointment_id)
    booth_busy = tuple(Interval(s, e) for s, e in (await session.execute(busy_query)).all())
    return SiteCalendar(
        site_id=site.id, kind=site.kind, zone=site.timezone, country=site.country,
        weekly_hours={k: tuple(v) for k, v in hours.items()}, stops=stops,
        closures=closures, booths=site.booths, booth_busy=booth_busy,
    )


@dataclass(frozen=True, slots=True)
class StaffRow:
    staff_id: str
    desk_id: str
    operator_id: str
    country: str
    zone: str
    languages: tuple[str, ...]


async def load_staff(
    *, session: AsyncSession, operator_ids: Sequence[str], window: Interval,
    staff_id: str | None = None, exclude_appointment_id: str | None = None,
) -> list[StaffCalendar]:
    """Availability, absences, closures and busy time of the operators' active staff."""
    query = (
        sa.select(m.StaffMember.id, m.StaffMember.desk_id, m.Desk.operator_id,
                  m.Operator.country, m.Operator.timezone, m.StaffMember.languages)
        .join(m.Desk, m.Desk.id == m.StaffMember.desk_id)
        .join(m.Operator, m.Operator.id == m.Desk.operator_id)
        .where(m.Desk.operator_id.in_(operator_ids), m.StaffMember.active)
        .order_by(m.StaffMember.id)
    )
    if staff_id is not None:
        query = query.where(m.StaffMember.id == staff_id)
    rows = [StaffRow(a, b, c, d, e, tuple(f or ())) for a, b, c, d, e, f
            in (await session.execute(query)).all()]
    if not rows:
        return []
    ids = [r.staff_id for r in rows]
    zones = {r.zone for r in rows}
    first = min(_widen(window, z)[0] for z in zones)
    last = max(_widen(window, z)[1] for z in zones)

    rules: dict[str, list[WeeklyRule]] = defaultdict(list)
    for rule in (await session.scalars(
        sa.select(m.AvailabilityRule).where(
            m.AvailabilityRule.staff_id.in_(ids),
            sa.or_(m.AvailabilityRule.valid_from.is_(None), m.AvailabilityRule.valid_from <= last),
            sa.or_(m.AvailabilityRule.valid_until.is_(None),
                   m.AvailabilityRule.valid_until >= first),
        ).order_by(m.AvailabilityRule.weekday, m.AvailabilityRule.opens)
    )).all():
        rules[rule.staff_id].append(WeeklyRule(
            weekday=rule.weekday, opens=rule.opens, closes=rule.closes,
            valid_from=rule.valid_from, valid_until=rule.valid_until,
        ))

    override_ranges: dict[str, dict[date, list[DailyRange]]] = defaultdict(dict)
    for o in (await session.scalars(
        sa.select(m.AvailabilityOverride).where(
            m.AvailabilityOverride.staff_id.in_(ids),
            m.AvailabilityOverride.day.between(first, last),
        ).order_by(m.AvailabilityOverride.day, m.AvailabilityOverride.opens)
    )).all():
        day_ranges = override_ranges[o.staff_id].setdefault(o.day, [])
        if o.opens is not None and o.closes is not None:
            day_ranges.append(DailyRange(o.opens, o.closes))

    absences: dict[str, list[Interval]] = defaultdict(list)
    for sid, start, end in (await session.execute(
        sa.select(m.BusyPeriod.staff_id, m.BusyPeriod.start, m.BusyPeriod.end).where(
            m.BusyPeriod.staff_id.in_(ids),
            m.BusyPeriod.start < window.end, m.BusyPeriod.end > window.start,
        )
    )).all():
        absences[sid].append(Interval(start, end))

    desk_ids = {r.desk_id for r in rows}
    closures: dict[str, set[date]] = defaultdict(set)
    for op_id, desk_id, day in (await session.execute(
        sa.select(m.ClosureDay.operator_id, m.ClosureDay.desk_id, m.ClosureDay.day).where(
            sa.or_(m.ClosureDay.operator_id.in_(operator_ids),
                   m.ClosureDay.desk_id.in_(desk_ids)),
            m.ClosureDay.day.between(first, last),
        )
    )).all():
        owner = op_id if op_id is not None else desk_id
        if owner is not None:
            closures[owner].add(day)

    busy_query = sa.select(m.Appointment.staff_id, m.Appointment.start,
                           m.Appointment.staff_until).where(
        m.Appointment.staff_id.in_(ids), HOLDS_TIME,
        m.Appointment.start < window.end + timedelta(hours=4),
        m.Appointment.staff_until > window.start - timedelta(hours=4),
    )
    if exclude_appointment_id is not None:
        busy_query = busy_query.where(m.Appointment.id != exclude_appointment_id)
    busy: dict[str, list[Interval]] = defaultdict(list)
    for sid, start, until in (await session.execute(busy_query)).all():
        busy[sid].append(Interval(start, until))

    return [
        StaffCalendar(
            staff_id=r.staff_id, desk_id=r.desk_id, operator_id=r.operator_id,
            country=r.country, zone=r.zone, rules=tuple(rules[r.staff_id]),
            overrides=tuple(
                DateOverride(day=d, ranges=tuple(rs))
                for d, rs in sorted(override_ranges[r.staff_id].items())
            ),
            absences=tuple(sorted(absences[r.staff_id])),
            closures=frozenset(closures[r.operator_id] | closures[r.desk_id]),
            busy=tuple(sorted(busy[r.staff_id])),
            languages=frozenset(r.languages),
        )
        for r in rows
    ]
