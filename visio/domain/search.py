"""Slot search: which appointment starts a site can offer with which operator staff."""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from visio.domain.calendars import HolidayCalendar
from visio.domain.instants import require_aware
from visio.domain.intervals import (
    Interval,
    IntervalIndex,
    clear_starts,
    feasible_starts,
    intersect,
    subtract,
)
from visio.domain.slot_types import ServiceRule, SiteCalendar, Slot, StaffCalendar
from visio.domain.views import Shape, ViewCache, shape_of, site_view, speaks

__all__ = ["nearest", "search_slots", "within_reach", "without_full"]

_DAY = timedelta(days=1)
_INSTANT = timedelta(microseconds=1)  # the last start of a half-open range is before its end
_SLOT_ORDER = attrgetter("start", "operator_id", "staff_id", "service_id")
_START = attrgetter("start")
_PREFERENCE = attrgetter("load", "staff_id")


@dataclass(slots=True)
class _Candidate:
    """A staff member who may offer slots, with what the search needs of them."""

    load: int  # appointments overlapping the window
    staff_id: str
    member: StaffCalendar
    shape: Shape
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
    now: datetime | None,
    holidays: HolidayCalendar,
    language: str | None = None,
    stop_id: str | None = None,
    per_staff: bool = False,
    starts: Interval | None = None,
) -> list[Slot]:
    """Return the bookable slots in ``window`` at ``site``, sorted by (start, operator, staff).

    With ``starts``, only the slots starting in it: exactly those of the whole search
    (which staff member offers a start depends on the window's appointments, not on the
    other starts), for a fraction of its cost.

    Unless ``per_staff``, each (start, operator, service) is offered once, with the staff
    member holding the fewest appointments in ``window`` (then the smallest staff id).

    With ``now`` None, each service's notice and horizon are not applied: the slots of a
    search at any instant are then :func:`within_reach` of these (which staff member
    offers a start does not depend on the instant).
    """
    if now is not None:
        now = require_aware(now, "now")
    cache = ViewCache(holidays)
    # One extra local day before the window: a candidate generated on the previous local
    # date can only land in the window through a DST gap at midnight, but check_start
    # considers it, so the search must too.
    span = Interval(window.start - _DAY, window.end)
    view = site_view(site, span, stop_id, cache)
    if not view.open:
        return []
    site_free = subtract(view.open.intervals, view.full.intervals)
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
            s for s in by_operator.get(member.operator_id, ()) if speaks(language, s, member)
        ]
        if not offered:
            continue
        shape = shape_of(member, span, cache)
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
    itinerant = view.itinerant
    for candidate in members:
        member = candidate.member
        for service in candidate.offered:
            key = None if candidate.group is None else (candidate.group, id(service))
            base = None if key is None else bases.get(key)
            if base is None:
                base = _open_starts(candidate.shape, candidate.free, service, window, now,
                                    cache, starts)
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
                        stop = view.stop_for(start, start + duration)
                        if stop is not None:
                            found.append((start, member, service, stop))
                else:
                    found += [(start, member, service, None) for start in picked]
                continue
            table = claimed.setdefault((member.operator_id, service.service_id), {})
            if itinerant:
                for start in picked:
                    if start not in table:
                        stop = view.stop_for(start, start + duration)
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
    shape: Shape,
    free: list[Interval],
    service: ServiceRule,
    window: Interval,
    now: datetime | None,
    cache: ViewCache,
    within: Interval | None = None,
) -> list[datetime]:
    """Grid starts whose appointment fits in ``free``, within notice, horizon and window
    (within the window only, without ``now``; within ``within`` too, if given)."""
    duration = service.duration
    earliest, latest = window.start, window.end - duration
    if now is not None:
        earliest = max(earliest, now + service.notice)
        latest = min(latest, now + service.horizon)
    if within is not None:
        earliest = max(earliest, within.start)
        latest = min(latest, within.end - _INSTANT)
    if latest < earliest:
        return []
    starts = shape.grid(service.grid_step, cache)
    base: list[datetime] = []
    for lo, hi in feasible_starts(free, (), duration, duration, earliest, latest):
        base += starts[bisect_left(starts, lo) : bisect_right(starts, hi)]
    return base


def within_reach(
    slots: Sequence[Slot], services: Sequence[ServiceRule], now: datetime
) -> list[Slot]:
    """The ``slots`` a search at ``now`` may offer: each service's from ``now`` plus its
    notice to ``now`` plus its horizon (the order is kept)."""
    now = require_aware(now, "now")
    bounds = {s.service_id: (now + s.notice, now + s.horizon) for s in services}
    reachable: list[Slot] = []
    for slot in slots:
        earliest, latest = bounds[slot.service_id]
        if earliest <= slot.start <= latest:
            reachable.append(slot)
    return reachable


def without_full(slots: Sequence[Slot], newly_full: Sequence[Interval]) -> list[Slot]:
    """The ``slots`` once the site's booths are all taken during ``newly_full`` as well.

    Exact: a start is offered when its appointment fits the site's free time (and the
    staff member's), and which staff member offers it does not depend on other starts;
    so more booth-full time only takes away the slots that overlap it.
    """
    full = IntervalIndex(newly_full)
    return [slot for slot in slots if not full.overlaps_span(slot.start, slot.end)]


def nearest(slots: Sequence[Slot], target: datetime, limit: int = 3) -> list[Slot]:
    """Return up to ``limit`` slots closest in time to ``target`` (ties: earlier first)."""
    target = require_aware(target, "target")
    if limit <= 0:
        return []
    return heapq.nsmallest(limit, slots, key=lambda sl: (abs(sl.start - target), sl.start))
