"""Directory and administration: sites, tours, operators, desks, services, closures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.db import Database
from visio.domain.messages import _
from visio.errors import Forbidden, InvalidInput, NotFound
from visio.representations import wall_clock
from visio.services.accounts import Principal

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
UPCOMING_STOP_DAYS = 92



def require_admin(principal: Principal) -> None:
    """Refuse anyone but an administrator."""
    if not principal.is_admin:
        raise Forbidden(_("Only an administrator can do this."))


# ---------------------------------------------------------------- reading


def _site_json(site: m.Site, hours: Sequence[m.SiteHours],
               stops: Sequence[m.TourStop]) -> dict[str, Any]:
    opening: dict[str, list[dict[str, str]]] = {}
    for row in hours:
        opening.setdefault(WEEKDAYS[row.weekday], []).append(
            {"opens": wall_clock(row.opens), "closes": wall_clock(row.closes)})
    return {
        "id": site.id, "name": site.name, "kind": site.kind, "commune": site.commune,
        "address": site.address, "timezone": site.timezone, "country": site.country,
        "booths": site.booths, "opening_hours": opening,
        "stops": [stop_json(s) for s in stops],
    }


def stop_json(stop: m.TourStop) -> dict[str, Any]:
    """A tour stop as the API returns it."""
    return {
        "id": stop.id, "date": stop.day.isoformat(), "commune": stop.commune,
        "place": stop.place, "opens": stop.hours[0][0], "closes": stop.hours[-1][1],
        "hours": [{"opens": a, "closes": b} for a, b in stop.hours],
    }


async def list_sites(*, db: Database, principal: Principal, today: date) -> list[dict[str, Any]]:
    """Sites in the caller's scope (agents: their own), with hours and upcoming stops."""
    async with db.read() as session:
        query = sa.select(m.Site).order_by(m.Site.name)
        if principal.role == "agent":
            query = query.where(m.Site.id.in_(principal.site_ids))
        sites = (await session.scalars(query)).all()
        return await _with_details(session, sites, today)


async def _with_details(session: AsyncSession, sites: Sequence[m.Site],
                        today: date) -> list[dict[str, Any]]:
    ids = [s.id for s in sites]
    hours: dict[str, list[m.SiteHours]] = defaultdict(list)
    for row in (await session.scalars(sa.select(m.SiteHours).where(
            m.SiteHours.site_id.in_(ids)).order_by(m.SiteHours.weekday, m.SiteHours.opens))):
        hours[row.site_id].append(row)
    stops: dict[str, list[m.TourStop]] = defaultdict(list)
    for stop in (await session.scalars(sa.select(m.TourStop).where(
            m.TourStop.site_id.in_(ids),
            m.TourStop.day.between(today, today + timedelta(days=UPCOMING_STOP_DAYS)),
    ).order_by(m.TourStop.day))):
        stops[stop.site_id].append(stop)
    return [_site_json(s, hours[s.id], stops[s.id]) for s in sites]


async def get_site(*, db: Database, principal: Principal, site_id: str,
                   today: date) -> dict[str, Any]:
    """One site in the caller's scope."""
    async with db.read() as session:
        site = await session.get(m.Site, site_id)
        if site is None or (principal.role == "agent" and site_id not in principal.site_ids):
            raise NotFound(_("There is no site {site_id}.", site_id=site_id))
        return (await _with_details(session, [site], today))[0]


def _operator_json(op: m.Operator, themes: Sequence[str]) -> dict[str, Any]:
    return {"id": op.id, "name": op.name, "code": op.code, "country": op.country,
            "kind": op.kind, "languages": op.languages, "timezone": op.timezone,
            "themes": sorted(themes)}


async def list_operators(*, db: Database, country: str | None,
                         theme: str | None) -> list[dict[str, Any]]:
    """Operators, optionally of one country or serving one theme."""
    async with db.read() as session:
        query = sa.select(m.Operator).order_by(m.Operator.country, m.Operator.name)
        if country is not None:
            query = query.where(m.Operator.country == country)
        if theme is not None:
            query = query.where(m.Operator.id.in_(
                sa.select(m.Service.operator_id).where(m.Service.theme == theme)))
        operators = (await session.scalars(query)).all()
        themes = await _themes_by_operator(session, [o.id for o in operators])
    return [_operator_json(o, themes[o.id]) for o in operators]


async def _themes_by_operator(session: AsyncSession,
                              ids: Sequence[str]) -> dict[str, list[str]]:
    themes: dict[str, list[str]] = defaultdict(list)
    for op_id, theme in (await session.execute(sa.select(m.Service.operator_id, m.Service.theme)
                                               .where(m.Service.operator_id.in_(ids)))):
        themes[op_id].append(theme)
    return themes


async def get_operator(*, db: Database, operator_id: str) -> dict[str, Any]:
    """One operator, with its desks."""
    async with db.read() as session:
        op = await session.get(m.Operator, operator_id)
        if op is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        themes = await _themes_by_operator(session, [op.id])
        desks = (await session.scalars(sa.select(m.Desk).where(
            m.Desk.operator_id == op.id).order_by(m.Desk.name))).all()
    return {**_operator_json(op, themes[op.id]),
            "desks": [{"id": d.id, "name": d.name} for d in desks]}


async def list_themes(*, db: Database) -> list[dict[str, Any]]:
    """Every theme, with its French and Dutch labels."""
    async with db.read() as session:
        rows = (await session.scalars(sa.select(m.Theme).order_by(m.Theme.code))).all()
    return [{"id": t.code, "code": t.code, "label_fr": t.label_fr, "label_nl": t.label_nl}
            for t in rows]


def service_json(s: m.Service) -> dict[str, Any]:
    """A service as the API returns it."""
    return {"id": s.id, "operator_id": s.operator_id, "theme": s.theme,
            "duration_minutes": s.duration_minutes, "buffer_minutes": s.buffer_minutes,
            "languages": s.languages, "notice_minutes": s.notice_minutes,
            "horizon_days": s.horizon_days}


async def list_services(*, db: Database, operator_id: str | None,
                        theme: str | None) -> list[dict[str, Any]]:
    """Services, optionally of one operator or theme."""
    async with db.read() as session:
        query = sa.select(m.Service).order_by(m.Service.operator_id, m.Service.theme)
        if operator_id is not None:
            query = query.where(m.Service.operator_id == operator_id)
        if theme is not None:
            query = query.where(m.Service.theme == theme)
        return [service_json(s) for s in (await session.scalars(query)).all()]


# ---------------------------------------------------------------- administration


@dataclass(frozen=True, slots=True)
class SiteInput:
    name: str
    kind: str
    commune: str
    address: str
    timezone: str
    booths: int
    opening_hours: Mapping[int, Sequence[tuple[time, time]]]


async def create_site(*, db: Database, principal: Principal, data: SiteInput,
                      today: date) -> dict[str, Any]:
    """Create a France Services site with its weekly hours."""
    require_admin(principal)
    async with db.write() as session:
        site = m.Site(name=data.name, kind=data.kind, commune=data.commune,
                      address=data.address, timezone=data.timezone, country="FR",
                      booths=data.booths)
        session.add(site)
        await session.flush()
        _replace_hours(session, site.id, data.opening_hours)
        await session.flush()
        return (await _with_details(session, [site], today))[0]


def _replace_hours(session: AsyncSession, site_id: str,
                   hours: Mapping[int, Sequence[tuple[time, time]]]) -> None:
    for weekday, ranges in hours.items():
        for opens, closes in ranges:
            session.add(m.SiteHours(site_id=site_id, weekday=weekday, opens=opens,
                                    closes=closes))


async def update_site(*, db: Database, principal: Principal, site_id: str,
                      changes: Mapping[str, Any], today: date) -> dict[str, Any]:
    """Change a site's fields; ``opening_hours`` replaces the weekly hours."""
    require_admin(principal)
    async with db.write() as session:
        site = await session.get(m.Site, site_id)
        if site is None:
            raise NotFound(_("There is no site {site_id}.", site_id=site_id))
        for field in ("name", "commune", "address", "timezone", "booths"):
            if field in changes:
                setattr(site, field, changes[field])
        if "opening_hours" in changes:
            await session.execute(sa.delete(m.SiteHours).where(m.SiteHours.site_id == site_id))
            _replace_hours(session, site_id, changes["opening_hours"])
        await session.flush()
        return (await _with_details(session, [site], today))[0]


@dataclass(frozen=True, slots=True)
class StopInput:
    day: date
    commune: str
    place: str
    hours: Sequence[tuple[time, time]]


async def add_stops(*, db: Database, principal: Principal, site_id: str,
                    stops: Sequence[StopInput]) -> list[dict[str, Any]]:
    """Add dated stops to an itinerant site's tour (one stop per day)."""
    require_admin(principal)
    try:
        async with db.write() as session:
            site = await session.get(m.Site, site_id)
            if site is None:
                raise NotFound(_("There is no site {site_id}.", site_id=site_id))
            if site.kind != "itinerant":
                raise InvalidInput(_("{name} is a fixed site; only buses have a tour.", name=site.name))
            rows = [m.TourStop(site_id=site_id, day=s.day, commune=s.commune, place=s.place,
                               hours=[[wall_clock(a), wall_clock(b)] for a, b in s.hours])
                    for s in stops]
            session.add_all(rows)
            await session.flush()
            return [stop_json(r) for r in rows]
    except IntegrityError as err:
        raise InvalidInput(_("The bus already has a stop on one of these days.")) from err


async def remove_stop(*, db: Database, principal: Principal, site_id: str,
                      stop_id: str) -> None:
    """Remove a stop that no booked appointment uses."""
    require_admin(principal)
    async with db.write() as session:
        stop = await session.get(m.TourStop, stop_id)
        if stop is None or stop.site_id != site_id:
            raise NotFound(_("There is no stop {stop_id} on this site.", stop_id=stop_id))
        used = await session.scalar(sa.select(sa.func.count()).select_from(m.Appointment).where(
            m.Appointment.stop_id == stop_id, m.Appointment.status == "booked"))
        if used:
            raise InvalidInput(_("{used} booked appointment(s) use this stop; reschedule or cancel them first.", used=used))
        await session.delete(stop)


@dataclass(frozen=True, slots=True)
class OperatorInput:
    name: str
    code: str
    country: str
    kind: str
    languages: Sequence[str]
    timezone: str


async def create_operator(*, db: Database, principal: Principal,
                          data: OperatorInput) -> dict[str, Any]:
    """Create an operator (national back-office or cross-border cell)."""
    require_admin(principal)
    try:
        async with db.write() as session:
            op = m.Operator(name=data.name, code=data.code, country=data.country,
                            kind=data.kind, languages=list(data.languages),
                            timezone=data.timezone)
            session.add(op)
            await session.flush()
    except IntegrityError as err:
        raise InvalidInput(_("An operator with code {code} exists already.", code=data.code)) from err
    return _operator_json(op, [])


async def update_operator(*, db: Database, principal: Principal, operator_id: str,
                          changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change an operator's fields."""
    require_admin(principal)
    async with db.write() as session:
        op = await session.get(m.Operator, operator_id)
        if op is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        for field in ("name", "languages", "timezone"):
            if field in changes:
                setattr(op, field, changes[field])
        themes = await _themes_by_operator(session, [op.id])
    return _operator_json(op, themes[op.id])


async def create_desk(*, db: Database, principal: Principal, operator_id: str,
                      name: str) -> dict[str, Any]:
    """Add a desk (team) to an operator."""
    require_admin(principal)
    async with db.write() as session:
        if await session.get(m.Operator, operator_id) is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        desk = m.Desk(operator_id=operator_id, name=name)
        session.add(desk)
        await session.flush()
    return {"id": desk.id, "operator_id": operator_id, "name": name}


@dataclass(frozen=True, slots=True)
class ServiceInput:
    operator_id: str
    theme: str
    duration_minutes: int = 30
    buffer_minutes: int = 0
    languages: Sequence[str] = ("fr",)
    notice_minutes: int = 120
    horizon_days: int = 56


async def create_service(*, db: Database, principal: Principal,
                         data: ServiceInput) -> dict[str, Any]:
    """Offer video appointments of an operator on a theme."""
    require_admin(principal)
    try:
        async with db.write() as session:
            if await session.get(m.Operator, data.operator_id) is None:
                raise NotFound(_("There is no operator {operator_id}.", operator_id=data.operator_id))
            if await session.get(m.Theme, data.theme) is None:
                raise NotFound(_("There is no theme {theme}.", theme=data.theme))
            service = m.Service(
                operator_id=data.operator_id, theme=data.theme,
                duration_minutes=data.duration_minutes, buffer_minutes=data.buffer_minutes,
                languages=list(data.languages), notice_minutes=data.notice_minutes,
                horizon_days=data.horizon_days)
            session.add(service)
            await session.flush()
    except IntegrityError as err:
        raise InvalidInput(_("This operator already has a service for this theme.")) from err
    return service_json(service)


async def update_service(*, db: Database, principal: Principal, service_id: str,
                         changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change a service's duration, buffer, languages, notice or horizon."""
    require_admin(principal)
    async with db.write() as session:
        service = await session.get(m.Service, service_id)
        if service is None:
            raise NotFound(_("There is no service {service_id}.", service_id=service_id))
        for field in ("duration_minutes", "buffer_minutes", "languages", "notice_minutes",
                      "horizon_days"):
            if field in changes:
                setattr(service, field, changes[field])
    return service_json(service)


@dataclass(frozen=True, slots=True)
class ClosureInput:
    day: date
    reason: str
    site_id: str | None = None
    operator_id: str | None = None
    desk_id: str | None = None


async def add_closure(*, db: Database, principal: Principal,
                      data: ClosureInput) -> dict[str, Any]:
    """Close a site, an operator or a desk on one date."""
    require_admin(principal)
    owners = [x for x in (data.site_id, data.operator_id, data.desk_id) if x is not None]
    if len(owners) != 1:
        raise InvalidInput(_("Give exactly one of site_id, operator_id or desk_id."))
    async with db.write() as session:
        for model, value in ((m.Site, data.site_id), (m.Operator, data.operator_id),
                             (m.Desk, data.desk_id)):
            if value is not None and await session.get(model, value) is None:
                raise NotFound(_("There is no {value} {value2}.", value=model.__tablename__[:-1], value2=value))
        row = m.ClosureDay(site_id=data.site_id, operator_id=data.operator_id,
                           desk_id=data.desk_id, day=data.day, reason=data.reason)
        session.add(row)
        await session.flush()
    return {"id": row.id, "date": data.day.isoformat(), "reason": data.reason,
            "site_id": data.site_id, "operator_id": data.operator_id, "desk_id": data.desk_id}


def check_timezone(name: str) -> str:
    """Refuse a name that is not an IANA zone."""
    try:
        ZoneInfo(name)
    except (KeyError, ValueError) as err:
        raise InvalidInput(_("{name} is not an IANA time zone (e.g. Europe/Paris).", name=name)) from err
    return name
