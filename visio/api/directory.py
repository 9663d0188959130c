"""Directory: sites, operators, themes, services; and their administration."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from visio.api import parsing
from visio.api.context import caller, listing, ok
from visio.domain.messages import _
from visio.errors import InvalidInput
from visio.keys import clock_key, database_key, hasher_key
from visio.services import accounts, directory

COUNTRIES = ("FR", "BE")
LANGUAGES = ("fr", "nl", "de", "en")


def _today(request: web.Request) -> date:
    return request.app[clock_key]().date()


async def list_sites(request: web.Request) -> web.Response:
    """Sites in the caller's scope."""
    principal = await caller(request)
    return listing(await directory.list_sites(db=request.app[database_key],
                                              principal=principal, today=_today(request)))


async def get_site(request: web.Request) -> web.Response:
    """One site with hours, booths and upcoming stops."""
    principal = await caller(request)
    return ok(await directory.get_site(db=request.app[database_key], principal=principal,
                                       site_id=parsing.path_id(request), today=_today(request)))


async def list_operators(request: web.Request) -> web.Response:
    """Operators, by country or theme."""
    await caller(request)
    country = parsing.query_value(request, "country")
    if country is not None and country not in COUNTRIES:
        raise InvalidInput(_("country must be FR or BE."))
    return listing(await directory.list_operators(
        db=request.app[database_key], country=country,
        theme=parsing.query_value(request, "theme")))


async def get_operator(request: web.Request) -> web.Response:
    """One operator with its desks."""
    await caller(request)
    return ok(await directory.get_operator(db=request.app[database_key],
                                           operator_id=parsing.path_id(request)))


async def list_themes(request: web.Request) -> web.Response:
    """Every theme."""
    await caller(request)
    return listing(await directory.list_themes(db=request.app[database_key]))


async def list_services(request: web.Request) -> web.Response:
    """Services, by operator or theme."""
    await caller(request)
    return listing(await directory.list_services(
        db=request.app[database_key], operator_id=parsing.query_value(request, "operator_id"),
        theme=parsing.query_value(request, "theme")))


# ---------------------------------------------------------------- administration

WEEKDAY_INDEX = {name: i for i, name in enumerate(directory.WEEKDAYS)}


def _opening_hours(value: object) -> dict[int, list[Any]]:
    if not isinstance(value, dict):
        raise InvalidInput(_("opening_hours must be an object keyed by weekday (monday…sunday)."))
    hours: dict[int, list[Any]] = {}
    for name, ranges in value.items():
        if name not in WEEKDAY_INDEX:
            raise InvalidInput(_("opening_hours: {name} is not a weekday (monday…sunday).", name=name))
        hours[WEEKDAY_INDEX[name]] = parsing.items({"r": ranges}, "r", parsing.time_range,
                                                   max_items=6)
    return hours


SITE_FIELDS = ("name", "kind", "commune", "address", "timezone", "booths", "opening_hours")


async def create_site(request: web.Request) -> web.Response:
    """Create a site (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(request, allowed=SITE_FIELDS)
    kind = parsing.required_text(body, "kind")
    if kind not in ("fixed", "itinerant"):
        raise InvalidInput(_("kind must be fixed or itinerant."))
    data = directory.SiteInput(
        name=parsing.required_text(body, "name"), kind=kind,
        commune=parsing.required_text(body, "commune", max_length=120),
        address=parsing.required_text(body, "address", max_length=300),
        timezone=directory.check_timezone(
            parsing.text(body, "timezone", max_length=64, required=False) or "Europe/Paris"),
        booths=parsing.integer(body, "booths", low=1, high=50, default=1),
        opening_hours=_opening_hours(body.get("opening_hours", {})),
    )
    return ok(await directory.create_site(db=request.app[database_key], principal=principal,
                                          data=data, today=_today(request)), status=201)


async def update_site(request: web.Request) -> web.Response:
    """Change a site (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(request, allowed=[f for f in SITE_FIELDS if f != "kind"])
    changes: dict[str, Any] = {}
    for field, limit in (("name", 200), ("commune", 120), ("address", 300)):
        if field in body:
            changes[field] = parsing.required_text(body, field, max_length=limit)
    if "timezone" in body:
        changes["timezone"] = directory.check_timezone(
            parsing.required_text(body, "timezone", max_length=64))
    if "booths" in body:
        changes["booths"] = parsing.integer(body, "booths", low=1, high=50)
    if "opening_hours" in body:
        changes["opening_hours"] = _opening_hours(body["opening_hours"])
    return ok(await directory.update_site(db=request.app[database_key], principal=principal,
                                          site_id=parsing.path_id(request), changes=changes,
                                          today=_today(request)))


def _stop(value: object, name: str) -> directory.StopInput:
    if not isinstance(value, dict):
        raise InvalidInput(_("{name} must be an object.", name=name))
    parsing.only(value, ("date", "commune", "place", "hours"), where=name)
    return directory.StopInput(
        day=parsing.day(value.get("date"), f"{name}.date"),
        commune=parsing.required_text(value, "commune", max_length=120),
        place=parsing.required_text(value, "place", max_length=300),
        hours=parsing.items(value, "hours", parsing.time_range, max_items=4),
    )


async def add_stops(request: web.Request) -> web.Response:
    """Add stops to a bus's tour (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(request, allowed=("stops",))
    stops = parsing.items(body, "stops", _stop, max_items=400)
    return listing(await directory.add_stops(db=request.app[database_key], principal=principal,
                                             site_id=parsing.path_id(request), stops=stops))


async def remove_stop(request: web.Request) -> web.Response:
    """Remove a stop from a tour (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    await directory.remove_stop(db=request.app[database_key], principal=principal,
                                site_id=parsing.path_id(request),
                                stop_id=parsing.path_id(request, "stop_id"))
    return web.Response(status=204)


def _languages(body: dict[str, Any], name: str = "languages") -> list[str]:
    values = parsing.items(body, name, lambda v, n: v, max_items=4)
    if not values or any(v not in LANGUAGES for v in values):
        raise InvalidInput(_("{name} must list languages among {value}.", name=name, value=', '.join(LANGUAGES)))
    return sorted(set(values))


OPERATOR_FIELDS = ("name", "code", "country", "kind", "languages", "timezone")


async def create_operator(request: web.Request) -> web.Response:
    """Create an operator (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(request, allowed=OPERATOR_FIELDS)
    country = parsing.required_text(body, "country")
    kind = parsing.required_text(body, "kind")
    if country not in COUNTRIES:
        raise InvalidInput(_("country must be FR or BE."))
    if kind not in ("national", "cross_border"):
        raise InvalidInput(_("kind must be national or cross_border."))
    data = directory.OperatorInput(
        name=parsing.required_text(body, "name"),
        code=parsing.required_text(body, "code", max_length=40), country=country, kind=kind,
        languages=_languages(body),
        timezone=directory.check_timezone(parsing.required_text(body, "timezone")),
    )
    return ok(await directory.create_operator(db=request.app[database_key],
                                              principal=principal, data=data), status=201)


async def update_operator(request: web.Request) -> web.Response:
    """Change an operator (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(request, allowed=("name", "languages", "timezone"))
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = parsing.required_text(body, "name")
    if "languages" in body:
        changes["languages"] = _languages(body)
    if "timezone" in body:
        changes["timezone"] = directory.check_timezone(parsing.required_text(body, "timezone"))
    return ok(await directory.update_operator(db=request.app[database_key],
                                              principal=principal,
                                              operator_id=parsing.path_id(request),
                                              changes=changes))


async def create_desk(request: web.Request) -> web.Response:
    """Add a desk to an operator (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(request, allowed=("name",))
    return ok(await directory.create_desk(db=request.app[database_key], principal=principal,
                                          operator_id=parsing.path_id(request),
                                          name=parsing.required_text(body, "name")),
              status=201)


SERVICE_NUMBERS = {"duration_minutes": (5, 480, 30), "buffer_minutes": (0, 240, 0),
                   "notice_minutes": (0, 60 * 24 * 30, 120), "horizon_days": (1, 366, 56)}


async def create_service(request: web.Request) -> web.Response:
    """Create a service (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(
        request, allowed=("operator_id", "theme", "languages", *SERVICE_NUMBERS))
    numbers = {k: parsing.integer(body, k, low=lo, high=hi, default=d)
               for k, (lo, hi, d) in SERVICE_NUMBERS.items()}
    data = directory.ServiceInput(
        operator_id=parsing.required_text(body, "operator_id", max_length=64),
        theme=parsing.required_text(body, "theme", max_length=32),
        languages=_languages(body) if "languages" in body else ["fr"], **numbers)
    return ok(await directory.create_service(db=request.app[database_key], principal=principal,
                                             data=data), status=201)


async def update_service(request: web.Request) -> web.Response:
    """Change a service (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(request, allowed=("languages", *SERVICE_NUMBERS))
    changes: dict[str, Any] = {k: parsing.integer(body, k, low=lo, high=hi)
                               for k, (lo, hi, _default) in SERVICE_NUMBERS.items() if k in body}
    if "languages" in body:
        changes["languages"] = _languages(body)
    return ok(await directory.update_service(db=request.app[database_key], principal=principal,
                                             service_id=parsing.path_id(request),
                                             changes=changes))


async def add_closure(request: web.Request) -> web.Response:
    """Close a site, operator or desk on a date (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(
        request, allowed=("date", "reason", "site_id", "operator_id", "desk_id"))
    data = directory.ClosureInput(
        day=parsing.day(body.get("date"), "date"),
        reason=parsing.text(body, "reason", required=False) or "",
        site_id=parsing.text(body, "site_id", max_length=64, required=False),
        operator_id=parsing.text(body, "operator_id", max_length=64, required=False),
        desk_id=parsing.text(body, "desk_id", max_length=64, required=False),
    )
    return ok(await directory.add_closure(db=request.app[database_key], principal=principal,
                                          data=data), status=201)


def _user_json(u: accounts.UserSummary) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "display_name": u.display_name, "role": u.role,
            "site_ids": list(u.site_ids), "staff_id": u.staff_id, "desk_id": u.desk_id}


async def list_users(request: web.Request) -> web.Response:
    """Every account (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    return listing([_user_json(u) for u in await accounts.list_users(
        db=request.app[database_key])])


async def create_user(request: web.Request) -> web.Response:
    """Create an account (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    body = await parsing.json_object(
        request, allowed=("email", "password", "role", "display_name", "site_ids", "desk_id"))
    user = await accounts.create_user(
        db=request.app[database_key], hasher=request.app[hasher_key],
        email=parsing.required_text(body, "email", max_length=254),
        password=parsing.required_text(body, "password", max_length=1024),
        role=parsing.required_text(body, "role"),
        display_name=parsing.required_text(body, "display_name"),
        site_ids=parsing.items(body, "site_ids", lambda v, n: str(v)[:64], max_items=50,
                               required=False),
        desk_id=parsing.text(body, "desk_id", max_length=64, required=False),
    )
    return ok(_user_json(user), status=201)
