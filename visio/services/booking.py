"""Slot search and appointments: book, cancel, reschedule, list."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio import representations
from visio.db import Database
from visio.domain.calendars import HolidayCalendar
from visio.domain.intervals import Interval
from visio.domain.messages import Message, _
from visio.domain.refusals import Refusal, check_start
from visio.domain.search import nearest, search_slots
from visio.domain.slot_types import Slot, StaffCalendar
from visio.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotBookable,
    NotFound,
    SlotTaken,
    VisioError,
)
from visio.services import idempotency
from visio.services.accounts import Principal
from visio.services.calendars import HOLDS_TIME, load_site, load_staff, service_rule

MAX_SEARCH_DAYS = 62
STAFF_CONSTRAINT = "ex_appointments_staff_overlap"
BOOTH_CONSTRAINT = "ex_appointments_booth_overlap"


@dataclass(frozen=True, slots=True)
class SlotQuery:
    site_id: str
    theme: str
    window: Interval
    operator_id: str | None = None
    language: str | None = None
    stop_id: str | None = None
    staff_id: str | None = None


@dataclass(frozen=True, slots=True)
class Usager:
    first_name: str
    last_name: str
    phone: str | None
    email: str | None
    language: str
    consent: bool


@dataclass(frozen=True, slots=True)
class BookingRequest:
    site_id: str
    start: datetime
    usager: Usager
    service_id: str | None = None
    operator_id: str | None = None
    theme: str | None = None
    stop_id: str | None = None
    staff_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """An HTTP-ready answer: status and JSON body (stored for idempotent replays)."""

    status: int
    body: str


@dataclass(frozen=True, slots=True)
class AppointmentFilter:
    start_from: datetime | None = None
    start_to: datetime | None = None
    site_id: str | None = None
    operator_id: str | None = None
    status: str | None = None


# ---------------------------------------------------------------- scope


def _check_site_scope(principal: Principal, site_id: str) -> None:
    if principal.is_admin:
        return
    if principal.role == "agent" and site_id in principal.site_ids:
        return
    raise NotFound(_("There is no site {site_id} you can book for.", site_id=site_id))


SelectT = TypeVar("SelectT", bound="sa.Select[*tuple[Any, ...]]")


def _scoped(query: SelectT, principal: Principal) -> SelectT:
    if principal.is_admin:
        return query
    if principal.role == "agent":
        return query.where(m.Appointment.site_id.in_(principal.site_ids))
    return query.where(m.Appointment.operator_id == principal.operator_id)


async def _site(session: AsyncSession, principal: Principal, site_id: str) -> m.Site:
    site = await session.get(m.Site, site_id)
    if site is None:
        raise NotFound(_("There is no site {site_id}.", site_id=site_id))
    if principal.role == "agent":
        _check_site_scope(principal, site_id)
    return site


# ---------------------------------------------------------------- search


async def find_slots(
    *, db: Database, principal: Principal, query: SlotQuery, now: datetime,
    holidays: HolidayCalendar,
) -> tuple[list[Slot], str]:
    """Free slots at a site for a theme; returns them with the site's zone."""
    if query.window.end - query.window.start > timedelta(days=MAX_SEARCH_DAYS):
        raise InvalidInput(_("Search at most {MAX_SEARCH_DAYS} days at once.", MAX_SEARCH_DAYS=MAX_SEARCH_DAYS))
    async with db.read() as session:
        return await _search(session=session, principal=principal, query=query, now=now,
                             holidays=holidays)


async def _search(
    *, session: AsyncSession, principal: Principal, query: SlotQuery, now: datetime,
    holidays: HolidayCalendar,
) -> tuple[list[Slot], str]:
    site = await _site(session, principal, query.site_id)
    if await session.get(m.Theme, query.theme) is None:
        raise NotFound(_("There is no theme {theme}; see /api/v1/themes.", theme=query.theme))
    if query.stop_id is not None:
        await _stop(session, site, query.stop_id)
    operator_id = query.operator_id
    if principal.role == "staff":
        if operator_id not in (None, principal.operator_id):
            return [], site.timezone
        operator_id = principal.operator_id
    services_query = sa.select(m.Service).where(m.Service.theme == query.theme)
    if operator_id is not None:
        if await session.get(m.Operator, operator_id) is None:
            raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
        services_query = services_query.where(m.Service.operator_id == operator_id)
    services = [service_rule(s) for s in (await session.scalars(services_query)).all()]
    if not services:
        return [], site.timezone
    site_calendar = await load_site(session=session, site=site, window=query.window)
    staff = await load_staff(
        session=session, operator_ids=sorted({s.operator_id for s in services}),
        window=query.window, staff_id=query.staff_id,
    )
    slots = search_slots(
        site=site_calendar, services=services, staff=staff, window=query.window, now=now,
        holidays=holidays, language=query.language, stop_id=query.stop_id,
        per_staff=query.staff_id is not None,
    )
    return slots, site.timezone


async def _stop(session: AsyncSession, site: m.Site, stop_id: str) -> m.TourStop:
    stop = await session.get(m.TourStop, stop_id)
    if stop is None or stop.site_id != site.id:
        raise NotFound(_("Site {name} has no stop {stop_id}.", name=site.name, stop_id=stop_id))
    return stop


# ---------------------------------------------------------------- booking


def _constraint_of(err: IntegrityError) -> str | None:
    text = str(err.orig)
    for name in (STAFF_CONSTRAINT, BOOTH_CONSTRAINT):
        if name in text:
            return name
    return None


async def book(
    *, db: Database, principal: Principal, request: BookingRequest, now: datetime,
    holidays: HolidayCalendar, idempotency_request: idempotency.IdempotencyRequest,
) -> Outcome:
    """Book an appointment once per Idempotency-Key; the database refuses any overlap."""
    if principal.role == "staff":
        raise NotFound(_("There is no site {site_id} you can book for.", site_id=request.site_id))
    claimed = await idempotency.claim(db=db, request=idempotency_request, now=now)
    if isinstance(claimed, idempotency.Replay):
        return Outcome(status=claimed.status, body=claimed.body)
    try:
        return await _book_with_retries(db=db, principal=principal, request=request, now=now,
                                        holidays=holidays, claim=claimed)
    except Exception:
        # A cancelled request keeps its claim; a retry takes it over once abandoned.
        await idempotency.release(db=db, claim=claimed)
        raise


async def _book_with_retries(
    *, db: Database, principal: Principal, request: BookingRequest, now: datetime,
    holidays: HolidayCalendar, claim: idempotency.Claim,
) -> Outcome:
    attempts = 3
    for attempt in range(attempts):
        try:
            async with db.write() as session:
                appointment, zone = await _book_once(
                    session=session, principal=principal, request=request, now=now,
                    holidays=holidays,
                )
                body = json.dumps(representations.appointment(appointment, zone))
                await idempotency.record(session=session, claim=claim, status=201, body=body)
            return Outcome(status=201, body=body)
        except IntegrityError as err:
            constraint = _constraint_of(err)
            if constraint is None:
                raise
            # A concurrent booking took the booth we picked; another booth may be free.
            if constraint == BOOTH_CONSTRAINT and attempt < attempts - 1:
                continue
            raise await _taken(db=db, principal=principal, request=request, now=now,
                               holidays=holidays) from err
        except SlotTaken as err:
            raise await _taken(db=db, principal=principal, request=request, now=now,
                               holidays=holidays, detail=err.detail) from err
    raise AssertionError("unreachable")


async def _resolve_service(session: AsyncSession, request: BookingRequest) -> m.Service:
    if request.service_id is not None:
        service = await session.get(m.Service, request.service_id)
        if service is None:
            raise NotFound(_("There is no service {service_id}.", service_id=request.service_id))
        return service
    if request.operator_id is None or request.theme is None:
        raise InvalidInput(_("Give either service_id, or operator_id and theme."))
    if await session.get(m.Operator, request.operator_id) is None:
        raise NotFound(_("There is no operator {operator_id}.", operator_id=request.operator_id))
    service = await session.scalar(sa.select(m.Service).where(
        m.Service.operator_id == request.operator_id, m.Service.theme == request.theme))
    if service is None:
        raise NotBookable(
            _("Operator {operator_id} offers no video appointments on {theme}.", operator_id=request.operator_id, theme=request.theme)
        )
    return service


def _preference(staff: StaffCalendar) -> tuple[int, str]:
    return (len(staff.busy), staff.staff_id)


async def _choose(
    *, session: AsyncSession, site: m.Site, service: m.Service, start: datetime,
    now: datetime, holidays: HolidayCalendar, language: str, stop_id: str | None,
    staff_id: str | None, exclude_appointment_id: str | None = None,
    prefer_staff_id: str | None = None,
) -> tuple[StaffCalendar, int]:
    """The staff member and booth that can take this start, or the reason why none can."""
    rule = service_rule(service)
    window = Interval(start - timedelta(days=1), start + timedelta(days=1))
    site_calendar = await load_site(session=session, site=site, window=window,
                                    exclude_appointment_id=exclude_appointment_id)
    staff = await load_staff(session=session, operator_ids=[service.operator_id], window=window,
                             staff_id=staff_id, exclude_appointment_id=exclude_appointment_id)
    if not staff:
        if staff_id is not None:
            raise NotBookable(
                _("Staff member {staff_id} does not take appointments for this operator.", staff_id=staff_id)
            )
        raise NotBookable(_("Nobody at this operator takes video appointments at the moment."))
    staff.sort(key=lambda s: (s.staff_id != prefer_staff_id, *_preference(s)))
    refusals: list[Refusal] = []
    for candidate in staff:
        refusal = check_start(start=start, site=site_calendar, service=rule, staff=candidate,
                              now=now, holidays=holidays, language=language, stop_id=stop_id)
        if refusal is None:
            booth = await _free_booth(session, site, start, start + rule.duration,
                                      exclude_appointment_id)
            if booth is not None:
                return candidate, booth
            refusal = Refusal("booth_full", _("Every booth of the site is taken then."), True)
        refusals.append(refusal)
    conflicts = [r for r in refusals if r.conflict]
    if conflicts:
        raise SlotTaken(conflicts[0].message, extra={"reason": conflicts[0].code})
    raise NotBookable(refusals[0].message, extra={"reason": refusals[0].code})


async def _free_booth(
    session: AsyncSession, site: m.Site, start: datetime, end: datetime,
    exclude_appointment_id: str | None,
) -> int | None:
    query = sa.select(m.Appointment.booth).where(
        m.Appointment.site_id == site.id, HOLDS_TIME,
        m.Appointment.start < end, m.Appointment.end > start,
    )
    if exclude_appointment_id is not None:
        query = query.where(m.Appointment.id != exclude_appointment_id)
    taken = set((await session.scalars(query)).all())
    return next((b for b in range(1, site.booths + 1) if b not in taken), None)


async def _stop_for(session: AsyncSession, site: m.Site, start: datetime,
                    stop_id: str | None) -> str | None:
    if site.kind != "itinerant":
        if stop_id is not None:
            raise InvalidInput(_("Site {name} is a fixed site; it has no stops.", name=site.name))
        return None
    if stop_id is not None:
        await _stop(session, site, stop_id)
        return stop_id
    day = start.astimezone(ZoneInfo(site.timezone)).date()
    return await session.scalar(sa.select(m.TourStop.id).where(
        m.TourStop.site_id == site.id, m.TourStop.day == day))


async def _book_once(
    *, session: AsyncSession, principal: Principal, request: BookingRequest, now: datetime,
    holidays: HolidayCalendar,
) -> tuple[m.Appointment, str]:
    site = await _site(session, principal, request.site_id)
    service = await _resolve_service(session, request)
    if request.theme is not None and request.theme != service.theme:
        raise InvalidInput(_("Service {id} is for theme {theme}, not {theme2}.", id=service.id, theme=service.theme, theme2=request.theme))
    stop_id = await _stop_for(session, site, request.start, request.stop_id)
    staff, booth = await _choose(
        session=session, site=site, service=service, start=request.start, now=now,
        holidays=holidays, language=request.usager.language, stop_id=stop_id,
        staff_id=request.staff_id,
    )
    duration = timedelta(minutes=service.duration_minutes)
    end = request.start + duration
    appointment = m.Appointment(
        status="booked", site_id=site.id, stop_id=stop_id, booth=booth,
        operator_id=service.operator_id, desk_id=staff.desk_id, staff_id=staff.staff_id,
        service_id=service.id, theme=service.theme, start=request.start, end=end,
        staff_until=end + timedelta(minutes=service.buffer_minutes),
        usager_first_name=request.usager.first_name, usager_last_name=request.usager.last_name,
        usager_phone=request.usager.phone, usager_email=request.usager.email,
        usager_language=request.usager.language, usager_consent=request.usager.consent,
        booked_by=principal.user_id, version=1, created_at=now, updated_at=now,
    )
    session.add(appointment)
    await session.flush()
    session.add(m.AuditEntry(at=now, actor_id=principal.user_id, action="booked",
                             appointment_id=appointment.id,
                             detail={"start": request.start.isoformat(), "version": 1}))
    await session.flush()
    return appointment, site.timezone


async def _taken(
    *, db: Database, principal: Principal, request: BookingRequest, now: datetime,
    holidays: HolidayCalendar, detail: Message | None = None,
) -> SlotTaken:
    """A 409 that proposes the nearest free slots for the same operator and theme."""
    alternatives: list[dict[str, Any]] = []
    try:
        async with db.read() as session:
            service = await _resolve_service(session, request)
            window = Interval(max(now, request.start - timedelta(days=3)),
                              request.start + timedelta(days=7))
            slots, zone = await _search(
                session=session, principal=principal,
                query=SlotQuery(site_id=request.site_id, theme=service.theme, window=window,
                                operator_id=service.operator_id,
                                language=request.usager.language, stop_id=request.stop_id),
                now=now, holidays=holidays,
            )
            alternatives = [representations.slot(s, zone)
                            for s in nearest(slots, request.start, limit=3)]
    except VisioError:
        alternatives = []
    taken = detail or _("Someone else has just booked this time.")
    if alternatives:
        taken = _("{refusal} Here are the nearest free slots.", refusal=taken)
    return SlotTaken(taken, extra={"alternatives": alternatives})


# ---------------------------------------------------------------- changes


async def _load_for_change(
    session: AsyncSession, principal: Principal, appointment_id: str
) -> tuple[m.Appointment, m.Site]:
    query = _scoped(
        sa.select(m.Appointment, m.Site).join(m.Site, m.Site.id == m.Appointment.site_id)
        .where(m.Appointment.id == appointment_id),
        principal,
    ).with_for_update(of=m.Appointment)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound(_("There is no appointment {appointment_id}.", appointment_id=appointment_id))
    appointment, site = row
    if principal.role == "staff":
        raise Forbidden(_("Operator staff cannot change bookings; ask the France Services agent."))
    if appointment.status != "booked":
        raise Conflict(_("This appointment is {status}; it can no longer be changed.", status=appointment.status))
    return appointment, site


async def cancel(
    *, db: Database, principal: Principal, appointment_id: str, reason: str, now: datetime
) -> tuple[m.Appointment, str]:
    """Cancel a booked appointment, freeing its time."""
    async with db.write() as session:
        appointment, site = await _load_for_change(session, principal, appointment_id)
        appointment.status = "cancelled"
        appointment.cancel_reason = reason
        appointment.version += 1
        appointment.updated_at = now
        session.add(m.AuditEntry(at=now, actor_id=principal.user_id, action="cancelled",
                                 appointment_id=appointment.id,
                                 detail={"version": appointment.version}))
    return appointment, site.timezone


async def reschedule(
    *, db: Database, principal: Principal, appointment_id: str, start: datetime,
    staff_id: str | None, now: datetime, holidays: HolidayCalendar,
) -> tuple[m.Appointment, str]:
    """Move an appointment; the old time is freed only if the new one is obtained."""
    try:
        async with db.write() as session:
            appointment, site = await _load_for_change(session, principal, appointment_id)
            service = await session.get(m.Service, appointment.service_id)
            assert service is not None
            stop_id = await _stop_for(session, site, start, None)
            staff, booth = await _choose(
                session=session, site=site, service=service, start=start, now=now,
                holidays=holidays, language=appointment.usager_language, stop_id=stop_id,
                staff_id=staff_id, exclude_appointment_id=appointment.id,
                prefer_staff_id=appointment.staff_id,
            )
            old_start = appointment.start
            end = start + timedelta(minutes=service.duration_minutes)
            appointment.start = start
            appointment.end = end
            appointment.staff_until = end + timedelta(minutes=service.buffer_minutes)
            appointment.staff_id = staff.staff_id
            appointment.desk_id = staff.desk_id
            appointment.booth = booth
            appointment.stop_id = stop_id
            appointment.version += 1
            appointment.updated_at = now
            await session.flush()
            session.add(m.AuditEntry(
                at=now, actor_id=principal.user_id, action="rescheduled",
                appointment_id=appointment.id,
                detail={"from": old_start.isoformat(), "to": start.isoformat(),
                        "version": appointment.version},
            ))
        return appointment, site.timezone
    except IntegrityError as err:
        if _constraint_of(err) is None:
            raise
        raise SlotTaken(_("Someone else has just booked this time; the appointment keeps its current time.")) from err


# ---------------------------------------------------------------- reading


async def get_appointment(
    *, db: Database, principal: Principal, appointment_id: str
) -> tuple[m.Appointment, str]:
    """One appointment in the caller's scope."""
    async with db.read() as session:
        row = (await session.execute(_scoped(
            sa.select(m.Appointment, m.Site.timezone)
            .join(m.Site, m.Site.id == m.Appointment.site_id)
            .where(m.Appointment.id == appointment_id), principal,
        ))).one_or_none()
    if row is None:
        raise NotFound(_("There is no appointment {appointment_id}.", appointment_id=appointment_id))
    return row[0], row[1]


def encode_cursor(start: datetime, appointment_id: str) -> str:
    """An opaque cursor after (start, id)."""
    raw = json.dumps([start.isoformat(), appointment_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Read a cursor made by encode_cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        start_text, appointment_id = json.loads(raw)
        start = datetime.fromisoformat(start_text)
        if start.tzinfo is None or not isinstance(appointment_id, str):
            raise ValueError(cursor)
    except (ValueError, TypeError) as err:
        raise InvalidInput(_("The cursor is not valid; start again from the first page.")) from err
    return start, appointment_id


async def list_appointments(
    *, db: Database, principal: Principal, filters: AppointmentFilter, cursor: str | None,
    limit: int,
) -> tuple[Sequence[tuple[m.Appointment, str]], str | None]:
    """A page of appointments in the caller's scope, by start then id."""
    query = sa.select(m.Appointment, m.Site.timezone).join(
        m.Site, m.Site.id == m.Appointment.site_id)
    if filters.start_from is not None:
        query = query.where(m.Appointment.start >= filters.start_from)
    if filters.start_to is not None:
        query = query.where(m.Appointment.start < filters.start_to)
    if filters.site_id is not None:
        query = query.where(m.Appointment.site_id == filters.site_id)
    if filters.operator_id is not None:
        query = query.where(m.Appointment.operator_id == filters.operator_id)
    if filters.status is not None:
        query = query.where(m.Appointment.status == filters.status)
    if cursor is not None:
        after_start, after_id = decode_cursor(cursor)
        query = query.where(sa.or_(
            m.Appointment.start > after_start,
            sa.and_(m.Appointment.start == after_start, m.Appointment.id > after_id),
        ))
    query = _scoped(query, principal).order_by(m.Appointment.start, m.Appointment.id)
    async with db.read() as session:
        rows = [(a, z) for a, z in (await session.execute(query.limit(limit + 1))).all()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1][0]
        next_cursor = encode_cursor(last.start, last.id)
    return rows, next_cursor
