"""The agent's booking: theme, day, slots, the usager; the confirmation and convocation."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from visio.access import Principal
from visio.api import codec, views
from visio.contract import bodies as api
from visio.domain.contact import takes_sms
from visio.domain.kinds import Role
from visio.domain.slot_types import Slot
from visio.errors import SlotTaken, VisioError
from visio.keys import (
    clock_key,
    database_key,
    holidays_key,
    limits_key,
    search_cache_key,
)
from visio.services import (
    agenda,
    booking,
    directory,
    idempotency,
    slot_search,
)
from visio.web import session
from visio.web.common import (
    PARIS,
    local_today,
    parse_day,
    signed_in,
    text,
    theme_label,
)
from visio.web.render import render


@dataclass(frozen=True, slots=True)
class SlotChoice:
    """A slot as the booking form offers it (its radio value names it whole)."""

    value: str
    start: datetime
    operator: str
    languages: str
    place: str


def _slot_value(s: Slot) -> str:
    return "|".join((s.service_id, s.staff_id, s.start.isoformat(), s.stop_id or ""))


async def _booking_context(request: web.Request, who: Principal,
                           params: dict[str, str]) -> dict[str, Any]:
    """Sites, themes, operators and the day's slots for the booking page."""
    db = request.app[database_key]
    sites = await directory.list_sites(db=db, principal=who, today=local_today(request))
    site = next((s for s in sites if s.site.id == params.get("site_id")),
                sites[0] if sites else None)
    themes = await directory.list_themes(db=db)
    theme = params.get("theme", "")
    country = params.get("country", "")
    zone = site.site.timezone if site else PARIS
    day = parse_day(params.get("day"), local_today(request, zone) + timedelta(days=1))
    context: dict[str, Any] = {
        "sites": sites, "site": site, "themes": themes, "theme": theme, "country": country,
        "day": day, "operators": [], "slots": [], "searched": False, "stop": None,
        "refusal": None, "alternatives": [], "form": params,
        "idem": params.get("idem") or str(uuid.uuid4()), "today": local_today(request, zone)}
    if site is None or not theme or theme not in {t.code for t in themes}:
        return context
    try:
        query = msgspec.convert({"theme": theme, "country": country or None}, api.OperatorQuery)
    except msgspec.ValidationError:
        query = api.OperatorQuery(theme=theme)
        context["country"] = ""
    operators = await directory.list_operators(db=db, query=query)
    by_id = {o.operator.id: o.operator for o in operators}
    context["operators"] = operators
    context["stop"] = next((s for s in site.stops if s.day == day), None)
    tz = ZoneInfo(zone)
    window = slot_search.check_window(datetime.combine(day, time(0), tz),
                                      datetime.combine(day + timedelta(days=1), time(0), tz))
    try:
        async with request.app[limits_key].expensive(who.user_id):
            found = await slot_search.find_slots(
                db=db, principal=who, query=slot_search.SlotQuery(
                    site_id=site.site.id, theme=theme, window=window,
                    operator_id=params.get("operator_id") or None),
                now=request.app[clock_key](), holidays=request.app[holidays_key],
                cache=request.app[search_cache_key])
    except VisioError as err:
        context["refusal"] = text(request, err.detail)
        return context
    context["searched"] = True
    context["slots"] = [_choice(s, by_id, context["stop"], zone) for s in found.slots
                        if s.operator_id in by_id]
    return context


def _choice(s: Slot, operators: dict[str, Any], stop: Any, zone: str) -> SlotChoice:
    operator = operators[s.operator_id]
    place = f"{stop.commune} – {stop.place}" if stop is not None and s.stop_id else ""
    return SlotChoice(value=_slot_value(s), start=s.start.astimezone(ZoneInfo(zone)),
                      operator=operator.name, languages=", ".join(operator.languages),
                      place=place)


async def booking_page(request: web.Request) -> web.Response:
    """Theme, country, day and operator; the day's slots; the usager's details."""
    who = await signed_in(request)
    if who.role is Role.STAFF:
        raise web.HTTPSeeOther("/staff/agenda")
    params = {k: v for k, v in request.query.items() if isinstance(v, str)}
    return render(request, "book.html", who=who,
                  **await _booking_context(request, who, params))


def _booking_of(form: dict[str, str]) -> api.Booking:
    """The API's booking body from the form: the same declared checks apply."""
    service_id, staff_id, start, stop_id = (form.get("slot", "") + "|||").split("|")[:4]
    usager: dict[str, Any] = {
        "first_name": form.get("first_name", ""), "last_name": form.get("last_name", ""),
        "phone": form.get("phone") or None, "email": form.get("email") or None,
        "language": form.get("language") or "fr", "consent": form.get("consent") == "yes"}
    raw: dict[str, Any] = {"site_id": form.get("site_id", ""), "service_id": service_id,
                           "staff_id": staff_id or None, "start": start,
                           "stop_id": stop_id or None, "usager": usager}
    try:
        value = msgspec.json.decode(msgspec.json.encode(raw), type=api.Booking)
    except msgspec.ValidationError as err:
        raise codec._invalid(err) from err
    codec.check_values(value)
    return value


async def book(request: web.Request) -> web.Response:
    """Book once per form (its Idempotency-Key): a second click shows the same booking."""
    who = await signed_in(request)
    form = {k: str(v) for k, v in (await session.checked_form(request)).items()}
    db = request.app[database_key]
    now = request.app[clock_key]()
    try:
        data = _booking_of(form)
        key = idempotency.check_key("web-" + form.get("idem", "")[:200])
        claimed = await idempotency.claim(db=db, now=now, request=idempotency.IdempotencyRequest(
            user_id=who.user_id, key=key,
            request_hash=hashlib.sha256(codec.encode(data)).hexdigest()))
        if isinstance(claimed, idempotency.Replay):
            booked_id = msgspec.json.decode(claimed.body)["id"]
            raise web.HTTPSeeOther(f"/agent/appointments/{booked_id}")

        async def store(tx: AsyncSession, booked: booking.Booked) -> None:
            body = codec.encode(views.appointment(booked)).decode()
            await idempotency.record(session=tx, claim=claimed, status=201, body=body)

        try:
            booked = await booking.book(db=db, principal=who, request=data, now=now,
                                        holidays=request.app[holidays_key], on_booked=store)
        except Exception:
            await idempotency.release(db=db, claim=claimed)
            raise
    except VisioError as err:
        params = {k: v for k, v in form.items() if k not in (session.CSRF_FIELD, "idem")}
        context = await _booking_context(request, who, params)
        context["refusal"] = text(request, err.detail)
        context["refusal_status"] = err.status
        if isinstance(err, SlotTaken):
            zone = context["site"].site.timezone if context["site"] else PARIS
            context["alternatives"] = [
                (_slot_value(s), s.start.astimezone(ZoneInfo(zone)))
                for s in err.extra.get("alternatives", [])]
        context["idem"] = str(uuid.uuid4())
        return render(request, "book.html", who=who, status=err.status, **context)
    raise web.HTTPSeeOther(f"/agent/appointments/{booked.appointment.id}")


async def confirmation(request: web.Request) -> web.Response:
    """The booked appointment, the convocation to print and the messages that will go."""
    who = await signed_in(request)
    context = await agenda.call_context(db=request.app[database_key], principal=who,
                                        appointment_id=codec.path_id(request))
    from visio.services import appointments

    booked = await appointments.get_appointment(db=request.app[database_key], principal=who,
                                                appointment_id=context.item.id)
    a = booked.appointment
    messages = (await agenda.usager_messages(db=request.app[database_key], principal=who,
                                             appointment_ids=[a.id]))[a.id]
    return render(request, "confirmation.html", who=who, item=context.item,
                  messages=[(msg, msg.due_at.astimezone(ZoneInfo(context.item.zone)))
                            for msg in messages],
                  theme=theme_label(session.language(request), context.item),
                  start=context.item.start.astimezone(ZoneInfo(context.item.zone)),
                  sms=takes_sms(a.usager_phone), email=a.usager_email,
                  consent=a.usager_consent,
                  convocation=_route_exists(request, CONVOCATION))


def _api_handler(request: web.Request, pattern: str) -> Any:
    """The GET handler another part of visio serves at ``pattern``, if any."""
    for route in request.app.router.routes():
        if route.method == "GET" and getattr(route.resource, "canonical", None) == pattern:
            return route.handler
    return None


def _route_exists(request: web.Request, pattern: str) -> bool:
    """Whether another part of visio serves this route yet (notifications, calendars)."""
    return _api_handler(request, pattern) is not None


CONVOCATION = "/api/v1/appointments/{id}/convocation"


async def convocation(request: web.Request) -> web.StreamResponse:
    """The printable convocation of the notifications API, for the session's agent.

    The session is an API token: the API's own handler answers, with the same checks.
    """
    await signed_in(request)
    handler = _api_handler(request, CONVOCATION)
    token = session.session_token(request)
    if handler is None or token is None:
        raise web.HTTPNotFound()
    response: web.StreamResponse = await handler(
        request.clone(headers={**request.headers, "Authorization": f"Bearer {token}"}))
    return response
