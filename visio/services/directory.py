"""Directory and administration: sites, tours, operators, desks, services, closures.

Inputs are the contract's request types; answers are the stored rows, bundled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.contract import bodies as api
from visio.db import Database
from visio.domain.kinds import ActorKind, SiteKind, Status, Weekday
from visio.domain.messages import _
from visio.errors import Conflict, Forbidden, NotFound, Unprocessable
from visio.services import audit, changes
from visio.services.territories import check_codes, covering_desks, site_place, stop_place

WEEKDAYS = tuple(Weekday)
UPCOMING_STOP_DAYS = 92


def require_admin(principal: Principal) -> None:
    """Refuse anyone but an administrator."""
    if not principal.may_administer():
        raise Forbidden(_("Only an administrator can do this."))


def check_timezone(name: str) -> str:
    """Refuse a name that is not an IANA zone."""
    try:
        ZoneInfo(name)
    except (KeyError, ValueError) as err:
        raise Unprocessable(_("{zone} is not an IANA time zone (e.g. Europe/Paris).",
                             zone=name), extra={"field": "timezone"}) from err
    return name


def _clock(value: str) -> time:
    return time.fromisoformat(value)


def ranges_of(ranges: Sequence[api.Range], where: str) -> list[tuple[time, time]]:
    out = []
    for index, r in enumerate(ranges):
        opens, closes = _clock(r.opens), _clock(r.closes)
        if opens >= closes:
            name = f"{where}[{index}]"
            raise Unprocessable(_("In {field}, opens must be before closes.", field=name),
                               extra={"field": name})
        out.append((opens, closes))
    return out


# ---------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class SiteDetails:
    """A site with its weekly hours and its upcoming stops."""

    site: m.Site
    hours: Sequence[m.SiteHours]
    stops: Sequence[m.TourStop]


@dataclass(frozen=True, slots=True)
class OperatorDetails:
    """An operator with the themes it serves and its desks."""

    operator: m.Operator
    themes: Sequence[str]
    desks: Sequence[m.Desk] = field(default_factory=tuple)


async def list_sites(*, db: Database, principal: Principal, today: date) -> list[SiteDetails]:
    """Sites in the caller's scope (agents: their own), with hours and upcoming stops."""
    async with db.read() as session:
        query = sa.select(m.Site).where(principal.site_filter()).order_by(m.Site.name)
        sites = (await session.scalars(query)).all()
        return await _with_details(session, sites, today)


async def _with_details(session: AsyncSession, sites: Sequence[m.Site],
                        today: date) -> list[SiteDetails]:
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
    return [SiteDetails(s, hours[s.id], stops[s.id]) for s in sites]


async def get_site(*, db: Database, principal: Principal, site_id: str,
                   today: date) -> SiteDetails:
    """One site in the caller's scope."""
    async with db.read() as session:
        site = await session.get(m.Site, site_id)
        if site is None or not principal.sees_site(site_id):
            raise NotFound(_("There is no site {site_id}.", site_id=site_id))
        return (await _with_details(session, [site], today))[0]


async def list_operators(*, db: Database, query: api.OperatorQuery) -> list[OperatorDetails]:
    """Operators, optionally of one country or serving one theme."""
    async with db.read() as session:
        select = sa.select(m.Operator).order_by(m.Operator.country, m.Operator.name)
        if query.country is not None:
            select = select.where(m.Operator.country == query.country.value)
        if query.theme is not None:
            select = select.where(m.Operator.id.in_(
                sa.select(m.Service.operator_id).where(m.Service.theme == query.theme)))
        operators = (await session.scalars(select)).all()
        themes = await _themes_by_operator(session, [o.id for o in operators])
    return [OperatorDetails(o, sorted(themes[o.id])) for o in operators]


async def serving_operators(*, db: Database, principal: Principal, site_id: str,
                            query: api.OperatorQuery, day: date) -> list[OperatorDetails]:
    """The operators a slot search at this site on ``day`` may offer: those serving the
    theme with a desk whose territory covers the place (a bus: that day's stop)."""
    async with db.read() as session:
        site = await session.get(m.Site, site_id)
        if site is None or not principal.sees_site(site_id):
            raise NotFound(_("There is no site {site_id}.", site_id=site_id))
        place = site_place(site)
        if site.kind == SiteKind.ITINERANT:
            stop = (await session.execute(sa.select(m.TourStop.id, m.TourStop.commune_insee)
                                          .where(m.TourStop.site_id == site.id,
                                                 m.TourStop.day == day))).first()
            if stop is not None:
                place = stop_place(site, stop.commune_insee)
        select = sa.select(m.Operator).order_by(m.Operator.country, m.Operator.name)
        if query.country is not None:
            select = select.where(m.Operator.country == query.country.value)
        if query.theme is not None:
            select = select.where(m.Operator.id.in_(
                sa.select(m.Service.operator_id).where(m.Service.theme == query.theme)))
        operators = (await session.scalars(select)).all()
        desks = (await covering_desks(session, [o.id for o in operators], [place]))[place]
        serving = set((await session.scalars(sa.select(m.Desk.operator_id).where(
            m.Desk.id.in_(sorted(desks))))).all()) if desks else set()
        operators = [o for o in operators if o.id in serving]
        themes = await _themes_by_operator(session, [o.id for o in operators])
    return [OperatorDetails(o, sorted(themes[o.id])) for o in operators]


async def _themes_by_operator(session: AsyncSession,
                              ids: Sequence[str]) -> dict[str, list[str]]:
    themes: dict[str, list[str]] = defaultdict(list)
    for op_id, theme in (await session.execute(sa.select(m.Service.operator_id, m.Service.theme)
                                               .where(m.Service.operator_id.in_(ids)))):
        themes[op_id].append(theme)
    return themes


async def get_operator(*, db: Database, operator_id: str) -> OperatorDetails:
    """One operator, with its desks."""
    async with db.read() as session:
        op = await session.get(m.Operator, operator_id)
        if op is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        themes = await _themes_by_operator(session, [op.id])
        desks = (await session.scalars(sa.select(m.Desk).where(
            m.Desk.operator_id == op.id).order_by(m.Desk.name))).all()
    return OperatorDetails(op, sorted(themes[op.id]), desks)


async def list_themes(*, db: Database) -> list[m.Theme]:
    """Every theme, with its French and Dutch labels."""
    async with db.read() as session:
        return list((await session.scalars(sa.select(m.Theme).order_by(m.Theme.code))).all())


async def list_services(*, db: Database, query: api.ServiceQuery) -> list[m.Service]:
    """Services, optionally of one operator or theme."""
    async with db.read() as session:
        select = sa.select(m.Service).order_by(m.Service.operator_id, m.Service.theme)
        if query.operator_id is not None:
            select = select.where(m.Service.operator_id == query.operator_id)
        if query.theme is not None:
            select = select.where(m.Service.theme == query.theme)
        return list((await session.scalars(select)).all())


# ---------------------------------------------------------------- administration


def _hours(hours: Mapping[Weekday, Sequence[api.Range]]) -> dict[int, list[tuple[time, time]]]:
    return {WEEKDAYS.index(day): ranges_of(ranges, f"opening_hours.{day.value}")
            for day, ranges in hours.items()}


async def create_site(*, db: Database, principal: Principal, data: api.SiteCreate,
                      today: date) -> SiteDetails:
    """Create a France Services site with its weekly hours."""
    require_admin(principal)
    hours = _hours(data.opening_hours)
    departement = check_codes(data.departement, data.commune_insee)
    async with db.write() as session:
        site = m.Site(name=data.name.strip(), kind=data.kind.value,
                      commune=data.commune.strip(), address=data.address.strip(),
                      timezone=check_timezone(data.timezone), country="FR",
                      booths=data.booths, departement=departement,
                      commune_insee=data.commune_insee, phone=site_phone(data.phone))
        session.add(site)
        await session.flush()
        _replace_hours(session, site.id, hours)
        audit.record(session, actor=audit.actor_of(principal), action="site.created",
                     target_kind="site", target_id=site.id, site_id=site.id,
                     fields=audit.given(data))
        await session.flush()
        return (await _with_details(session, [site], today))[0]


def _replace_hours(session: AsyncSession, site_id: str,
                   hours: Mapping[int, Sequence[tuple[time, time]]]) -> None:
    for weekday, ranges in hours.items():
        for opens, closes in ranges:
            session.add(m.SiteHours(site_id=site_id, weekday=weekday, opens=opens,
                                    closes=closes))


def site_phone(phone: str | None) -> str | None:
    """A site's number (printed on convocations) in E.164, French or Belgian, or a 422."""
    if phone is None:
        return None
    try:
        number = phonenumbers.parse(phone, "FR")
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number) or \
            phonenumbers.region_code_for_number(number) not in ("FR", "BE"):
        raise Unprocessable(_("The site's phone is not a valid French or Belgian phone "
                              "number."), extra={"field": "phone", "reason": "invalid_phone"})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def update_site(*, db: Database, principal: Principal, site_id: str,
                      changes: api.SiteUpdate, today: date) -> SiteDetails:
    """Change a site's fields; ``opening_hours`` replaces the weekly hours."""
    require_admin(principal)
    hours = None if changes.opening_hours is None else _hours(changes.opening_hours)
    if changes.timezone is not None:
        check_timezone(changes.timezone)
    async with db.write() as session:
        site = await session.get(m.Site, site_id)
        if site is None:
            raise NotFound(_("There is no site {site_id}.", site_id=site_id))
        for name in ("name", "commune", "address", "timezone"):
            value = getattr(changes, name)
            if value is not None:
                setattr(site, name, value.strip())
        if changes.booths is not None:
            site.booths = changes.booths
        if changes.phone is not None:
            site.phone = site_phone(changes.phone)
        if changes.commune_insee is not None:
            site.departement = check_codes(changes.departement, changes.commune_insee)
            site.commune_insee = changes.commune_insee
        elif changes.departement is not None:
            if site.departement != changes.departement:
                site.commune_insee = None  # the old commune is not in the new département
            site.departement = changes.departement
        if hours is not None:
            await session.execute(sa.delete(m.SiteHours).where(m.SiteHours.site_id == site_id))
            _replace_hours(session, site_id, hours)
        audit.record(session, actor=audit.actor_of(principal), action="site.changed",
                     target_kind="site", target_id=site_id, site_id=site_id,
                     fields=audit.given(changes))
        await session.flush()
        return (await _with_details(session, [site], today))[0]


async def add_stops(*, db: Database, principal: Principal, site_id: str,
                    data: api.StopsCreate) -> list[m.TourStop]:
    """Add dated stops to an itinerant site's tour (one stop per day)."""
    require_admin(principal)
    if len({s.date for s in data.stops}) != len(data.stops):
        raise Unprocessable(_("Give each stop date once."), extra={"field": "stops"})
    hours = [ranges_of(s.hours, f"stops[{i}].hours") for i, s in enumerate(data.stops)]
    try:
        async with db.write() as session:
            site = await session.get(m.Site, site_id)
            if site is None:
                raise NotFound(_("There is no site {site_id}.", site_id=site_id))
            if site.kind != SiteKind.ITINERANT:
                raise Conflict(_("{name} is a fixed site; only buses have a tour.",
                                 name=site.name))
            rows = [m.TourStop(site_id=site_id, day=s.date, commune=s.commune.strip(),
                               place=s.place.strip(), commune_insee=s.commune_insee,
                               hours=[[a.strftime("%H:%M"), b.strftime("%H:%M")]
                                      for a, b in ranges])
                    for s, ranges in zip(data.stops, hours, strict=True)]
            session.add_all(rows)
            await session.flush()
            audit.record(session, actor=audit.actor_of(principal), action="stops.added",
                         target_kind="site", target_id=site_id, site_id=site_id,
                         detail={"stops": [r.id for r in rows]})
            return rows
    except IntegrityError as err:
        raise Conflict(_("The bus already has a stop on one of these days.")) from err


async def remove_stop(*, db: Database, principal: Principal, site_id: str,
                      stop_id: str) -> None:
    """Remove a stop no kept appointment uses; cancelled ones forget it."""
    require_admin(principal)
    async with db.write() as session:
        stop = await session.get(m.TourStop, stop_id)
        if stop is None or stop.site_id != site_id:
            raise NotFound(_("There is no stop {stop_id} on this site.", stop_id=stop_id))
        used = await session.scalar(sa.select(sa.func.count()).select_from(m.Appointment).where(
            m.Appointment.stop_id == stop_id, m.Appointment.status != Status.CANCELLED))
        if used:
            raise Conflict(_("Appointments use this stop ({count}); reschedule or cancel "
                             "them first.", count=used))
        # Cancelled appointments keep their history without the stop they would have used.
        await session.execute(sa.update(m.Appointment).where(
            m.Appointment.stop_id == stop_id).values(stop_id=None))
        await session.delete(stop)
        audit.record(session, actor=audit.actor_of(principal), action="stop.removed",
                     target_kind="stop", target_id=stop_id, site_id=site_id)


async def create_operator(*, db: Database, principal: Principal,
                          data: api.OperatorCreate) -> OperatorDetails:
    """Create an operator (national back-office or cross-border cell)."""
    require_admin(principal)
    check_timezone(data.timezone)
    try:
        async with db.write() as session:
            op = m.Operator(name=data.name.strip(), code=data.code,
                            country=data.country.value, kind=data.kind.value,
                            languages=sorted({lang.value for lang in data.languages}),
                            timezone=data.timezone)
            session.add(op)
            await session.flush()
            audit.record(session, actor=audit.actor_of(principal), action="operator.created",
                         target_kind="operator", target_id=op.id, fields=audit.given(data))
    except IntegrityError as err:
        raise Conflict(_("An operator with code {code} exists already.",
                         code=data.code)) from err
    return OperatorDetails(op, [])


async def update_operator(*, db: Database, principal: Principal, operator_id: str,
                          changes: api.OperatorUpdate) -> OperatorDetails:
    """Change an operator's name, languages or zone."""
    require_admin(principal)
    if changes.timezone is not None:
        check_timezone(changes.timezone)
    async with db.write() as session:
        op = await session.get(m.Operator, operator_id)
        if op is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        if changes.name is not None:
            op.name = changes.name.strip()
        if changes.languages is not None:
            op.languages = sorted({lang.value for lang in changes.languages})
        if changes.timezone is not None:
            op.timezone = changes.timezone
        audit.record(session, actor=audit.actor_of(principal), action="operator.changed",
                     target_kind="operator", target_id=op.id, fields=audit.given(changes))
        themes = await _themes_by_operator(session, [op.id])
    return OperatorDetails(op, sorted(themes[op.id]))


async def create_desk(*, db: Database, principal: Principal, operator_id: str,
                      data: api.DeskCreate) -> m.Desk:
    """Add a desk (team) to an operator."""
    require_admin(principal)
    async with db.write() as session:
        if await session.get(m.Operator, operator_id) is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        desk = m.Desk(operator_id=operator_id, name=data.name.strip())
        session.add(desk)
        await session.flush()
        audit.record(session, actor=audit.actor_of(principal), action="desk.created",
                     target_kind="desk", target_id=desk.id, fields=audit.given(data),
                     detail={"operator_id": operator_id})
    return desk


async def create_service(*, db: Database, principal: Principal,
                         data: api.ServiceCreate) -> m.Service:
    """Offer video appointments of an operator on a theme."""
    require_admin(principal)
    try:
        async with db.write() as session:
            if await session.get(m.Operator, data.operator_id) is None:
                raise NotFound(_("There is no operator {operator_id}.",
                                 operator_id=data.operator_id))
            if await session.get(m.Theme, data.theme) is None:
                raise NotFound(_("There is no theme {theme}; see /api/v1/themes.",
                                 theme=data.theme))
            service = m.Service(
                operator_id=data.operator_id, theme=data.theme,
                duration_minutes=data.duration_minutes, buffer_minutes=data.buffer_minutes,
                languages=sorted({lang.value for lang in data.languages}),
                notice_minutes=data.notice_minutes, horizon_days=data.horizon_days)
            session.add(service)
            await session.flush()
            audit.record(session, actor=audit.actor_of(principal), action="service.created",
                         target_kind="service", target_id=service.id,
                         fields=audit.given(data))
    except IntegrityError as err:
        raise Conflict(_("This operator already has a service for this theme.")) from err
    return service


async def update_service(*, db: Database, principal: Principal, service_id: str,
                         changes: api.ServiceUpdate) -> m.Service:
    """Change a service's duration, buffer, languages, notice or horizon."""
    require_admin(principal)
    async with db.write() as session:
        service = await session.get(m.Service, service_id)
        if service is None:
            raise NotFound(_("There is no service {service_id}.", service_id=service_id))
        for name in ("duration_minutes", "buffer_minutes", "notice_minutes", "horizon_days"):
            value = getattr(changes, name)
            if value is not None:
                setattr(service, name, value)
        if changes.languages is not None:
            service.languages = sorted({lang.value for lang in changes.languages})
        audit.record(session, actor=audit.actor_of(principal), action="service.changed",
                     target_kind="service", target_id=service.id, fields=audit.given(changes))
    return service


@dataclass(frozen=True, slots=True)
class ClosureOutcome:
    """A stored closure and the appointments it cancelled."""

    closure: m.ClosureDay
    cancelled: Sequence[str]


async def add_closure(*, db: Database, principal: Principal, data: api.ClosureCreate,
                      now: datetime, rooms: changes.RoomCloser) -> ClosureOutcome:
    """Close a site, an operator or a desk on one date.

    Booked appointments that day make it a 409 listing them, unless the request says
    ``cancel_appointments``: then they are cancelled in the same transaction, audited
    (``closure``), and their calls close once it has committed.
    """
    require_admin(principal)
    owners = [x for x in (data.site_id, data.operator_id, data.desk_id) if x is not None]
    if len(owners) != 1:
        raise Unprocessable(_("Give exactly one of site_id, operator_id or desk_id."))
    reason = (data.reason or "").strip()
    async with db.write() as session:
        if data.site_id is not None and await session.get(m.Site, data.site_id) is None:
            raise NotFound(_("There is no site {site_id}.", site_id=data.site_id))
        if (data.operator_id is not None
                and await session.get(m.Operator, data.operator_id) is None):
            raise NotFound(_("There is no operator {operator_id}.",
                             operator_id=data.operator_id))
        if data.desk_id is not None and await session.get(m.Desk, data.desk_id) is None:
            raise NotFound(_("There is no desk {desk_id}.", desk_id=data.desk_id))
        booked = await _booked_on(session, data)
        if booked and not data.cancel_appointments:
            raise Conflict(
                _("Appointments are booked that day ({count}); cancel or reschedule them, "
                  "or send cancel_appointments: true.", count=len(booked)),
                extra={"reason": "appointments_booked",
                       "appointments": [a.id for a in booked]})
        for appointment in booked:
            await changes.mark_cancelled(
                session, appointment, reason=reason or "closure", actor_id=principal.user_id,
                actor_kind=ActorKind.CLOSURE, now=now)
        row = m.ClosureDay(site_id=data.site_id, operator_id=data.operator_id,
                           desk_id=data.desk_id, day=data.date, reason=reason)
        session.add(row)
        await session.flush()
        audit.record(session, at=now, actor=audit.actor_of(principal), action="closure.added",
                     target_kind="closure", target_id=row.id, site_id=data.site_id,
                     fields=audit.given(data),
                     detail={"owner": (data.site_id and "site") or (data.operator_id
                                                                     and "operator") or "desk",
                             "owner_id": owners[0], "day": data.date.isoformat(),
                             "cancelled": len(booked)})
    cancelled = [a.id for a in booked]
    await rooms(cancelled, "cancelled")
    return ClosureOutcome(row, cancelled)


async def _booked_on(session: AsyncSession, data: api.ClosureCreate) -> list[m.Appointment]:
    """Booked appointments whose local day (in the site's zone) is the closed date."""
    # A day is at most 26 h long in any zone: read a generous window, then keep the date.
    start = datetime.combine(data.date, time(0), tzinfo=ZoneInfo("UTC")) - timedelta(hours=14)
    end = start + timedelta(hours=14 + 24 + 14)
    query = (sa.select(m.Appointment, m.Site.timezone)
             .join(m.Site, m.Site.id == m.Appointment.site_id)
             .where(m.Appointment.status == Status.BOOKED,
                    m.Appointment.start >= start, m.Appointment.start < end)
             .with_for_update(of=m.Appointment))
    if data.site_id is not None:
        query = query.where(m.Appointment.site_id == data.site_id)
    if data.operator_id is not None:
        query = query.where(m.Appointment.operator_id == data.operator_id)
    if data.desk_id is not None:
        query = query.where(m.Appointment.desk_id == data.desk_id)
    rows = (await session.execute(query.order_by(m.Appointment.start))).all()
    return [a for a, zone in rows if a.start.astimezone(ZoneInfo(zone)).date() == data.date]
