"""A site's and a staff member's calendars over a span, as UTC indexes and start grids.

``search_slots`` and ``check_start`` read calendars only through these views, so a start
is offered for a staff member exactly when ``check_start`` finds nothing to refuse.
Views are built per call; a ``ViewCache`` shares the work between staff with equal rules.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from visio.domain.calendars import (
    DailyRange,
    HolidayCalendar,
    WeeklyRule,
    local_days,
    local_ranges_to_utc,
    ranges_for_day,
)
from visio.domain.intervals import Interval, IntervalIndex, merge, saturated, subtract
from visio.domain.slot_types import ServiceRule, SiteCalendar, StaffCalendar, Stop

__all__ = [
    "Shape",
    "SiteView",
    "StaffView",
    "ViewCache",
    "shape_of",
    "site_view",
    "speaks",
    "staff_view",
]


def speaks(language: str | None, service: ServiceRule, staff: StaffCalendar) -> bool:
    """Return True if ``service`` with ``staff`` is offered in ``language`` (None: any)."""
    if language is None:
        return True
    return language in service.languages and (not staff.languages or language in staff.languages)


class ViewCache:
    """Per-call memo of wall-clock → UTC conversions shared by staff with equal rules."""

    __slots__ = ("calendar", "grids", "holidays", "shapes", "utc")

    def __init__(self, holidays: HolidayCalendar) -> None:
        self.calendar = holidays
        self.holidays: dict[tuple[str, date], bool] = {}
        self.utc: dict[tuple[str, date, tuple[DailyRange, ...]], list[Interval]] = {}
        self.grids: dict[object, list[datetime]] = {}
        self.shapes: dict[object, Shape] = {}

    def is_holiday(self, country: str, day: date) -> bool:
        """Return True if ``day`` is a public holiday in ``country`` (memoised)."""
        key = (country, day)
        found = self.holidays.get(key)
        if found is None:
            found = self.holidays[key] = self.calendar.is_holiday(country, day)
        return found

    def ranges_utc(
        self, day: date, ranges: tuple[DailyRange, ...], zone: ZoneInfo
    ) -> list[Interval]:
        """Return the UTC intervals of ``ranges`` on local ``day`` in ``zone`` (memoised)."""
        key = (zone.key, day, ranges)
        found = self.utc.get(key)
        if found is None:
            found = self.utc[key] = local_ranges_to_utc(day, ranges, zone)
        return found


def _day_grid(
    day: date, ranges: tuple[DailyRange, ...], zone: ZoneInfo, step: timedelta
) -> set[datetime]:
    """Candidate starts ``opens + k*step`` (wall clock) before each range closes, in UTC."""
    starts: set[datetime] = set()
    for r in ranges:
        wall = datetime.combine(day, r.opens, tzinfo=zone)
        closes = datetime.combine(day, r.closes, tzinfo=zone)
        # Same tzinfo on both sides: comparison and addition are wall-clock operations.
        while wall < closes:
            starts.add(wall.astimezone(UTC))
            wall += step
    return starts


# --------------------------------------------------------------------------- site


@dataclass(slots=True)
class SiteView:
    """A site over a span: when it is open (at which stop, for a bus) and when it is full."""

    zone: ZoneInfo
    open: IntervalIndex  # every included opening (all stops merged for a bus)
    itinerant: bool
    stop_starts: list[datetime]
    stop_ends: list[datetime]
    stop_max_end: list[datetime]
    stop_ids: list[str]
    full: IntervalIndex  # periods where every booth is taken

    def stop_for(self, start: datetime, end: datetime) -> str | None:
        """Return the stop whose hours contain ``[start, end)``, or None."""
        i = bisect_right(self.stop_starts, start) - 1
        while i >= 0 and self.stop_max_end[i] >= end:
            if self.stop_ends[i] >= end:
                return self.stop_ids[i]
            i -= 1
        return None

    def admits(self, start: datetime, end: datetime) -> bool:
        """Return True if the site is open over ``[start, end)`` (inside one stop for a bus)."""
        if self.itinerant:
            return self.stop_for(start, end) is not None
        return self.open.covers_span(start, end)


def site_view(
    site: SiteCalendar,
    span: Interval,
    stop_id: str | None,
    cache: ViewCache,
) -> SiteView:
    """Return ``site`` over ``span`` (only stop ``stop_id`` of a bus, if given)."""
    zone = ZoneInfo(site.zone)
    tagged: list[tuple[Interval, str]] = []
    pieces: list[Interval] = []
    itinerant = site.kind == "itinerant"
    stops_by_day: dict[date, list[Stop]] = {}
    if itinerant:
        for stop in site.stops:
            if stop_id is None or stop.stop_id == stop_id:
                stops_by_day.setdefault(stop.day, []).append(stop)
    for day in local_days(span, zone):
        if day in site.closures or cache.is_holiday(site.country, day):
            continue
        if itinerant:
            for stop in stops_by_day.get(day, ()):
                ranges = tuple(sorted(set(stop.ranges), key=lambda r: (r.opens, r.closes)))
                for iv in merge(cache.ranges_utc(day, ranges, zone)):
                    tagged.append((iv, stop.stop_id))
                    pieces.append(iv)
        else:
            ranges = tuple(
                sorted(
                    set(site.weekly_hours.get(day.weekday(), ())), key=lambda r: (r.opens, r.closes)
                )
            )
            pieces.extend(cache.ranges_utc(day, ranges, zone))
    tagged.sort(key=lambda item: (item[0].start, item[0].end, item[1]))
    max_ends: list[datetime] = []
    for iv, _ in tagged:
        max_ends.append(iv.end if not max_ends or iv.end > max_ends[-1] else max_ends[-1])
    relevant = [iv for iv in site.booth_busy if iv.end > span.start and iv.start < span.end]
    return SiteView(
        zone=zone,
        open=IntervalIndex(pieces),
        itinerant=itinerant,
        stop_starts=[iv.start for iv, _ in tagged],
        stop_ends=[iv.end for iv, _ in tagged],
        stop_max_end=max_ends,
        stop_ids=[sid for _, sid in tagged],
        full=IntervalIndex([*saturated(relevant, site.booths), *site.booth_full]),
    )


# --------------------------------------------------------------------------- staff


@dataclass(slots=True)
class Shape:
    """Working days and hours, shared by the staff with equal rules, overrides, closures."""

    zone: ZoneInfo
    working: dict[date, tuple[DailyRange, ...]]  # days with hours (no holiday, no closure)
    hours: IntervalIndex  # working hours, before absences
    grids: dict[timedelta, list[datetime]]  # candidate starts per grid step

    def grid(self, step: timedelta, cache: ViewCache) -> list[datetime]:
        """Return the sorted UTC candidate starts on every working day."""
        found = self.grids.get(step)
        if found is None:
            key = (self.zone.key, step, tuple(self.working.items()))
            found = cache.grids.get(key)
            if found is None:
                starts: set[datetime] = set()
                for day, ranges in self.working.items():
                    starts |= _day_grid(day, ranges, self.zone, step)
                found = cache.grids[key] = sorted(starts)
            self.grids[step] = found
        return found


def shape_of(staff: StaffCalendar, span: Interval, cache: ViewCache) -> Shape:
    """Return the working days and hours of ``staff`` over ``span`` (shared when equal)."""
    key = (staff.zone, staff.country, staff.rules, staff.overrides, staff.closures, span)
    found = cache.shapes.get(key)
    if found is not None:
        return found
    zone = ZoneInfo(staff.zone)
    overrides = {o.day: o for o in staff.overrides}
    by_weekday: dict[int, list[WeeklyRule]] = {}
    for rule in staff.rules:
        by_weekday.setdefault(rule.weekday, []).append(rule)
    working: dict[date, tuple[DailyRange, ...]] = {}
    pieces: list[Interval] = []
    shapes: dict[tuple[WeeklyRule, ...], tuple[DailyRange, ...]] = {}
    for day in local_days(span, zone):
        if day in staff.closures or cache.is_holiday(staff.country, day):
            continue
        if day in overrides:
            ranges = ranges_for_day(day, (), overrides)
        else:
            # Memoised per set of applicable rules: most weeks repeat the same shape.
            applicable = tuple(r for r in by_weekday.get(day.weekday(), ()) if r.applies_on(day))
            found_ranges = shapes.get(applicable)
            if found_ranges is None:
                found_ranges = shapes[applicable] = ranges_for_day(day, applicable, {})
            ranges = found_ranges
        if ranges:
            working[day] = ranges
            pieces.extend(cache.ranges_utc(day, ranges, zone))
    found = cache.shapes[key] = Shape(
        zone=zone, working=working, hours=IntervalIndex(pieces), grids={}
    )
    return found


@dataclass(slots=True)
class StaffView:
    """One staff member over a span: working hours, availability and appointments."""

    calendar: StaffCalendar
    shape: Shape
    zone: ZoneInfo
    working: dict[date, tuple[DailyRange, ...]]  # days with hours (no holiday, no closure)
    hours: IntervalIndex  # working hours, before absences
    available: IntervalIndex  # working hours minus absences
    busy: IntervalIndex  # existing appointments (each already including its buffer)

    def grid(self, step: timedelta, cache: ViewCache) -> list[datetime]:
        """Return the sorted UTC candidate starts on every working day."""
        return self.shape.grid(step, cache)


def staff_view(staff: StaffCalendar, span: Interval, cache: ViewCache) -> StaffView:
    """Return ``staff`` over ``span``."""
    shape = shape_of(staff, span, cache)
    hours = shape.hours
    return StaffView(
        calendar=staff,
        shape=shape,
        zone=shape.zone,
        working=shape.working,
        hours=hours,
        available=(
            IntervalIndex(subtract(hours.intervals, staff.absences)) if staff.absences else hours
        ),
        busy=IntervalIndex(staff.busy),
    )
