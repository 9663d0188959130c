"""Slot search, booking, cancelling, rescheduling, listing; staff availability."""

from __future__ import annotations

import re

from aiohttp import web

from visio.api import codec, views
from visio.api.context import caller
from visio.contract import bodies as api
from visio.keys import (
    clock_key,
    database_key,
    holidays_key,
    limits_key,
    rooms_key,
    search_cache_key,
    settings_key,
)
from visio.services import (
    appointments,
    availability,
    booking,
    changes,
    corrections,
    idempotency,
    outcomes,
    slot_search,
)

IDEMPOTENCY_KEY_PATTERN = r"[\x21-\x7e]{1,255}"
_IF_MATCH = re.compile(r'^\s*(?:W/)?"v([0-9]{1,9})"\s*$')


def etag(version: int) -> str:
    """The entity tag of an appointment version."""
    return f'"v{version}"'


def expected_version(request: web.Request) -> int | None:
    """The version ``If-Match`` names (``*`` or absent: any)."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    match = _IF_MATCH.match(header)
    # An entity tag we never sent matches no version: 412, as RFC 9110 says.
    return int(match.group(1)) if match else 0


def _appointment(booked: booking.Booked, *, status: int = 200) -> web.Response:
    return codec.respond(views.appointment(booked), status=status,
                         headers={"ETag": etag(booked.appointment.version)})


async def search_slots(request: web.Request) -> web.Response:
    """Free slots for a site and theme between from and to."""
    principal = await caller(request)
    query = codec.query(request, api.SlotQuery)
    window = slot_search.check_window(query.from_, query.to)
    async with request.app[limits_key].expensive(principal.user_id):
        found = await slot_search.find_slots(
            db=request.app[database_key], principal=principal,
            query=slot_search.SlotQuery(
                site_id=query.site_id, theme=query.theme, window=window,
                operator_id=query.operator_id,
                language=query.language.value if query.language else None,
                stop_id=query.stop_id, staff_id=query.staff_id),
            now=request.app[clock_key](), holidays=request.app[holidays_key],
            cache=request.app[search_cache_key])
    return codec.respond(api.Page(items=[views.slot(s, found.zone) for s in found.slots]))


def stored_answer(booked: booking.Booked) -> bytes:
    """The answer a retry with the same Idempotency-Key replays."""
    return codec.encode(views.appointment(booked))


async def book(request: web.Request) -> web.Response:
    """Book an appointment once per Idempotency-Key; a retry replays the stored answer."""
    principal = await caller(request)
    key = idempotency.check_key(codec.header(request, "Idempotency-Key",
                                             pattern=IDEMPOTENCY_KEY_PATTERN))
    data = await codec.body(request, api.Booking)
    booked = await booking.book(
        db=request.app[database_key], principal=principal, request=data,
        now=request.app[clock_key](), holidays=request.app[holidays_key],
        once=booking.OncePerKey(key=key, answer=stored_answer))
    if isinstance(booked, idempotency.Replay):
        return web.Response(status=booked.status, text=booked.body, content_type=codec.JSON)
    return _appointment(booked, status=201)


async def list_appointments(request: web.Request) -> web.Response:
    """Appointments in the caller's scope, paginated."""
    principal = await caller(request)
    query = codec.query(request, api.AppointmentQuery)
    page = await appointments.list_appointments(
        db=request.app[database_key], principal=principal,
        filters=appointments.AppointmentFilter(
            start_from=query.from_, start_to=query.to, site_id=query.site_id,
            operator_id=query.operator_id,
            status=query.status.value if query.status else None, q=query.q),
        cursor=query.cursor, limit=query.limit,
    )
    return codec.respond(api.Page(items=[views.appointment(b) for b in page.items],
                                  next_cursor=page.next_cursor))


async def get_appointment(request: web.Request) -> web.Response:
    """One appointment, with its version as ETag."""
    principal = await caller(request)
    return _appointment(await appointments.get_appointment(
        db=request.app[database_key], principal=principal,
        appointment_id=codec.path_id(request)))


async def cancel(request: web.Request) -> web.Response:
    """Cancel an appointment, with a reason (``If-Match`` refuses a stale change)."""
    principal = await caller(request)
    version = expected_version(request)
    body = await codec.body(request, api.Cancellation)
    booked = await changes.cancel(
        db=request.app[database_key], principal=principal,
        appointment_id=codec.path_id(request), reason=body.reason, expected_version=version,
        now=request.app[clock_key](), rooms=request.app[rooms_key])
    return _appointment(booked)


async def reschedule(request: web.Request) -> web.Response:
    """Move an appointment to a new start, atomically."""
    principal = await caller(request)
    version = expected_version(request)
    body = await codec.body(request, api.Rescheduling)
    booked, _changed = await changes.reschedule(
        db=request.app[database_key], principal=principal,
        appointment_id=codec.path_id(request), start=body.start, staff_id=body.staff_id,
        expected_version=version, now=request.app[clock_key](),
        holidays=request.app[holidays_key], rooms=request.app[rooms_key])
    return _appointment(booked)


async def correct_usager(request: web.Request) -> web.Response:
    """Correct the usager's details or the note (``If-Match`` refuses a stale change)."""
    principal = await caller(request)
    version = expected_version(request)
    body = await codec.body(request, api.UsagerCorrection)
    return _appointment(await corrections.correct_usager(
        db=request.app[database_key], principal=principal,
        appointment_id=codec.path_id(request), data=body, expected_version=version,
        now=request.app[clock_key]()))


async def correct_outcome(request: web.Request) -> web.Response:
    """Set or correct the outcome, with a reason (``If-Match`` refuses a stale change)."""
    principal = await caller(request)
    version = expected_version(request)
    body = await codec.body(request, api.OutcomeCorrection)
    db = request.app[database_key]
    corrected = await outcomes.correct(
        db=db, principal=principal, appointment_id=codec.path_id(request),
        outcome=body.outcome, reason=body.reason, expected_version=version,
        now=request.app[clock_key]())
    return _appointment(await appointments.get_appointment(
        db=db, principal=principal, appointment_id=corrected.appointment_id))


async def resend(request: web.Request) -> web.Response:
    """Send the usager's last message again, now (a few times a day at most)."""
    principal = await caller(request)
    row = await corrections.resend(
        db=request.app[database_key], principal=principal,
        appointment_id=codec.path_id(request), now=request.app[clock_key](),
        daily_cap=request.app[settings_key].notify_daily_cap)
    return codec.respond(views.notification(row), status=202)


# ---------------------------------------------------------------- availability


async def get_availability(request: web.Request) -> web.Response:
    """A staff member's availability."""
    principal = await caller(request)
    return codec.respond(views.availability(await availability.get_availability(
        db=request.app[database_key], principal=principal, staff_id=codec.path_id(request))))


async def put_availability(request: web.Request) -> web.Response:
    """Replace a staff member's availability."""
    principal = await caller(request)
    data = await codec.body(request, api.AvailabilityUpdate)
    return codec.respond(views.availability(await availability.replace_availability(
        db=request.app[database_key], principal=principal, staff_id=codec.path_id(request),
        data=data, now=request.app[clock_key]())))
