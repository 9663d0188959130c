"""Slot search: which appointment starts a site can offer with which operator staff.

``search_slots`` and ``check_start`` share every building block below, so a start is
offered for a staff member exactly when ``check_start`` finds nothing to refuse.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from visio.domain.calendars import (
    DailyRange,
    DateOverride,
    HolidayCalendar,
    WeeklyRule,
    local_days,
    local_ranges_to_utc,
    ranges_for_day,
)
from visio.domain.intervals import (
    Interval,
    IntervalIndex,
    clear_starts,
    feasible_starts,
    intersect,
    merge,
    saturated,
    subtract,
)

__all__ = [
    "Refusal",
    "ServiceRule",
    "SiteCalendar",
    "Slot",
    "StaffCalendar",
    "Stop",
    "check_start",
    "nearest",
    "search_slots",
]

_ZERO = timedelta(0)
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ServiceRule:
    """How one operator service is booked: length, buffer, notice, horizon, languages."""

    service_id: str
    operator_id: str
    duration: timedelta
    buffer_after: timedelta
    notice: timedelta
    horizon: timedelta
    languages: frozenset[str]
    step: timedelta | None = None

    def __post_init__(self) -> None:
        if self.duration <= _ZERO:
            raise ValueError("ServiceRule.duration must be positive")
        if self.step is not None and self.step <= _ZERO:
            raise ValueError("ServiceRule.step must be positive")
        for name in ("buffer_after", "notice", "horizon"):
            if getattr(self, name) < _ZERO:
                raise ValueError(f"ServiceRule.{name} must not be negative")

    @property
    def grid_step(self) -> timedelta:
        """Return the spacing of candidate starts (``step``, else ``duration``)."""
        return self.step if self.step is not None else self.duration


@dataclass(frozen=True, slots=True)
class StaffCalendar:
    """One operator staff member's working rules, absences and existing appointments."""

    staff_id: str
    desk_id: str
    operator_id: str
    country: str
    zone: str
    rules: tuple[WeeklyRule, ...]
    overrides: tuple[DateOverride, ...] = ()
    absences: tuple[Interval, ...] = ()
    closures: frozenset[date] = frozenset()
    busy: tuple[Interval, ...] = ()
    languages: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Stop:
    """One itinerant-bus stop: its date and hours there, in the site's zone."""

    stop_id: str
    day: date
    ranges: tuple[DailyRange, ...]


@dataclass(frozen=True, slots=True)
class SiteCalendar:
    """A France Services site: opening hours (or bus stops), closures and booths.

    Booth occupation is ``booth_busy`` (one interval per appointment holding a booth)
    and/or ``booth_full`` (periods already known to have every booth taken, as a loader
    that aggregates appointments gives them): the site is full over the union of
    ``booth_full`` and the periods where at least ``booths`` of ``booth_busy`` overlap.
    """

    site_id: str
    kind: str
    zone: str
    country: str = "FR"
    weekly_hours: Mapping[int, tuple[DailyRange, ...]] = field(default_factory=dict)
    stops: tuple[Stop, ...] = ()
    closures: frozenset[date] = frozenset()
    booths: int = 1
    booth_busy: tuple[Interval, ...] = ()
    booth_full: tuple[Interval, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "itinerant"):
            raise ValueError(f"SiteCalendar.kind must be 'fixed' or 'itinerant', not {self.kind!r}")
        if self.booths < 1:
            raise ValueError("SiteCalendar.booths must be at least 1")


@dataclass(frozen=True, slots=True, order=True)
class Slot:
    """An offerable appointment: when, with whom, for which service (and at which stop)."""

    start: datetime
    end: datetime
    operator_id: str
    desk_id: str
    staff_id: str
    service_id: str
    stop_id: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a start cannot be booked; ``conflict`` means "taken" (409) not "never" (422)."""

    code: str
    message: str
    conflict: bool


# --------------------------------------------------------------------------- helpers

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _day_text(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _when_text(local: datetime) -> str:
    return f"{_WEEKDAYS[local.weekday()]} {_day_text(local.date())} at {local:%H:%M}"


def _hhmm(at: time) -> str:
    return f"{at:%H:%M}"


def _duration_text(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{n} {unit}{'' if n == 1 else 's'}"
        for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if n
    ]
    return " ".join(parts) if parts else "0 minutes"


def _speaks(language: str | None, service: ServiceRule, staff: StaffCalendar) -> bool:
    if language is None:
        return True
    return language in service.languages and (not staff.languages or language in staff.languages)


class _Cache:
    """Per-call memo of wall-clock → UTC conversions shared by staff with equal rules."""

    __slots__ = ("calendar", "grids", "holidays", "shapes", "utc")

    def __init__(self, holidays: HolidayCalendar) -> None:
        self.calendar = holidays
        self.holidays: dict[tuple[str, date], bool] = {}
        self.utc: dict[tuple[str, date, tuple[DailyRange, ...]], list[Interval]] = {}
        self.grids: dict[object, list[datetime]] = {}
        self.shapes: dict[object, _Shape] = {}

    def is_holiday(self, country: str, day: date) -> bool:
        key = (country, day)
        found = self.holidays.get(key)
        if found is None:
            found = self.holidays[key] = self.calendar.is_holiday(country, day)
        return found

    def ranges_utc(
        self, day: date, ranges: tuple[DailyRange, ...], zone: ZoneInfo
    ) -> list[Interval]:
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


@dataclass(slots=True)
class _SiteView:
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


def _site_view(
    site: SiteCalendar,
    span: Interval,
    stop_id: str | None,
    cache: _Cache,
) -> _SiteView:
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
    return _SiteView(
        zone=zone,
        open=IntervalIndex(pieces),
        itinerant=itinerant,
        stop_starts=[iv.start for iv, _ in tagged],
        stop_ends=[iv.end for iv, _ in tagged],
        stop_max_end=max_ends,
        stop_ids=[sid for _, sid in tagged],
        full=IntervalIndex([*saturated(relevant, site.booths), *site.booth_full]),
    )


@dataclass(slots=True)
class _Shape:
    """Working days and hours, shared by the staff with equal rules, overrides, closures."""

    zone: ZoneInfo
    working: dict[date, tuple[DailyRange, ...]]  # days with hours (no holiday, no closure)
    hours: IntervalIndex  # working hours, before absences
    grids: dict[timedelta, list[datetime]]  # candidate starts per grid step

    def grid(self, step: timedelta, cache: _Cache) -> list[datetime]:
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


def _shape(staff: StaffCalendar, span: Interval, cache: _Cache) -> _Shape:
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
    found = cache.shapes[key] = _Shape(
        zone=zone, working=working, hours=IntervalIndex(pieces), grids={}
    )
    return found


@dataclass(slots=True)
class _StaffView:
    calendar: StaffCalendar
    shape: _Shape
    zone: ZoneInfo
    working: dict[date, tuple[DailyRange, ...]]  # days with hours (no holiday, no closure)
    hours: IntervalIndex  # working hours, before absences
    available: IntervalIndex  # working hours minus absences
    busy: IntervalIndex  # existing appointments (each already including its buffer)

    def grid(self, step: timedelta, cache: _Cache) -> list[datetime]:
        """Return the sorted UTC candidate starts on every working day."""
        return self.shape.grid(step, cache)


def _staff_view(staff: StaffCalendar, span: Interval, cache: _Cache) -> _StaffView:
    shape = _shape(staff, span, cache)
    hours = shape.hours
    return _StaffView(
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


# --------------------------------------------------------------------------- search

_SLOT_ORDER = attrgetter("start", "operator_id", "staff_id", "service_id")
_START = attrgetter("start")
_PREFERENCE = attrgetter("load", "staff_id")


@dataclass(slots=True)
class _Candidate:
    """A staff member who may offer slots, with what the search needs of them."""

    load: int  # appointments overlapping the window
    staff_id: str
    member: StaffCalendar
    shape: _Shape
    group: int | None  # staff sharing it have the same free time (None: absences)
    free: list[Interval]  # working hours, minus absences, while the site is open and free
    busy: list[Interval]  # sorted by start
    offered: list[ServiceRule]


def search_slots(
    *,
    site: SiteCalendar,
    services: Sequence[ServiceRule],
    staff: Sequence[StaffCalendar],
    window: Interval,
    now: datetime,
    holidays: HolidayCalendar,
    language: str | None = None,
    stop_id: str | None = None,
    per_staff: bool = False,
) -> list[Slot]:
    """Return the bookable slots in ``window`` at ``site``, sorted by (start, operator, staff).

    Unless ``per_staff``, each (start, operator, service) is offered once, with the staff
    member holding the fewest appointments in ``window`` (then the smallest staff id).
    """
    now = _require_aware(now, "now")
    cache = _Cache(holidays)
    # One extra local day before the window: a candidate generated on the previous local
    # date can only land in the window through a DST gap at midnight, but check_start
    # considers it, so the search must too.
    span = Interval(window.start - _DAY, window.end)
    site_view = _site_view(site, span, stop_id, cache)
    if not site_view.open:
        return []
    site_free = subtract(site_view.open.intervals, site_view.full.intervals)
    if not site_free:
        return []

    by_operator: dict[str, list[ServiceRule]] = {}
    for service in services:
        by_operator.setdefault(service.operator_id, []).append(service)

    # Who can offer what, and when their working hours meet the site's free time. Staff
    # without absences share that free time with everyone of the same shape.
    members: list[_Candidate] = []
    shared: dict[int, list[Interval]] = {}
    for member in staff:
        offered = [
            s for s in by_operator.get(member.operator_id, ()) if _speaks(language, s, member)
        ]
        if not offered:
            continue
        shape = _shape(member, span, cache)
        group: int | None = None
        if member.absences:
            free = intersect(subtract(shape.hours.intervals, member.absences), site_free)
        else:
            group = id(shape)
            found_free = shared.get(group)
            if found_free is None:
                found_free = shared[group] = intersect(shape.hours.intervals, site_free)
            free = found_free
        if not free:
            continue
        busy = sorted(member.busy, key=_START)
        load = sum(1 for b in busy if b.start < window.end and b.end > window.start)
        members.append(_Candidate(load, member.staff_id, member, shape, group, free, busy, offered))
    if not per_staff:
        # The first member to claim a (start, operator, service) keeps it: in this order,
        # the least loaded (then smallest id; then first given) member wins each start.
        members.sort(key=_PREFERENCE)

    # Starts on the grid with the site open and the staff member working, per shape and
    # service: the same for every member of a shape (without absences).
    bases: dict[tuple[int, int], list[datetime]] = {}
    Taken = tuple[StaffCalendar, ServiceRule, str | None]
    claimed: dict[tuple[str, str], dict[datetime, Taken]] = {}
    found: list[tuple[datetime, StaffCalendar, ServiceRule, str | None]] = []
    itinerant = site_view.itinerant
    for candidate in members:
        member = candidate.member
        for service in candidate.offered:
            key = None if candidate.group is None else (candidate.group, id(service))
            base = None if key is None else bases.get(key)
            if base is None:
                base = _open_starts(candidate.shape, candidate.free, service, window, now, cache)
                if key is not None:
                    bases[key] = base
            if not base:
                continue
            duration = service.duration
            picked = clear_starts(base, candidate.busy, duration + service.buffer_after)
            if not picked:
                continue
            if per_staff:
                if itinerant:
                    for start in picked:
                        stop = site_view.stop_for(start, start + duration)
                        if stop is not None:
                            found.append((start, member, service, stop))
                else:
                    found += [(start, member, service, None) for start in picked]
                continue
            table = claimed.setdefault((member.operator_id, service.service_id), {})
            if itinerant:
                for start in picked:
                    if start not in table:
                        stop = site_view.stop_for(start, start + duration)
                        if stop is not None:
                            table[start] = (member, service, stop)
            else:
                entry: Taken = (member, service, None)
                fresh = set(picked).difference(table) if table else picked
                table.update(dict.fromkeys(fresh, entry))

    if not per_staff:
        found = [
            (start, m, s, stop)
            for table in claimed.values()
            for start, (m, s, stop) in table.items()
        ]
    slots = [
        Slot(
            start,
            start + service.duration,
            member.operator_id,
            member.desk_id,
            member.staff_id,
            service.service_id,
            stop,
        )
        for start, member, service, stop in found
    ]
    slots.sort(key=_SLOT_ORDER)
    return slots


def _open_starts(
    shape: _Shape,
    free: list[Interval],
    service: ServiceRule,
    window: Interval,
    now: datetime,
    cache: _Cache,
) -> list[datetime]:
    """Grid starts whose appointment fits in ``free``, within notice, horizon and window."""
    duration = service.duration
    earliest = max(window.start, now + service.notice)
    latest = min(now + service.horizon, window.end - duration)
    if latest < earliest:
        return []
    starts = shape.grid(service.grid_step, cache)
    base: list[datetime] = []
    for lo, hi in feasible_starts(free, (), duration, duration, earliest, latest):
        base += starts[bisect_left(starts, lo) : bisect_right(starts, hi)]
    return base


# --------------------------------------------------------------------------- check


def _refuse(code: str, message: str, *, conflict: bool = False) -> Refusal:
    return Refusal(code=code, message=message, conflict=conflict)


def _hours_text(ranges: Sequence[DailyRange]) -> str:
    return ", ".join(f"{_hhmm(r.opens)}-{_hhmm(r.closes)}" for r in ranges)


def check_start(
    *,
    start: datetime,
    site: SiteCalendar,
    service: ServiceRule,
    staff: StaffCalendar,
    now: datetime,
    holidays: HolidayCalendar,
    language: str | None = None,
    stop_id: str | None = None,
) -> Refusal | None:
    """Return why ``search_slots`` would not offer ``start`` with ``staff``, or None."""
    if staff.operator_id != service.operator_id:
        raise ValueError(
            f"staff {staff.staff_id} works for {staff.operator_id}, "
            f"not for the service's operator {service.operator_id}"
        )
    start = _require_aware(start, "start")
    now = _require_aware(now, "now")
    end = start + service.duration
    cache = _Cache(holidays)
    site_zone = ZoneInfo(site.zone)
    local = start.astimezone(site_zone)
    when = _when_text(local)
    site_day = local.date()

    if start < now + service.notice:
        return _refuse(
            "too_soon",
            f"Appointments must be booked at least {_duration_text(service.notice)} ahead: "
            f"{when} is too soon.",
        )
    if start > now + service.horizon:
        return _refuse(
            "too_far",
            f"Appointments can be booked at most {_duration_text(service.horizon)} ahead: "
            f"{when} is too far away.",
        )
    holiday = holidays.name(site.country, site_day)
    if holiday is not None:
        return _refuse(
            "holiday",
            f"{_day_text(site_day)} is a public holiday in "
            f"{HolidayCalendar.country_name(site.country)} ({holiday}): the site is closed.",
        )

    span = Interval(start - 2 * _DAY, end + 2 * _DAY)
    site_view = _site_view(site, span, stop_id, cache)
    if not site_view.admits(start, end):
        return _refuse("site_closed", _site_closed_text(site, site_day, local, end, stop_id))

    view = _staff_view(staff, span, cache)
    if not view.available.covers_span(start, end):
        return _refuse("outside_availability", _unavailable_text(view, start, end, holidays))

    step = service.grid_step
    grid = view.grid(step, cache)
    i = bisect_left(grid, start)
    if i == len(grid) or grid[i] != start:
        return _refuse("off_grid", _off_grid_text(view, start, step, when))

    if not _speaks(language, service, staff):
        return _refuse(
            "language",
            f"Appointments in language {language!r} are not offered for this service "
            f"with this advisor.",
        )
    if view.busy.overlaps_span(start, end + service.buffer_after):
        return _refuse(
            "staff_busy",
            f"The advisor already has an appointment around {when}.",
            conflict=True,
        )
    if site_view.full.overlaps_span(start, end):
        booths = "the booth is" if site.booths == 1 else f"all {site.booths} booths are"
        return _refuse(
            "booth_full",
            f"At {when}, {booths} already taken at the site.",
            conflict=True,
        )
    return None


def _site_closed_text(
    site: SiteCalendar, day: date, local: datetime, end: datetime, stop_id: str | None
) -> str:
    when = _when_text(local)
    until = _hhmm(end.astimezone(local.tzinfo).time())
    if day in site.closures:
        return f"The site is closed on {_day_text(day)}."
    if site.kind == "itinerant":
        stops = [s for s in site.stops if s.day == day]
        if not stops:
            return f"The bus does not stop anywhere on {_day_text(day)}."
        matching = [s for s in stops if stop_id is None or s.stop_id == stop_id]
        if not matching:
            where = ", ".join(sorted({s.stop_id for s in stops}))
            return f"On {_day_text(day)} the bus is not at stop {stop_id} but at {where}."
        hours = "; ".join(f"{s.stop_id} {_hours_text(s.ranges)}" for s in matching)
        return f"{when} (until {until}) is outside the bus's hours on {_day_text(day)} ({hours})."
    ranges = tuple(sorted(site.weekly_hours.get(day.weekday(), ()), key=lambda r: r.opens))
    if not ranges:
        return f"The site is closed on {_WEEKDAYS[day.weekday()]}s."
    return f"{when} (until {until}) is outside the site's opening hours ({_hours_text(ranges)})."


def _unavailable_text(
    view: _StaffView, start: datetime, end: datetime, holidays: HolidayCalendar
) -> str:
    staff = view.calendar
    local = start.astimezone(view.zone)
    day = local.date()
    when = f"{_when_text(local)} ({staff.zone} time)"
    holiday = holidays.name(staff.country, day)
    if holiday is not None:
        return (
            f"{_day_text(day)} is a public holiday in "
            f"{HolidayCalendar.country_name(staff.country)} ({holiday}): "
            f"the operator's advisors are not working."
        )
    if day in staff.closures:
        return f"The operator's desk is closed on {_day_text(day)}."
    if view.hours.covers_span(start, end):
        return f"The advisor is absent at {when}."
    return f"The advisor is not working at {when}."


def _off_grid_text(view: _StaffView, start: datetime, step: timedelta, when: str) -> str:
    local = start.astimezone(view.zone)
    every = _duration_text(step)
    for r in view.working.get(local.date(), ()):
        if r.opens <= local.time() < r.closes:
            return f"Appointments start every {every} from {_hhmm(r.opens)}: {when} is not one."
    return f"Appointments start every {every}: {when} is not one."


# --------------------------------------------------------------------------- nearest


def nearest(slots: Sequence[Slot], target: datetime, limit: int = 3) -> list[Slot]:
    """Return up to ``limit`` slots closest in time to ``target`` (ties: earlier first)."""
    target = _require_aware(target, "target")
    if limit <= 0:
        return []
    return heapq.nsmallest(limit, slots, key=lambda sl: (abs(sl.start - target), sl.start))
