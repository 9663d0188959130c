"""Booking: choose a staff member and a booth for a start, and store the appointment.

The database, not this code, refuses overlaps (exclusion constraints on PostgreSQL, a
write lock on SQLite); a lost race becomes a 409 that proposes the nearest free slots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import overload
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.contract import bodies as api
from visio.db import Database
from visio.domain import contact
from visio.domain.calendars import HolidayCalendar
from visio.domain.intervals import Interval
from visio.domain.kinds import SiteKind, Status
from visio.domain.messages import _
from visio.domain.refusals import Refusal, check_start
from visio.domain.search import nearest
from visio.domain.slot_types import Slot, StaffCalendar
from visio.errors import (
    NotBookable,
    NotFound,
    SlotTaken,
    Unprocessable,
    VisioError,
)
from visio.services import audit, idempotency, outbox, webhooks
from visio.services.calendars import (
    HOLDS_TIME,
    LONGEST_BOOTH_HOLD,
    load_site,
    load_staff,
    service_rule,
)
from visio.services.idempotency import Replay
from visio.services.slot_search import SlotQuery, search, site_in_scope, stop_of
from visio.services.territories import covering_desks, place_of

STAFF_CONSTRAINT = "ex_appointments_staff_overlap"
BOOTH_CONSTRAINT = "ex_appointments_booth_overlap"


@dataclass(frozen=True, slots=True)
class Booked:
    """An appointment and the zone of its site (answers show the site's wall clock)."""

    appointment: m.Appointment
    zone: str


@dataclass(frozen=True, slots=True)
class OncePerKey:
    """Book at most once per (caller, Idempotency-Key): a retry gets the stored answer."""

    key: str
    #: The answer stored with the booking, replayed to a retry (the API's JSON body).
    answer: Callable[[Booked], bytes]


def constraint_of(err: IntegrityError) -> str | None:
    """Which overlap constraint refused a write, if any."""
    text = str(err.orig)
    for name in (STAFF_CONSTRAINT, BOOTH_CONSTRAINT):
        if name in text:
            return name
    return None


def refusal(err: contact.Refused) -> VisioError:
    """The domain refusal of a contact detail: 422 naming the field.

    The document's patterns let through what only a mail system's (or a name's) rules
    refuse, so the refusal is a business one (422), never a 400 for schema-valid input.
    """
    extra = {"field": err.field, "reason": err.reason}
    if err.reason == "invalid_phone":
        return NotBookable(err.message, extra=extra)
    return Unprocessable(err.message, extra=extra)


def normalised_phone(phone: str | None, *, country: str = "FR") -> str | None:
    """A French or Belgian number in E.164 (a national one read as ``country``'s)."""
    if phone is None:
        return None
    try:
        return contact.e164(phone, country=country)
    except contact.Refused as err:
        raise refusal(err) from err


@dataclass(frozen=True, slots=True)
class Contact:
    """The usager's names, number and address as they are stored."""

    first_name: str
    last_name: str
    phone: str | None
    email: str | None


def usager_contact(usager: api.UsagerIn, *, site_country: str) -> Contact:
    """The usager's contact data checked and normalised, or a refusal naming the field."""
    try:
        return Contact(
            first_name=contact.person_name(usager.first_name, field="usager.first_name"),
            last_name=contact.person_name(usager.last_name, field="usager.last_name"),
            phone=None if usager.phone is None else contact.e164(
                usager.phone, country=usager.phone_country or site_country),
            email=None if usager.email is None else contact.mailbox(usager.email))
    except contact.Refused as err:
        raise refusal(err) from err


@overload
async def book(*, db: Database, principal: Principal, request: api.Booking, now: datetime,
               holidays: HolidayCalendar, once: None = None) -> Booked: ...


@overload
async def book(*, db: Database, principal: Principal, request: api.Booking, now: datetime,
               holidays: HolidayCalendar, once: OncePerKey) -> Booked | Replay: ...


async def book(
    *, db: Database, principal: Principal, request: api.Booking, now: datetime,
    holidays: HolidayCalendar, once: OncePerKey | None = None,
) -> Booked | Replay:
    """Book an appointment, with its audit entry and its messages (the outbox).

    With ``once``, the key is claimed first: a retry with the same key and request gets
    the stored answer (a ``Replay``), and the answer commits with the booking.
    """
    if once is None:
        return await _book(db=db, principal=principal, request=request, now=now,
                           holidays=holidays, claimed=None)
    claimed = await idempotency.claim(db=db, now=now, request=idempotency.IdempotencyRequest(
        user_id=principal.user_id, key=idempotency.check_key(once.key),
        request_hash=hashlib.sha256(msgspec.json.encode(request)).hexdigest()))
    if isinstance(claimed, Replay):
        return claimed
    try:
        return await _book(db=db, principal=principal, request=request, now=now,
                           holidays=holidays, claimed=(claimed, once))
    except Exception:
        # A cancelled request keeps its claim; a retry takes it over once abandoned.
        await idempotency.release(db=db, claim=claimed)
        raise


async def _book(
    *, db: Database, principal: Principal, request: api.Booking, now: datetime,
    holidays: HolidayCalendar, claimed: tuple[idempotency.Claim, OncePerKey] | None,
) -> Booked:
    if not principal.may_book_at(request.site_id):
        raise NotFound(_("There is no site {site_id} you can book for.",
                         site_id=request.site_id))
    attempts = 3
    for attempt in range(attempts):
        try:
            async with db.write() as session:
                booked = await _book_once(session=session, principal=principal,
                                          request=request, now=now,
                                          holidays=holidays)
                if claimed is not None:
                    # In the booking's own transaction: the answer commits with it.
                    claim, once = claimed
                    await idempotency.record(session=session, claim=claim, status=201,
                                             body=once.answer(booked).decode())
            return booked
        except IntegrityError as err:
            constraint = constraint_of(err)
            if constraint is None:
                raise
            # A concurrent booking took the booth we picked; another booth may be free.
            if constraint == BOOTH_CONSTRAINT and attempt < attempts - 1:
                continue
            raise await _taken(db=db, principal=principal, request=request, now=now,
                               holidays=holidays) from err
        except SlotTaken as err:
            raise await _taken(db=db, principal=principal, request=request, now=now,
                               holidays=holidays, refusal=err) from err
    raise AssertionError("unreachable")


async def _resolve_service(session: AsyncSession, request: api.Booking) -> m.Service:
    if request.service_id is not None:
        service = await session.get(m.Service, request.service_id)
        if service is None:
            raise NotFound(_("There is no service {service_id}.",
                             service_id=request.service_id))
        if request.theme is not None and request.theme != service.theme:
            raise NotBookable(_("Service {service_id} is for theme {theme}, not {asked}.",
                                service_id=service.id, theme=service.theme,
                                asked=request.theme), extra={"reason": "wrong_theme"})
        return service
    if request.operator_id is None or request.theme is None:
        raise Unprocessable(_("Give either service_id, or operator_id and theme."),
                           extra={"field": "service_id"})
    if await session.get(m.Operator, request.operator_id) is None:
        raise NotFound(_("There is no operator {operator_id}.",
                         operator_id=request.operator_id))
    service = await session.scalar(sa.select(m.Service).where(
        m.Service.operator_id == request.operator_id, m.Service.theme == request.theme))
    if service is None:
        raise NotBookable(_("This operator offers no video appointments on {theme}.",
                            theme=request.theme), extra={"reason": "no_service"})
    return service


def _preference(staff: StaffCalendar) -> tuple[int, str]:
    return (len(staff.busy), staff.staff_id)


async def choose(
    *, session: AsyncSession, site: m.Site, service: m.Service, start: datetime,
    now: datetime, holidays: HolidayCalendar, language: str, stop_id: str | None,
    staff_id: str | None, exclude_appointment_id: str | None = None,
    prefer_staff_id: str | None = None,
) -> tuple[StaffCalendar, int]:
    """The staff member and booth that can take this start, or the reason why none can."""
    rule = service_rule(service)
    window = Interval(start - timedelta(days=1), start + timedelta(days=1))
    serving = await _serving(session, site, service, stop_id, staff_id)
    site_calendar = await load_site(session=session, site=site, window=window,
                                    exclude_appointment_id=exclude_appointment_id)
    staff = await load_staff(session=session, operator_ids=[service.operator_id], window=window,
                             staff_id=staff_id, exclude_appointment_id=exclude_appointment_id,
                             desk_ids=serving)
    if not staff:
        if staff_id is not None:
            raise NotBookable(_("This staff member does not take appointments for this "
                                "operator."), extra={"reason": "unknown_staff"})
        raise NotBookable(_("Nobody at this operator takes video appointments at the "
                            "moment."), extra={"reason": "no_staff"})
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


async def _serving(session: AsyncSession, site: m.Site, service: m.Service,
                   stop_id: str | None, staff_id: str | None) -> frozenset[str]:
    """The operator's desks serving the site (or that day's stop); a 422 if none does."""
    place = await place_of(session, site, stop_id)
    serving = (await covering_desks(session, [service.operator_id], [place]))[place]
    if not serving:
        raise NotBookable(_("This operator does not serve the territory of this site."),
                          extra={"reason": "out_of_territory"})
    if staff_id is not None:
        desk_id = await session.scalar(sa.select(m.StaffMember.desk_id).where(
            m.StaffMember.id == staff_id))
        if desk_id is not None and desk_id not in serving:
            raise NotBookable(_("This staff member's desk does not serve the territory of "
                                "this site."), extra={"reason": "out_of_territory"})
    return serving


async def _free_booth(
    session: AsyncSession, site: m.Site, start: datetime, end: datetime,
    exclude_appointment_id: str | None,
) -> int | None:
    query = sa.select(m.Appointment.booth).where(
        m.Appointment.site_id == site.id, HOLDS_TIME,
        m.Appointment.start < end, m.Appointment.end > start,
        m.Appointment.start > start - LONGEST_BOOTH_HOLD,
    )
    if exclude_appointment_id is not None:
        query = query.where(m.Appointment.id != exclude_appointment_id)
    taken = set((await session.scalars(query)).all())
    return next((b for b in range(1, site.booths + 1) if b not in taken), None)


async def stop_for(session: AsyncSession, site: m.Site, start: datetime,
                   stop_id: str | None) -> str | None:
    """The stop an itinerant site's appointment uses (that day's, unless one is given)."""
    if site.kind != SiteKind.ITINERANT:
        if stop_id is not None:
            raise NotBookable(_("Site {site} is a fixed site; it has no stops.",
                                site=site.name), extra={"reason": "no_stops"})
        return None
    if stop_id is not None:
        await stop_of(session, site, stop_id)
        return stop_id
    day = start.astimezone(ZoneInfo(site.timezone)).date()
    return await session.scalar(sa.select(m.TourStop.id).where(
        m.TourStop.site_id == site.id, m.TourStop.day == day))


async def _book_once(
    *, session: AsyncSession, principal: Principal, request: api.Booking, now: datetime,
    holidays: HolidayCalendar,
) -> Booked:
    site = await site_in_scope(session, principal, request.site_id)
    who = usager_contact(request.usager, site_country=site.country)
    service = await _resolve_service(session, request)
    stop_id = await stop_for(session, site, request.start, request.stop_id)
    usager = request.usager
    staff, booth = await choose(
        session=session, site=site, service=service, start=request.start, now=now,
        holidays=holidays, language=usager.language.value, stop_id=stop_id,
        staff_id=request.staff_id,
    )
    end = request.start + timedelta(minutes=service.duration_minutes)
    appointment = m.Appointment(
        status=Status.BOOKED.value, site_id=site.id, stop_id=stop_id, booth=booth,
        operator_id=service.operator_id, desk_id=staff.desk_id, staff_id=staff.staff_id,
        service_id=service.id, theme=service.theme, start=request.start, end=end,
        staff_until=end + timedelta(minutes=service.buffer_minutes),
        usager_first_name=who.first_name, usager_last_name=who.last_name,
        usager_phone=who.phone, usager_email=who.email, usager_language=usager.language.value,
        usager_consent=usager.consent, booked_by=principal.user_id, version=1,
        created_at=now, updated_at=now,
        note=request.note.strip() if request.note is not None else None,
        first_offered_start=_first_offered(request),
    )
    session.add(appointment)
    await session.flush()
    audit.record(session, at=now, actor=audit.actor_of(principal), action="booked",
                 appointment_id=appointment.id, site_id=site.id,
                 detail={"start": request.start.isoformat(), "version": 1})
    await session.flush()
    await outbox.booked(session, appointment, zone=site.timezone, now=now)
    await webhooks.emit(session, appointment=appointment, event_type=webhooks.BOOKED,
                        now=now, zone=site.timezone)
    return Booked(appointment, site.timezone)


def _first_offered(request: api.Booking) -> datetime | None:
    """What the search offered first, kept when it is no later than the chosen start."""
    offered = request.first_offered
    return offered if offered is not None and offered <= request.start else None


def in_zone(slot: Slot, zone: str) -> Slot:
    """The slot with its instants in the site's zone (answers show its wall clock)."""
    tz = ZoneInfo(zone)
    return slot._replace(start=slot.start.astimezone(tz), end=slot.end.astimezone(tz))


async def _taken(
    *, db: Database, principal: Principal, request: api.Booking, now: datetime,
    holidays: HolidayCalendar, refusal: SlotTaken | None = None,
) -> SlotTaken:
    """A 409 that proposes the nearest free slots for the same operator and theme."""
    alternatives: list[Slot] = []
    try:
        async with db.read() as session:
            service = await _resolve_service(session, request)
            window = Interval(max(now, request.start - timedelta(days=3)),
                              request.start + timedelta(days=7))
            found = await search(
                session=session, principal=principal,
                query=SlotQuery(site_id=request.site_id, theme=service.theme, window=window,
                                operator_id=service.operator_id,
                                language=request.usager.language.value,
                                stop_id=request.stop_id),
                now=now, holidays=holidays,
            )
            alternatives = [in_zone(s, found.zone)
                            for s in nearest(found.slots, request.start, limit=3)]
    except VisioError:
        alternatives = []
    detail = refusal.detail if refusal else _("Someone else has just booked this time.")
    if alternatives:
        detail = _("{refusal} Here are the nearest free slots.", refusal=detail)
    reason = refusal.extra.get("reason", "slot_taken") if refusal else "slot_taken"
    return SlotTaken(detail, extra={"reason": reason, "alternatives": alternatives})
