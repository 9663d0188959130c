"""The pages: login, the agent's booking and day, the staff agenda and availability, calls.

Handlers parse the form or query, call one service as the API handlers do (the same
access policy decides), and render a template; refusals become sentences on the page.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from visio.access import Principal
from visio.api import codec, views
from visio.api.addresses import client_address
from visio.contract import bodies as api
from visio.domain.kinds import Role
from visio.domain.messages import Message
from visio.domain.slot_types import Slot
from visio.errors import NotAuthenticated, SlotTaken, VisioError
from visio.i18n import LANGUAGES, catalogue
from visio.keys import (
    clock_key,
    database_key,
    dummy_hash_key,
    hasher_key,
    holidays_key,
    limits_key,
    search_cache_key,
    settings_key,
)
from visio.services import (
    accounts,
    agenda,
    booking,
    directory,
    feeds,
    idempotency,
    imported_calendars,
    slot_search,
)
from visio.web import session
from visio.web.render import render

PARIS = "Europe/Paris"
JOIN_EARLY = timedelta(minutes=15)


def _safe_next(value: str | None) -> str:
    """Only a path of this site (never //elsewhere) after a login or a language switch."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _login_redirect(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")


async def _who(request: web.Request) -> Principal:
    found = await session.principal(request)
    if found is None:
        _login_redirect(request)
    assert found is not None
    return found


def _text(request: web.Request, message: Message | str) -> str:
    return catalogue(session.language(request)).render(message)


def _today(request: web.Request, zone: str = PARIS) -> date:
    return request.app[clock_key]().astimezone(ZoneInfo(zone)).date()


def _day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def _theme_label(lang: str, item: agenda.AgendaItem) -> str:
    return item.theme_nl if lang == "nl" else item.theme_fr


# ---------------------------------------------------------------- login, logout, language


async def home(request: web.Request) -> web.Response:
    """The caller's home page: booking for agents, the agenda for staff and admins."""
    who = await _who(request)
    raise web.HTTPSeeOther("/agent/book" if who.role is Role.AGENT else "/staff/agenda")


async def login_page(request: web.Request) -> web.Response:
    """The login form."""
    return render(request, "login.html", next=_safe_next(request.query.get("next")),
                  error=None, email="")


async def login(request: web.Request) -> web.Response:
    """Check the password (throttled like the API), open a session, go home."""
    form = await session.checked_form(request)
    email = str(form.get("email", ""))[:254]
    password = str(form.get("password", ""))[:1024]
    target = _safe_next(str(form.get("next", "")))
    settings = request.app[settings_key]
    try:
        token = await accounts.log_in(
            db=request.app[database_key], hasher=request.app[hasher_key],
            dummy_hash=request.app[dummy_hash_key], email=email, password=password,
            address=client_address(request, settings.trusted_proxies),
            policy=accounts.LoginPolicy(
                max_failures=settings.login_max_failures,
                address_max_failures=settings.login_address_max_failures,
                account_max_failures=settings.login_account_max_failures,
                remember=timedelta(days=settings.login_remember_days),
                window=timedelta(seconds=settings.login_window_seconds),
                token_ttl=timedelta(seconds=settings.token_ttl_seconds)),
            now=request.app[clock_key]())
    except VisioError as err:
        return render(request, "login.html", status=err.status, next=target,
                      error=_text(request, err.detail), email=email)
    response = web.HTTPSeeOther(target)
    session.set_cookie(request, response, session.SESSION_COOKIE, token.access_token,
                       max_age=settings.token_ttl_seconds)
    raise response


async def logout(request: web.Request) -> web.Response:
    """End the session on the server (its token is revoked) and forget the cookie."""
    await session.checked_form(request)
    token = session.session_token(request)
    if token is not None:
        with contextlib.suppress(NotAuthenticated):  # already ended
            await accounts.log_out(db=request.app[database_key], token=token,
                                   now=request.app[clock_key]())
    response = web.HTTPSeeOther("/login")
    response.del_cookie(session.SESSION_COOKIE, path="/")
    raise response


async def choose_language(request: web.Request) -> web.Response:
    """Remember the language chosen (a year) and come back to the page."""
    chosen = request.query.get("to", "")
    response = web.HTTPSeeOther(_safe_next(request.query.get("next")))
    if chosen in LANGUAGES:
        session.set_cookie(request, response, session.LANG_COOKIE, chosen,
                           max_age=session.YEAR)
    raise response


# ---------------------------------------------------------------- agent: booking


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
    sites = await directory.list_sites(db=db, principal=who, today=_today(request))
    site = next((s for s in sites if s.site.id == params.get("site_id")),
                sites[0] if sites else None)
    themes = await directory.list_themes(db=db)
    theme = params.get("theme", "")
    country = params.get("country", "")
    zone = site.site.timezone if site else PARIS
    day = _day(params.get("day"), _today(request, zone) + timedelta(days=1))
    context: dict[str, Any] = {
        "sites": sites, "site": site, "themes": themes, "theme": theme, "country": country,
        "day": day, "operators": [], "slots": [], "searched": False, "stop": None,
        "refusal": None, "alternatives": [], "form": params,
        "idem": params.get("idem") or str(uuid.uuid4()), "today": _today(request, zone)}
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
        context["refusal"] = _text(request, err.detail)
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
    who = await _who(request)
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
    who = await _who(request)
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
        context["refusal"] = _text(request, err.detail)
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
    who = await _who(request)
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
                  theme=_theme_label(session.language(request), context.item),
                  start=context.item.start.astimezone(ZoneInfo(context.item.zone)),
                  phone=a.usager_phone, email=a.usager_email,
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
    await _who(request)
    handler = _api_handler(request, CONVOCATION)
    token = session.session_token(request)
    if handler is None or token is None:
        raise web.HTTPNotFound()
    response: web.StreamResponse = await handler(
        request.clone(headers={**request.headers, "Authorization": f"Bearer {token}"}))
    return response


# ---------------------------------------------------------------- agent: today, staff: agenda


def _joinable(request: web.Request, item: agenda.AgendaItem) -> bool:
    now = request.app[clock_key]()
    settings = request.app[settings_key]
    return (item.start - timedelta(seconds=settings.join_before_seconds) <= now
            < item.end + timedelta(seconds=settings.join_after_seconds))


async def today(request: web.Request) -> web.Response:
    """The day's appointments at the agent's sites, with a Join button 15 min before."""
    who = await _who(request)
    day = _day(request.query.get("date"), _today(request))
    tz = ZoneInfo(PARIS)
    items = await agenda.agenda(db=request.app[database_key], principal=who,
                                start=datetime.combine(day, time(0), tz),
                                end=datetime.combine(day + timedelta(days=1), time(0), tz))
    lang = session.language(request)
    messages = await agenda.usager_messages(db=request.app[database_key], principal=who,
                                            appointment_ids=[i.id for i in items])
    rows = [(i, i.start.astimezone(ZoneInfo(i.zone)), _theme_label(lang, i),
             _joinable(request, i),
             [(msg, msg.due_at.astimezone(ZoneInfo(i.zone))) for msg in messages.get(i.id, [])])
            for i in items]
    return render(request, "today.html", who=who, day=day, rows=rows)


async def staff_agenda(request: web.Request) -> web.Response:
    """Day or week: first name, theme, site or stop; the usager's arrival, live; Join."""
    who = await _who(request)
    view = "week" if request.query.get("view") == "week" else "day"
    day = _day(request.query.get("date"), _today(request))
    start_day = day - timedelta(days=day.weekday()) if view == "week" else day
    days = 7 if view == "week" else 1
    tz = ZoneInfo(PARIS)
    items = await agenda.agenda(db=request.app[database_key], principal=who,
                                start=datetime.combine(start_day, time(0), tz),
                                end=datetime.combine(start_day + timedelta(days=days),
                                                     time(0), tz))
    lang = session.language(request)
    by_day: dict[date, list[Any]] = {start_day + timedelta(days=n): [] for n in range(days)}
    for i in items:
        local = i.start.astimezone(ZoneInfo(i.zone))
        by_day.setdefault(local.date(), []).append(
            (i, local, _theme_label(lang, i), _joinable(request, i)))
    step = timedelta(days=days)
    return render(request, "agenda.html", who=who, view=view, day=day, by_day=by_day,
                  previous=start_day - step, following=start_day + step)


# ---------------------------------------------------------------- staff: availability


async def availability_page(request: web.Request, *, feed_url: str | None = None,
                            error: str | None = None, status: int = 200) -> web.Response:
    """Weekly rules, closures and absences, edited in the page; feeds and calendars."""
    who = await _who(request)
    if who.staff_id is None:
        raise web.HTTPSeeOther("/")
    db = request.app[database_key]
    my_feeds = [f for f in await feeds.list_feeds(db=db, principal=who) if f.scope == "staff"]
    calendars = await imported_calendars.list_calendars(db=db, principal=who,
                                                        staff_id=who.staff_id)
    return render(request, "availability.html", who=who, status=status, feeds=my_feeds,
                  feed_url=feed_url, calendars=calendars, error=error)


async def create_feed(request: web.Request) -> web.Response:
    """A new feed of the staff member's appointments; its address is shown this once."""
    who = await _who(request)
    await session.checked_form(request)
    if who.staff_id is None:
        raise web.HTTPSeeOther("/")
    created = await feeds.create_feed(
        db=request.app[database_key], principal=who, scope="staff", target_id=who.staff_id,
        language=session.language(request), now=request.app[clock_key]())
    url = request.app[settings_key].base_url + feeds.feed_path(created.token)
    return await availability_page(request, feed_url=url)


async def revoke_feed(request: web.Request) -> web.Response:
    """Revoke one of the staff member's feeds."""
    who = await _who(request)
    await session.checked_form(request)
    await feeds.revoke_feed(db=request.app[database_key], principal=who,
                            feed_id=codec.path_id(request), now=request.app[clock_key]())
    raise web.HTTPSeeOther("/staff/availability#calendars")


async def import_calendar(request: web.Request) -> web.Response:
    """Register the staff member's own calendar (ICS or CalDAV) for its busy times."""
    who = await _who(request)
    form = await session.checked_form(request)
    if who.staff_id is None:
        raise web.HTTPSeeOther("/")
    raw = {"url": str(form.get("url", "")), "username": str(form.get("username", "")) or None,
           "password": str(form.get("password", "")) or None}
    try:
        try:
            data = msgspec.convert(raw, api.CalendarImport)
        except msgspec.ValidationError as err:
            raise codec._invalid(err) from err
        await imported_calendars.register(
            db=request.app[database_key], principal=who, settings=request.app[settings_key],
            staff_id=who.staff_id, url=data.url, username=data.username,
            password=data.password, now=request.app[clock_key]())
    except VisioError as err:
        return await availability_page(request, error=_text(request, err.detail),
                                       status=err.status)
    raise web.HTTPSeeOther("/staff/availability#calendars")


async def remove_calendar(request: web.Request) -> web.Response:
    """Remove an imported calendar and the busy time it brought."""
    who = await _who(request)
    await session.checked_form(request)
    if who.staff_id is None:
        raise web.HTTPSeeOther("/")
    await imported_calendars.remove(db=request.app[database_key], principal=who,
                                    staff_id=who.staff_id,
                                    calendar_id=codec.path_id(request))
    raise web.HTTPSeeOther("/staff/availability#calendars")


# ---------------------------------------------------------------- the call


async def call_page(request: web.Request) -> web.Response:
    """Preview and devices, the test call, then the call itself."""
    who = await _who(request)
    context = await agenda.call_context(db=request.app[database_key], principal=who,
                                        appointment_id=codec.path_id(request))
    settings = request.app[settings_key]
    item = context.item
    config = {"appointment": item.id, "lang": session.language(request),
              "fallbackAfter": settings.call_fallback_seconds,
              "nonce": secrets.token_hex(4)}
    return render(request, "call.html", who=who, item=item,
                  start=item.start.astimezone(ZoneInfo(item.zone)),
                  theme=_theme_label(session.language(request), item),
                  fallback_phone=context.fallback_phone,
                  config=msgspec.json.encode(config).decode())


async def not_found_page(request: web.Request, err: VisioError) -> web.Response:
    """A refusal on a page, as a sentence."""
    return render(request, "error.html", who=await session.principal(request),
                  status=err.status, message=_text(request, err.detail))
