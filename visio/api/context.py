"""What every handler reaches for: settings, database, the caller."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from visio.access import Principal
from visio.domain.messages import _
from visio.errors import NotAuthenticated
from visio.keys import clock_key, database_key
from visio.services import accounts


def bearer(request: web.Request) -> str:
    """The bearer token of the request."""
    header = request.headers.get("Authorization", "")
    scheme, _space, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(_("Log in first and send 'Authorization: Bearer <token>'."))
    return token.strip()


async def caller(request: web.Request) -> Principal:
    """The authenticated principal; 401 when the token is missing or bad."""
    return await accounts.authenticate(
        db=request.app[database_key], token=bearer(request), now=request.app[clock_key]()
    )


def ok(data: Any, status: int = 200) -> web.Response:
    """A JSON response."""
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def listing(items: list[Any], next_cursor: str | None = None) -> web.Response:
    """The list envelope: items and next_cursor."""
    return ok({"items": items, "next_cursor": next_cursor})

