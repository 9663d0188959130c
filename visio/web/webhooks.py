"""The administrator's page of an operator's webhook endpoints and their delivery log."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import sqlalchemy as sa
from aiohttp import web

from visio import models as m
from visio.domain.messages import _
from visio.errors import NotFound
from visio.i18n import catalogue
from visio.keys import database_key
from visio.services import webhooks
from visio.web import session
from visio.web.common import signed_in
from visio.web.render import render


async def webhooks_page(request: web.Request) -> web.Response:
    """Each endpoint, whether it is active, failing or disabled, and its latest attempts."""
    who = await signed_in(request)
    webhooks.require_admin(who)
    db = request.app[database_key]
    operator_id = request.match_info["id"]
    async with db.read() as s:
        row = (await s.execute(sa.select(m.Operator.name, m.Operator.timezone)
                               .where(m.Operator.id == operator_id))).one_or_none()
    if row is None:
        raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))
    found = await webhooks.list_endpoints(db=db, principal=who, operator_id=operator_id)
    endpoints = []
    for endpoint in found:
        _endpoint, attempts = await webhooks.delivery_log(
            db=db, principal=who, operator_id=operator_id, endpoint_id=endpoint.id, limit=50)
        endpoints.append((endpoint, attempts))
    name, zone = row
    cat = catalogue(session.language(request))
    return render(request, "webhooks.html", who=who, operator=name, endpoints=endpoints,
                  moment=lambda at: cat.moment(at.astimezone(ZoneInfo(zone))))
