"""Slot search, booking, cancelling, rescheduling, listing; staff availability."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import phonenumbers
from aiohttp import web

from signaling import close_room
from visio import representations
from visio.api import parsing
from visio.api.context import caller, listing, ok
from visio.domain.intervals import Interval
from visio.domain.messages import _
from visio.errors import InvalidInput
from visio.keys import (
    call_policy_key,
    clock_key,
    database_key,
    holidays_key,
    signaling_app_key,
)
from visio.services import availability, booking, calls, idempotency

LANGUAGES = ("fr", "nl")
STATUSES = ("booked", "cancelled", "done", "no_show")


def _window(request: web.Request, *, required: bool) -> tuple[Any, Any]:
    start_text = parsing.query_value(request, "from", required=required)
    end_text = parsing.query_value(request, "to", required=required)
    start = parsing.instant(start_text, "from") if start_text else None
    end = parsing.instant(end_text, "to") if end_text else None
    if start and end and end <= start:
        raise InvalidInput(_("'to' must be after 'from'."))
    return start, end


async def search_slots(request: web.Request) -> web.Response:
    """Free slots for a site and theme between from and to."""
    principal = await caller(request)
    start, end = _window(request, required=True)
    language = parsing.query_value(request, "language")
    if language is not None and language not in LANGUAGES:
        raise InvalidInput(_("language must be fr or nl."))
    query = booking.SlotQuery(
        site_id=parsing.query_value(request, "site_id", required=True) or "",
        theme=parsing.query_value(request, "theme", required=True) or "",
        window=Interval(start, end),
        operator_id=parsing.query_value(request, "operator_id"),
        language=language,
        stop_id=parsing.query_value(request, "stop_id"),
        staff_id=parsing.query_value(request, "staff_id"),
    )
    slots, zone = await booking.find_slots(
        db=request.app[database_key], principal=principal, query=query,
        now=request.app[clock_key](),
        holidays=request.app[holidays_key])
    return listing([representations.slot(s, zone) for s in slots])


def _usager(value: object) -> booking.Usager:
    if not isinstance(value, dict):
        raise InvalidInput(_("usager must be an object."))
    parsing.only(value, ("first_name", "last_name", "phone", "email", "language", "consent"),
                 where="usager")
    language = parsing.required_text(value, "language", max_length=5)
    if language not in LANGUAGES:
        raise InvalidInput(_("usager.language must be fr or nl."))
    phone = parsing.text(value, "phone", max_length=32, required=False)
    if phone is not None:
        try:
            number = phonenumbers.parse(phone, "FR")
        except phonenumbers.NumberParseException as err:
            raise InvalidInput(_("usager.phone is not a phone number.")) from err
        if not phonenumbers.is_valid_number(number):
            raise InvalidInput(_("usager.phone is not a valid French or Belgian phone number."))
        phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    email = parsing.text(value, "email", max_length=254, required=False)
    if email is not None and ("@" not in email or " " in email):
        raise InvalidInput(_("usager.email is not an e-mail address."))
    return booking.Usager(
        first_name=parsing.required_text(value, "first_name", max_length=100),
        last_name=parsing.required_text(value, "last_name", max_length=100),
        phone=phone, email=email, language=language,
        consent=parsing.boolean(value, "consent", default=False),
    )


BOOKING_FIELDS = ("site_id", "stop_id", "service_id", "operator_id", "theme", "start",
                  "staff_id", "usager")


async def book(request: web.Request) -> web.Response:
    """Book an appointment (Idempotency-Key required)."""
    principal = await caller(request)
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    body = await parsing.json_object(request, allowed=BOOKING_FIELDS)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    data = booking.BookingRequest(
        site_id=parsing.required_text(body, "site_id", max_length=64),
        start=parsing.instant(body.get("start"), "start"),
        usager=_usager(body.get("usager")),
        service_id=parsing.text(body, "service_id", max_length=64, required=False),
        operator_id=parsing.text(body, "operator_id", max_length=64, required=False),
        theme=parsing.text(body, "theme", max_length=32, required=False),
        stop_id=parsing.text(body, "stop_id", max_length=64, required=False),
        staff_id=parsing.text(body, "staff_id", max_length=64, required=False),
    )
    outcome = await booking.book(
        db=request.app[database_key], principal=principal, request=data,
        now=request.app[clock_key](),
        holidays=request.app[holidays_key],
        idempotency_request=idempotency.IdempotencyRequest(
            user_id=principal.user_id, key=key, request_hash=digest),
    )
    return web.Response(status=outcome.status, text=outcome.body,
                        content_type="application/json")


async def list_appointments(request: web.Request) -> web.Response:
    """Appointments in the caller's scope, paginated."""
    principal = await caller(request)
    start, end = _window(request, required=False)
    status = parsing.query_value(request, "status")
    if status is not None and status not in STATUSES:
        raise InvalidInput(_("status must be one of {value}.", value=', '.join(STATUSES)))
    limit_text = parsing.query_value(request, "limit")
    try:
        limit = int(limit_text) if limit_text else 50
    except ValueError as err:
        raise InvalidInput(_("limit must be a whole number.")) from err
    if not 1 <= limit <= 200:
        raise InvalidInput(_("limit must be between 1 and 200."))
    rows, next_cursor = await booking.list_appointments(
        db=request.app[database_key], principal=principal,
        filters=booking.AppointmentFilter(
            start_from=start, start_to=end, site_id=parsing.query_value(request, "site_id"),
            operator_id=parsing.query_value(request, "operator_id"), status=status),
        cursor=parsing.query_value(request, "cursor"), limit=limit,
    )
    return listing([representations.appointment(a, z) for a, z in rows], next_cursor)


async def get_appointment(request: web.Request) -> web.Response:
    """One appointment."""
    principal = await caller(request)
    appointment, zone = await booking.get_appointment(
        db=request.app[database_key], principal=principal,
        appointment_id=parsing.path_id(request))
    return ok(representations.appointment(appointment, zone))


async def cancel(request: web.Request) -> web.Response:
    """Cancel an appointment, with a reason."""
    principal = await caller(request)
    body = await parsing.json_object(request, allowed=("reason",))
    appointment, zone = await booking.cancel(
        db=request.app[database_key], principal=principal,
        appointment_id=parsing.path_id(request),
        reason=parsing.required_text(body, "reason", max_length=500), now=request.app[clock_key]())
    # After the commit: a live call of a cancelled appointment is closed on every instance.
    await close_room(request.app[signaling_app_key], appointment.id, "cancelled")
    return ok(representations.appointment(appointment, zone))


async def reschedule(request: web.Request) -> web.Response:
    """Move an appointment to a new start, atomically."""
    principal = await caller(request)
    body = await parsing.json_object(request, allowed=("start", "staff_id"))
    appointment, zone = await booking.reschedule(
        db=request.app[database_key], principal=principal,
        appointment_id=parsing.path_id(request),
        start=parsing.instant(body.get("start"), "start"),
        staff_id=parsing.text(body, "staff_id", max_length=64, required=False),
        now=request.app[clock_key](),
        holidays=request.app[holidays_key])
    return ok(representations.appointment(appointment, zone))


# ---------------------------------------------------------------- availability


def _rule(value: object, name: str) -> availability.RuleInput:
    if not isinstance(value, dict):
        raise InvalidInput(_("{name} must be an object.", name=name))
    parsing.only(value, ("weekday", "opens", "closes", "valid_from", "valid_until"), where=name)
    opens, closes = parsing.time_range({"opens": value.get("opens"),
                                        "closes": value.get("closes")}, name)
    return availability.RuleInput(
        weekday=parsing.integer(value, "weekday", low=0, high=6), opens=opens, closes=closes,
        valid_from=parsing.day(value["valid_from"], f"{name}.valid_from")
        if value.get("valid_from") is not None else None,
        valid_until=parsing.day(value["valid_until"], f"{name}.valid_until")
        if value.get("valid_until") is not None else None,
    )


def _override(value: object, name: str) -> availability.OverrideInput:
    if not isinstance(value, dict):
        raise InvalidInput(_("{name} must be an object.", name=name))
    parsing.only(value, ("date", "ranges"), where=name)
    return availability.OverrideInput(
        day=parsing.day(value.get("date"), f"{name}.date"),
        ranges=parsing.items(value, "ranges", parsing.time_range, max_items=6))


def _absence(value: object, name: str) -> availability.AbsenceInput:
    if not isinstance(value, dict):
        raise InvalidInput(_("{name} must be an object.", name=name))
    parsing.only(value, ("start", "end", "reason"), where=name)
    start = parsing.instant(value.get("start"), f"{name}.start")
    end = parsing.instant(value.get("end"), f"{name}.end")
    if end <= start:
        raise InvalidInput(_("{name}: end must be after start.", name=name))
    if end - start > timedelta(days=366):
        raise InvalidInput(_("{name} is longer than a year.", name=name))
    return availability.AbsenceInput(
        start=start, end=end, reason=parsing.text(value, "reason", required=False) or "")


async def get_availability(request: web.Request) -> web.Response:
    """A staff member's availability."""
    principal = await caller(request)
    return ok(await availability.get_availability(
        db=request.app[database_key], principal=principal, staff_id=parsing.path_id(request)))


async def put_availability(request: web.Request) -> web.Response:
    """Replace a staff member's availability."""
    principal = await caller(request)
    body = await parsing.json_object(request, allowed=("rules", "overrides", "absences"))
    data = availability.AvailabilityInput(
        rules=parsing.items(body, "rules", _rule, max_items=100),
        overrides=parsing.items(body, "overrides", _override, max_items=400, required=False),
        absences=parsing.items(body, "absences", _absence, max_items=400, required=False),
    )
    return ok(await availability.replace_availability(
        db=request.app[database_key], principal=principal, staff_id=parsing.path_id(request),
        data=data))


# ---------------------------------------------------------------- calls


async def join(request: web.Request) -> web.Response:
    """A join token for the appointment's call (its agents, its staff member, their desk)."""
    principal = await caller(request)
    grant = await calls.grant_join(
        db=request.app[database_key], principal=principal,
        appointment_id=parsing.path_id(request), now=request.app[clock_key](),
        policy=request.app[call_policy_key])
    return ok({"signaling_url": grant.signaling_url, "token": grant.token,
               "not_before": grant.not_before.isoformat(),
               "expires_at": grant.expires_at.isoformat(), "role": grant.role,
               "peer_id": grant.peer_id, "ice_servers": grant.ice_servers})


async def test_call(request: web.Request) -> web.Response:
    """A token for the echo peer, to check devices and network before the appointment."""
    principal = await caller(request)
    grant = calls.grant_test_call(principal=principal, now=request.app[clock_key](),
                                  policy=request.app[call_policy_key])
    return ok({"echo_url": grant.signaling_url, "token": grant.token,
               "expires_at": grant.expires_at.isoformat(), "ice_servers": grant.ice_servers})


async def call_log(request: web.Request) -> web.Response:
    """Joins, leaves, connection states and stats of the appointment's call."""
    principal = await caller(request)
    return ok(await calls.call_log(db=request.app[database_key], principal=principal,
                                   appointment_id=parsing.path_id(request)))
