"""Directory: sites, operators, themes, services; and their administration."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from visio.api import codec, views
from visio.api.context import caller
from visio.contract import bodies as api
from visio.keys import clock_key, database_key, hasher_key, rooms_key
from visio.services import accounts, audit, directory


def _today(request: web.Request) -> date:
    return request.app[clock_key]().date()


async def list_sites(request: web.Request) -> web.Response:
    """Sites in the caller's scope."""
    principal = await caller(request)
    sites = await directory.list_sites(db=request.app[database_key], principal=principal,
                                       today=_today(request))
    return codec.respond(api.Page(items=[views.site(s) for s in sites]))


async def get_site(request: web.Request) -> web.Response:
    """One site with hours, booths and upcoming stops."""
    principal = await caller(request)
    return codec.respond(views.site(await directory.get_site(
        db=request.app[database_key], principal=principal, site_id=codec.path_id(request),
        today=_today(request))))


async def list_operators(request: web.Request) -> web.Response:
    """Operators, by country or theme."""
    await caller(request)
    query = codec.query(request, api.OperatorQuery)
    operators = await directory.list_operators(db=request.app[database_key], query=query)
    return codec.respond(api.Page(items=[views.operator(o) for o in operators]))


async def get_operator(request: web.Request) -> web.Response:
    """One operator with its desks."""
    await caller(request)
    return codec.respond(views.operator(await directory.get_operator(
        db=request.app[database_key], operator_id=codec.path_id(request))))


async def list_themes(request: web.Request) -> web.Response:
    """Every theme."""
    await caller(request)
    themes = await directory.list_themes(db=request.app[database_key])
    return codec.respond(api.Page(items=[views.theme(t) for t in themes]))


async def list_services(request: web.Request) -> web.Response:
    """Services, by operator or theme."""
    await caller(request)
    query = codec.query(request, api.ServiceQuery)
    services = await directory.list_services(db=request.app[database_key], query=query)
    return codec.respond(api.Page(items=[views.service(s) for s in services]))


# ---------------------------------------------------------------- administration


async def create_site(request: web.Request) -> web.Response:
    """Create a site (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.SiteCreate)
    return codec.respond(views.site(await directory.create_site(
        db=request.app[database_key], principal=principal, data=data,
        today=_today(request))), status=201)


async def update_site(request: web.Request) -> web.Response:
    """Change a site (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    changes = await codec.body(request, api.SiteUpdate, required=True)
    return codec.respond(views.site(await directory.update_site(
        db=request.app[database_key], principal=principal, site_id=codec.path_id(request),
        changes=changes, today=_today(request))))


async def add_stops(request: web.Request) -> web.Response:
    """Add stops to a bus's tour (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.StopsCreate)
    stops = await directory.add_stops(db=request.app[database_key], principal=principal,
                                      site_id=codec.path_id(request), data=data)
    return codec.respond(api.Page(items=[views.stop(s) for s in stops]), status=201)


async def remove_stop(request: web.Request) -> web.Response:
    """Remove a stop from a tour (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    await directory.remove_stop(db=request.app[database_key], principal=principal,
                                site_id=codec.path_id(request),
                                stop_id=codec.path_id(request, "stop_id"))
    return web.Response(status=204)


async def create_operator(request: web.Request) -> web.Response:
    """Create an operator (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.OperatorCreate)
    return codec.respond(views.operator(await directory.create_operator(
        db=request.app[database_key], principal=principal, data=data)), status=201)


async def update_operator(request: web.Request) -> web.Response:
    """Change an operator (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    changes = await codec.body(request, api.OperatorUpdate, required=True)
    return codec.respond(views.operator(await directory.update_operator(
        db=request.app[database_key], principal=principal,
        operator_id=codec.path_id(request), changes=changes)))


async def create_desk(request: web.Request) -> web.Response:
    """Add a desk to an operator (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.DeskCreate)
    return codec.respond(views.desk(await directory.create_desk(
        db=request.app[database_key], principal=principal,
        operator_id=codec.path_id(request), data=data)), status=201)


async def create_service(request: web.Request) -> web.Response:
    """Create a service (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.ServiceCreate)
    return codec.respond(views.service(await directory.create_service(
        db=request.app[database_key], principal=principal, data=data)), status=201)


async def update_service(request: web.Request) -> web.Response:
    """Change a service (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    changes = await codec.body(request, api.ServiceUpdate, required=True)
    return codec.respond(views.service(await directory.update_service(
        db=request.app[database_key], principal=principal,
        service_id=codec.path_id(request), changes=changes)))


async def add_closure(request: web.Request) -> web.Response:
    """Close a site, operator or desk on a date (admins); 409 if it has bookings."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.ClosureCreate)
    outcome = await directory.add_closure(db=request.app[database_key], principal=principal,
                                          data=data, now=request.app[clock_key](),
                                          rooms=request.app[rooms_key])
    return codec.respond(views.closure(outcome.closure, outcome.cancelled), status=201)


async def list_users(request: web.Request) -> web.Response:
    """Every account (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    users = await accounts.list_users(db=request.app[database_key])
    return codec.respond(api.Page(items=[views.user(u) for u in users]))


async def create_user(request: web.Request) -> web.Response:
    """Create an account (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.UserCreate)
    user = await accounts.create_user(
        db=request.app[database_key], hasher=request.app[hasher_key], email=data.email,
        password=data.password, role=data.role.value, display_name=data.display_name.strip(),
        site_ids=data.site_ids, desk_id=data.desk_id, departements=data.departements,
        actor=audit.actor_of(principal))
    return codec.respond(views.user(user), status=201)


async def grant_user(request: web.Request) -> web.Response:
    """Give an account its sites, staff member or départements (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.UserGrant)
    user = await accounts.grant(
        db=request.app[database_key], user_id=request.match_info["id"],
        site_ids=data.site_ids, desk_id=data.desk_id, staff_id=data.staff_id,
        departements=data.departements, actor=audit.actor_of(principal))
    return codec.respond(views.user(user))
