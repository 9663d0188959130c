"""Slot search: the free starts a site can offer for a theme, loaded for the window only."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from operator import attrgetter

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain.calendars import HolidayCalendar
from visio.domain.intervals import Interval
from visio.domain.kinds import SiteKind
from visio.domain.messages import _
from visio.domain.search import search_slots
from visio.domain.slot_types import SiteCalendar, Slot, Stop
from visio.errors import NotFound, Unprocessable
from visio.services.calendars import load_site, load_staff, service_rule
from visio.services.territories import covering_desks, site_place, stop_places

MAX_SEARCH_DAYS = 62
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
    holidays: HolidayCalendar,
) -> FoundSlots:
    """Free slots at a site for a theme."""
    async with db.read() as session:
        return await search(session=session, principal=principal, query=query, now=now,
                            holidays=holidays)


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
    holidays: HolidayCalendar,
) -> FoundSlots:
    """The search inside a unit of work (also used to propose alternatives on a 409)."""
    site = await site_in_scope(session, principal, query.site_id)
    if await session.get(m.Theme, query.theme) is None:
        raise NotFound(_("There is no theme {theme}; see /api/v1/themes.", theme=query.theme))
    if query.stop_id is not None:
        await stop_of(session, site, query.stop_id)
    allowed, operator_id = principal.searchable_operator(query.operator_id)
    if not allowed:
        return FoundSlots([], site.timezone)
    services_query = sa.select(m.Service).where(m.Service.theme == query.theme)
    if operator_id is not None:
        if await session.get(m.Operator, operator_id) is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        services_query = services_query.where(m.Service.operator_id == operator_id)
    services = [service_rule(s) for s in (await session.scalars(services_query)).all()]
    if not services:
        return FoundSlots([], site.timezone)
    site_calendar = await load_site(session=session, site=site, window=query.window)
    operator_ids = sorted({s.operator_id for s in services})
    places = await _places(session, site, site_calendar, operator_ids)
    desk_ids = frozenset().union(*(desks for _, desks in places))
    if not desk_ids:
        return FoundSlots([], site.timezone)
    staff = await load_staff(
        session=session, operator_ids=operator_ids, window=query.window,
        staff_id=query.staff_id, desk_ids=desk_ids,
    )
    slots: list[Slot] = []
    for calendar, desks in places:
        slots += search_slots(
            site=calendar, services=services,
            staff=staff if desks == desk_ids else [s for s in staff if s.desk_id in desks],
            window=query.window, now=now, holidays=holidays, language=query.language,
            stop_id=query.stop_id, per_staff=query.staff_id is not None,
        )
    if len(places) > 1:
        slots.sort(key=_SLOT_ORDER)
    return FoundSlots(slots, site.timezone)


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
