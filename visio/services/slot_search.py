"""Slot search: the free starts a site can offer for a theme, loaded for the window only."""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from operator import attrgetter

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain.calendars import HolidayCalendar
from visio.domain.intervals import Interval, subtract
from visio.domain.kinds import SiteKind
from visio.domain.messages import _
from visio.domain.search import search_slots, within_reach, without_full
from visio.domain.slot_types import SiteCalendar, Slot, Stop
from visio.errors import NotFound, Unprocessable
from visio.services.calendars import (
    load_booth_full,
    load_site_rules,
    load_staff,
    load_staff_busy,
    service_rule,
)
from visio.services.search_cache import (
    CATALOGUE,
    Entry,
    Plan,
    SearchCache,
    SearchKey,
    desk_scope,
    holds,
    read_versions,
    site_scope,
)
from visio.services.territories import covering_desks, site_place, stop_places

MAX_SEARCH_DAYS = 62
_INSTANT = timedelta(microseconds=1)
_SLOT_ORDER = attrgetter("start", "operator_id", "staff_id", "service_id")


@dataclass(frozen=True, slots=True)
class SlotQuery:
    """What to search: a site, a theme, a window, optionally narrowed."""

    site_id: str
    theme: str
    window: Interval
    operator_id: str | None = None
    language: str | None = None
    stop_id: str | None = None
    staff_id: str | None = None


@dataclass(frozen=True, slots=True)
class FoundSlots:
    """Free slots and the zone of the site they are read in."""

    slots: list[Slot]
    zone: str


def check_window(start: datetime, end: datetime) -> Interval:
    """A search window: ``to`` after ``from``, and not too wide."""
    if end <= start:
        raise Unprocessable(_("'to' must be after 'from'."), extra={"field": "to"})
    if end - start > timedelta(days=MAX_SEARCH_DAYS):
        raise Unprocessable(_("Search at most {days} days at once.", days=MAX_SEARCH_DAYS),
                            extra={"field": "to"})
    return Interval(start, end)


async def find_slots(
    *, db: Database, principal: Principal, query: SlotQuery, now: datetime,
    holidays: HolidayCalendar, cache: SearchCache | None = None,
) -> FoundSlots:
    """Free slots at a site for a theme (through ``cache`` when given)."""
    async with db.read() as session:
        return await search(session=session, principal=principal, query=query, now=now,
                            holidays=holidays, cache=cache)


async def site_in_scope(session: AsyncSession, principal: Principal, site_id: str) -> m.Site:
    """The site, if the caller may see it."""
    site = await session.get(m.Site, site_id)
    if site is None or not principal.sees_site(site_id):
        raise NotFound(_("There is no site {site_id}.", site_id=site_id))
    return site


async def stop_of(session: AsyncSession, site: m.Site, stop_id: str) -> m.TourStop:
    """A stop of the site's tour."""
    stop = await session.get(m.TourStop, stop_id)
    if stop is None or stop.site_id != site.id:
        raise NotFound(_("Site {site} has no stop {stop_id}.", site=site.name,
                         stop_id=stop_id))
    return stop


async def search(
    *, session: AsyncSession, principal: Principal, query: SlotQuery, now: datetime,
    holidays: HolidayCalendar, cache: SearchCache | None = None,
) -> FoundSlots:
    """The search inside a unit of work (also used to propose alternatives on a 409).

    Slots are found without notice and horizon, then kept to those reachable ``now``;
    with a ``cache``, what is loaded is kept while the database's counters say it holds
    (``visio.services.search_cache``).
    """
    if not principal.sees_site(query.site_id):
        raise NotFound(_("There is no site {site_id}.", site_id=query.site_id))
    allowed, operator_id = principal.searchable_operator(query.operator_id)
    key = SearchKey(site_id=query.site_id, theme=query.theme, allowed=allowed,
                    operator_id=operator_id, language=query.language,
                    stop_id=query.stop_id, staff_id=query.staff_id, window=query.window)
    entry = cache.get(key) if cache is not None else None
    if entry is not None and cache is not None:
        current = await read_versions(session, entry.scopes())
        if not holds(entry.plan.versions, current):
            cache.heard("miss")
            entry = None
        elif holds(entry.booked, current):
            cache.heard("hit")
        else:
            cache.heard("appointments")
            entry = await _refresh(session, entry, current, query, holidays)
            cache.put(key, entry)
    elif cache is not None:
        cache.heard("miss")
    if entry is None:
        plan = await _plan(session, query, allowed, operator_id)
        booked = await read_versions(session, plan.booked_scopes())
        booth_full, busy = await _appointments(session, plan, query.window)
        entry = Entry(plan=plan, booked=booked, booth_full=booth_full, busy=busy,
                      slots=_find(plan, query, holidays, booth_full, busy))
        if cache is not None:
            cache.put(key, entry)
    return FoundSlots(within_reach(entry.slots, entry.plan.services, now), entry.plan.zone)


async def _refresh(
    session: AsyncSession, entry: Entry, current: Mapping[str, int], query: SlotQuery,
    holidays: HolidayCalendar,
) -> Entry:
    """The entry after appointments changed: the changed ones read again, and the slots
    found again only where they can differ.

    Slots of different operators never compete, so only the operators of staff whose
    appointments changed are searched again. Where the site's booths became full (a
    booking), the slots overlapping that time go; where they became free (a
    cancellation), the starts whose appointment could overlap it are searched again (for
    the other operators).
    """
    plan = entry.plan
    site_changed, staff_changed = entry.changed(current)
    booth_full, slots = entry.booth_full, list(entry.slots)
    freed: Interval | None = None  # where booth time was freed: its starts searched again
    if site_changed:
        booth_full = await load_booth_full(session=session, site_id=plan.site_id,
                                           booths=plan.booths, window=query.window)
        slots = without_full(slots, subtract(booth_full, entry.booth_full))
        free_again = subtract(entry.booth_full, booth_full)
        if free_again:
            longest = max(s.duration for s in plan.services)
            freed = Interval(free_again[0].start - longest + _INSTANT, free_again[-1].end)
    busy = dict(entry.busy)
    if staff_changed:
        found = await load_staff_busy(session=session, staff_ids=staff_changed,
                                      window=query.window)
        for staff_id in staff_changed:
            busy[staff_id] = found.get(staff_id, ())
    moved = set(staff_changed)
    changed = {s.operator_id for s in plan.staff if s.staff_id in moved}
    others = {s.operator_id for s in plan.services} - changed
    fresh: list[tuple[Slot, ...]] = []
    if changed:
        slots = [s for s in slots if s.operator_id not in changed]
        fresh.append(_find(plan, query, holidays, booth_full, busy, operators=changed))
    if freed is not None and others:
        slots = [s for s in slots if not freed.start <= s.start < freed.end]
        fresh.append(_find(plan, query, holidays, booth_full, busy, operators=others,
                           starts=freed))
    if fresh:
        slots = list(heapq.merge(slots, *fresh, key=_SLOT_ORDER))
    booked = {scope: current[scope] for scope in entry.booked}
    return Entry(plan=plan, booked=booked, booth_full=booth_full, busy=busy,
                 slots=tuple(slots))


async def _plan(
    session: AsyncSession, query: SlotQuery, allowed: bool, operator_id: str | None,
) -> Plan:
    """Load what the search needs but appointments, each part after the counters that
    guard it."""
    versions = await read_versions(session, [CATALOGUE, site_scope(query.site_id)])
    site = await session.get(m.Site, query.site_id)
    if site is None:
        raise NotFound(_("There is no site {site_id}.", site_id=query.site_id))
    if await session.get(m.Theme, query.theme) is None:
        raise NotFound(_("There is no theme {theme}; see /api/v1/themes.", theme=query.theme))
    if query.stop_id is not None:
        await stop_of(session, site, query.stop_id)
    nothing = Plan(zone=site.timezone, site_id=site.id, booths=site.booths, services=(),
                   places=(), desk_ids=frozenset(), staff=(), versions=versions)
    if not allowed:
        return nothing
    services_query = sa.select(m.Service).where(m.Service.theme == query.theme)
    if operator_id is not None:
        if await session.get(m.Operator, operator_id) is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        services_query = services_query.where(m.Service.operator_id == operator_id)
    services = tuple(service_rule(s) for s in (await session.scalars(services_query)).all())
    if not services:
        return nothing
    site_calendar = await load_site_rules(session=session, site=site, window=query.window)
    operator_ids = sorted({s.operator_id for s in services})
    places = await _places(session, site, site_calendar, operator_ids)
    desk_ids: frozenset[str] = frozenset().union(*(desks for _, desks in places))
    if not desk_ids:
        return nothing
    versions = {**versions, **await read_versions(session, [desk_scope(d) for d in desk_ids])}
    staff = await load_staff(
        session=session, operator_ids=operator_ids, window=query.window,
        staff_id=query.staff_id, desk_ids=desk_ids, with_busy=False,
    )
    return replace(nothing, services=services, places=tuple(places), desk_ids=desk_ids,
                   staff=tuple(staff), versions=versions)


async def _appointments(
    session: AsyncSession, plan: Plan, window: Interval,
) -> tuple[tuple[Interval, ...], dict[str, tuple[Interval, ...]]]:
    """When the site's booths are all taken, and each staff member's appointments."""
    if not plan.places:
        return (), {}
    booth_full = await load_booth_full(session=session, site_id=plan.site_id,
                                       booths=plan.booths, window=window)
    busy = await load_staff_busy(session=session, window=window,
                                 staff_ids=[s.staff_id for s in plan.staff])
    return booth_full, busy


def _find(
    plan: Plan, query: SlotQuery, holidays: HolidayCalendar,
    booth_full: tuple[Interval, ...], busy: Mapping[str, tuple[Interval, ...]],
    operators: Collection[str] | None = None, starts: Interval | None = None,
) -> tuple[Slot, ...]:
    """The plan's slots with these appointments (of these operators only, starting in
    ``starts`` only, if given), without notice and horizon."""
    if not plan.places:
        return ()
    services = [s for s in plan.services if operators is None or s.operator_id in operators]
    staff = [replace(s, busy=busy[s.staff_id]) if busy.get(s.staff_id) else s
             for s in plan.staff if operators is None or s.operator_id in operators]
    slots: list[Slot] = []
    for calendar, desks in plan.places:
        slots += search_slots(
            site=replace(calendar, booth_full=booth_full), services=services,
            staff=(staff if desks == plan.desk_ids and operators is None
                   else [s for s in staff if s.desk_id in desks]),
            window=query.window, now=None, holidays=holidays, language=query.language,
            stop_id=query.stop_id, per_staff=query.staff_id is not None, starts=starts,
        )
    if len(plan.places) > 1:
        slots.sort(key=_SLOT_ORDER)
    return tuple(slots)


async def _places(
    session: AsyncSession, site: m.Site, calendar: SiteCalendar, operator_ids: list[str],
) -> list[tuple[SiteCalendar, frozenset[str]]]:
    """The site's calendar split by territory: each part with the desks that serve it.

    A fixed site is one place. A bus is wherever its stop is: its stops are grouped by
    the desks serving them, and each group is searched with those desks only.
    """
    if site.kind != SiteKind.ITINERANT:
        place = site_place(site)
        return [(calendar, (await covering_desks(session, operator_ids, [place]))[place])]
    where = await stop_places(session, site, [stop.stop_id for stop in calendar.stops])
    serving = await covering_desks(session, operator_ids, set(where.values()))
    groups: dict[frozenset[str], list[Stop]] = {}
    for stop in calendar.stops:
        desks = serving.get(where.get(stop.stop_id, site_place(site)), frozenset())
        if desks:
            groups.setdefault(desks, []).append(stop)
    return [(replace(calendar, stops=tuple(stops)), desks) for desks, stops in groups.items()]
