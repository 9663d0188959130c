"""Builders shared by the domain tests: aware datetimes, sites, staff and services."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from visio.domain import (
    DailyRange,
    HolidayCalendar,
    Interval,
    ServiceRule,
    SiteCalendar,
    StaffCalendar,
    WeeklyRule,
)

PARIS = "Europe/Paris"
BRUSSELS = "Europe/Brussels"
HOLIDAYS = HolidayCalendar()


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0, zone: str = PARIS) -> datetime:
    """An aware wall-clock datetime in ``zone``."""
    return datetime(y, m, d, h, mi, tzinfo=ZoneInfo(zone))


def hm(text: str) -> time:
    return time.fromisoformat(text)


def rng(opens: str, closes: str) -> DailyRange:
    return DailyRange(hm(opens), hm(closes))


def iv(start: datetime, end: datetime) -> Interval:
    return Interval(start, end)


def mins(n: int) -> timedelta:
    return timedelta(minutes=n)


def day_window(first: date, last: date | None = None, zone: str = PARIS) -> Interval:
    """From local midnight of ``first`` to local midnight after ``last`` (default: first)."""
    last = last or first
    z = ZoneInfo(zone)
    return Interval(
        datetime.combine(first, time(0), tzinfo=z),
        datetime.combine(last + timedelta(days=1), time(0), tzinfo=z),
    )


def weekly(
    opens: str = "09:00", closes: str = "17:00", days: Iterable[int] = range(5)
) -> tuple[WeeklyRule, ...]:
    return tuple(WeeklyRule(d, hm(opens), hm(closes)) for d in days)


def fixed_site(
    *ranges: DailyRange,
    days: Iterable[int] = range(5),
    booths: int = 1,
    booth_busy: tuple[Interval, ...] = (),
    closures: frozenset[date] = frozenset(),
    country: str = "FR",
    zone: str = PARIS,
) -> SiteCalendar:
    hours = ranges or (rng("08:00", "18:00"),)
    return SiteCalendar(
        site_id="site-1",
        kind="fixed",
        zone=zone,
        country=country,
        weekly_hours={d: tuple(hours) for d in days},
        closures=closures,
        booths=booths,
        booth_busy=booth_busy,
    )


def service(
    operator: str = "caf",
    *,
    service_id: str | None = None,
    duration: int = 30,
    buffer: int = 0,
    notice: timedelta = timedelta(hours=2),
    horizon: timedelta = timedelta(days=365),
    languages: Iterable[str] = ("fr",),
    step: int | None = None,
) -> ServiceRule:
    return ServiceRule(
        service_id=service_id or f"{operator}-rdv",
        operator_id=operator,
        duration=mins(duration),
        buffer_after=mins(buffer),
        notice=notice,
        horizon=horizon,
        languages=frozenset(languages),
        step=None if step is None else mins(step),
    )


def member(
    staff_id: str = "a1",
    operator: str = "caf",
    *,
    country: str = "FR",
    zone: str = PARIS,
    rules: tuple[WeeklyRule, ...] | None = None,
    **extra: object,
) -> StaffCalendar:
    return StaffCalendar(
        staff_id=staff_id,
        desk_id=f"desk-{operator}",
        operator_id=operator,
        country=country,
        zone=zone,
        rules=weekly() if rules is None else rules,
        **extra,  # type: ignore[arg-type]
    )


NOW = utc(2026, 3, 1, 12)
