"""Desk territories: which départements and communes a desk serves (admins)."""

from __future__ import annotations

from aiohttp import web

from visio.api import codec
from visio.api.context import caller
from visio.contract import bodies as api
from visio.keys import database_key
from visio.services import directory, territories


async def put_territory(request: web.Request) -> web.Response:
    """Replace a desk's territory (admins)."""
    principal = await caller(request)
    directory.require_admin(principal)
    data = await codec.body(request, api.TerritoryUpdate)
    found = await territories.set_territory(db=request.app[database_key], principal=principal,
                                            desk_id=codec.path_id(request), data=data)
    return codec.respond(api.Territory(desk_id=found.desk_id,
                                       departements=list(found.departements),
                                       communes=list(found.communes)))
