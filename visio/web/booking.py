"""The agent's booking: theme, day, slots, the usager; the confirmation and convocation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web

from visio import models as m
from visio.access import Principal
from visio.api import codec
from visio.api.appointments import stored_answer
from visio.contract import bodies as api
from visio.domain import places
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
)
from visio.web.render import render
from visio.web.usager import convocation_page


@dataclass(frozen=True, slots=True)
class SlotChoice:
    """A slot as the booking form offers it (its radio value names it whole)."""

    value: str
    start: datetime
    operator: str
    languages: str
    place: str
    codes: str = ""


@dataclass(frozen=True, slots=True)
class StopChoice:
    """A coming stop of a bus as the booking page lists it (choosing it sets the day)."""

    day: date
    commune: str
    place: str
    hours: str


#: The languages the search may ask the staff member to speak.
SPOKEN = ("fr", "nl", "en")
#: Countries whose numbers the booking form takes (the site's is the default).
PHONE_COUNTRIES = ("FR", "BE")
#: How many coming stops of a bus the page lists (about a month of its tour).
LISTED_STOPS = 20


def _slot_value(s: Slot) -> str:
    return "|".join((s.service_id, s.staff_id, s.start.isoformat(), s.stop_id or ""))


def _stop_choices(stops: Sequence[m.TourStop], today: date) -> list[StopChoice]:
    return [StopChoice(day=s.day, commune=s.commune, place=s.place,
                       hours=", ".join(f"{a}–{b}" for a, b in s.hours))
            for s in stops if s.day >= today][:LISTED_STOPS]


def message_language(form: dict[str, str], operator: m.Operator | None) -> str:
    """The language of the usager's messages the form proposes: the one chosen, else
    Dutch for an operator speaking Dutch and not French, else French."""
    chosen = form.get("language")
    if chosen in ("fr", "nl"):
        return chosen
    if operator is not None and "nl" in operator.languages and "fr" not in operator.languages:
        return "nl"
    return "nl" if form.get("speaks") == "nl" else "fr"


async def _booking_context(request: web.Request, who: Principal,
                           params: dict[str, str]) -> dict[str, Any]:
    """Sites, themes, the operators the search may offer and the day's slots."""
    db = request.app[database_key]
    sites = await directory.list_sites(db=db, principal=who, today=local_today(request))
    site = next((s for s in sites if s.site.id == params.get("site_id")),
                sites[0] if sites else None)
    themes = await directory.list_themes(db=db)
    theme = params.get("theme", "")
    country = params.get("country", "")
    speaks = params.get("speaks", "")
    speaks = speaks if speaks in SPOKEN else ""
    zone = site.site.timezone if site else PARIS
    today = local_today(request, zone)
    day = parse_day(params.get("day"), today + timedelta(days=1))
    site_country = site.site.country if site else "FR"
    phone_country = params.get("phone_country", site_country)
    context: dict[str, Any] = {
        "sites": sites, "site": site, "themes": themes, "theme": theme, "country": country,
        "day": day, "operators": [], "slots": [], "searched": False, "stop": None,
        "refusal": None, "alternatives": [], "form": params, "speaks": speaks,
        "spoken": SPOKEN, "operator_id": "", "duplicates": [], "error_field": "",
        "phone_country": phone_country if phone_country in PHONE_COUNTRIES else site_country,
        "phone_countries": PHONE_COUNTRIES,
        "stops": _stop_choices(site.stops, today) if site else [],
        "message_language": message_language(params, None), "stop_where": "",
        "idem": params.get("idem") or str(uuid.uuid4()), "today": today}
    if site is None or not theme or theme not in {t.code for t in themes}:
        return context
    try:
        query = msgspec.convert({"theme": theme, "country": country or None}, api.OperatorQuery)
    except msgspec.ValidationError:
        query = api.OperatorQuery(theme=theme)
        context["country"] = ""
    operators = await directory.serving_operators(db=db, principal=who, site_id=site.site.id,
                                                  query=query, day=day)
    by_id = {o.operator.id: o.operator for o in operators}
    operator_id = params.get("operator_id", "")
    operator_id = operator_id if operator_id in by_id else ""
    context.update(operators=operators, operator_id=operator_id,
                   message_language=message_language(params, by_id.get(operator_id)))
    context["stop"] = next((s for s in site.stops if s.day == day), None)
    if context["stop"] is not None:
        context["stop_where"] = places.stop_place(context["stop"].place,
                                                  context["stop"].commune)
    tz = ZoneInfo(zone)
    window = slot_search.check_window(datetime.combine(day, time(0), tz),
                                      datetime.combine(day + timedelta(days=1), time(0), tz))
    try:
        async with request.app[limits_key].expensive(who.user_id):
            found = await slot_search.find_slots(
                db=db, principal=who, query=slot_search.SlotQuery(
                    site_id=site.site.id, theme=theme, window=window,
                    operator_id=operator_id or None, language=speaks or None),
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
    place = places.stop_place(stop.place, stop.commune) if stop is not None and s.stop_id else ""
    return SlotChoice(value=_slot_value(s), start=s.start.astimezone(ZoneInfo(zone)),
                      operator=operator.name, languages=", ".join(operator.languages),
                      place=place, codes=" ".join(operator.languages))


async def booking_page(request: web.Request) -> web.Response:
    """Theme, country, day and operator; the day's slots; the usager's details."""
    who = await signed_in(request)
    if who.role is Role.STAFF:
        raise web.HTTPSeeOther("/staff/agenda")
    params = {k: v for k, v in request.query.items() if isinstance(v, str)}
    return render(request, "book.html", who=who,
                  **await _booking_context(request, who, params))


def phone_in(phone: str, country: str) -> str:
    """The number as typed, read in the chosen country: a national Belgian number gets
    its +32 (French numbers are the parser's default)."""
    number = phone.strip()
    if country == "BE" and number and not number.startswith(("+", "00")):
        return "+32 " + number.removeprefix("0")
    return number


def _booking_of(form: dict[str, str]) -> api.Booking:
    """The API's booking body from the form: the same declared checks apply."""
    service_id, staff_id, start, stop_id = (form.get("slot", "") + "|||").split("|")[:4]
    phone = phone_in(form.get("phone", ""), form.get("phone_country", ""))
    usager: dict[str, Any] = {
        "first_name": form.get("first_name", ""), "last_name": form.get("last_name", ""),
        "phone": phone or None, "email": form.get("email") or None,
        "language": form.get("language") or "fr", "consent": form.get("consent") == "yes"}
    # A textarea's line breaks are control characters the contract refuses in any text.
    note = " ".join(form.get("note", "").split())
    raw: dict[str, Any] = {"site_id": form.get("site_id", ""), "service_id": service_id,
                           "staff_id": staff_id or None, "start": start,
                           "stop_id": stop_id or None, "usager": usager, "note": note or None,
                           "first_offered": form.get("first_offered") or None}
    try:
        value = msgspec.json.decode(msgspec.json.encode(raw), type=api.Booking)
    except msgspec.ValidationError as err:
        raise codec._invalid(err) from err
    codec.check_values(value)
    return value


async def _duplicates(request: web.Request, who: Principal, form: dict[str, str],
                      data: api.Booking, now: datetime) -> list[agenda.AgendaItem]:
    """The usager's coming appointments on the theme, unless the agent confirmed or this
    form already booked (its second click shows its booking, not itself as a double)."""
    if form.get("duplicate_ok") == "yes" or data.usager.phone is None:
        return []
    db = request.app[database_key]
    key = idempotency.check_key(FORM_KEY + form.get("idem", "")[:200])
    if await idempotency.answered(db=db, user_id=who.user_id, key=key, now=now):
        return []
    return await agenda.upcoming_of_phone(
        db=db, principal=who, theme=form.get("theme", ""),
        phone=booking.normalised_phone(data.usager.phone) or "", now=now)


#: The booking form's Idempotency-Key is its ``idem`` field after this prefix.
FORM_KEY = "web-"
#: The form's fields a refusal's ``field`` names (the API's names of the booking body).
FORM_FIELDS = {"usager.first_name": "first_name", "usager.last_name": "last_name",
               "usager.phone": "phone", "usager.email": "email", "note": "note"}


async def _form_again(request: web.Request, who: Principal, form: dict[str, str], *,
                      err: VisioError | None = None,
                      duplicates: list[agenda.AgendaItem] | None = None) -> web.Response:
    """The booking form as it was posted, with the refusal or the duplicates to confirm."""
    params = {k: v for k, v in form.items() if k not in (session.CSRF_FIELD, "duplicate_ok")}
    if err is not None:
        params.pop("idem", None)  # a refused form may be sent again as a new booking
    context = await _booking_context(request, who, params)
    if duplicates:
        context["duplicates"] = [(i, i.start.astimezone(ZoneInfo(i.zone))) for i in duplicates]
        return render(request, "book.html", who=who, status=409, **context)
    assert err is not None
    context["refusal"] = text(request, err.detail)
    context["refusal_status"] = err.status
    context["error_field"] = FORM_FIELDS.get(str(err.extra.get("field", "")), "")
    if isinstance(err, SlotTaken):
        zone = context["site"].site.timezone if context["site"] else PARIS
        context["alternatives"] = [
            (_slot_value(s), s.start.astimezone(ZoneInfo(zone)))
            for s in err.extra.get("alternatives", [])]
    return render(request, "book.html", who=who, status=err.status, **context)


async def book(request: web.Request) -> web.Response:
    """Book once per form (its Idempotency-Key): a second click shows the same booking.

    The same phone number booked on the same theme is shown to the agent first.
    """
    who = await signed_in(request)
    form = {k: str(v) for k, v in (await session.checked_form(request)).items()}
    db = request.app[database_key]
    now = request.app[clock_key]()
    try:
        data = _booking_of(form)
        duplicates = await _duplicates(request, who, form, data, now)
        if duplicates:
            return await _form_again(request, who, form, duplicates=duplicates)
        booked = await booking.book(
            db=db, principal=who, request=data, now=now, holidays=request.app[holidays_key],
            once=booking.OncePerKey(key="web-" + form.get("idem", "")[:200],
                                    answer=stored_answer))
        if isinstance(booked, idempotency.Replay):
            booked_id = msgspec.json.decode(booked.body)["id"]
            raise web.HTTPSeeOther(f"/agent/appointments/{booked_id}")
    except VisioError as err:
        return await _form_again(request, who, form, err=err)
    raise web.HTTPSeeOther(f"/agent/appointments/{booked.appointment.id}")


async def convocation(request: web.Request) -> web.Response:
    """The printable convocation, for the session's agent: the API's own page and checks."""
    return await convocation_page(db=request.app[database_key],
                                  principal=await signed_in(request),
                                  appointment_id=codec.path_id(request))
