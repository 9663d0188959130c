"""POST /auth/token and /auth/logout."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from visio.api import parsing
from visio.api.context import bearer, ok
from visio.keys import clock_key, database_key, dummy_hash_key, hasher_key, settings_key
from visio.services import accounts


async def issue_token(request: web.Request) -> web.Response:
    """Log in with e-mail and password; returns a bearer token."""
    body = await parsing.json_object(request, allowed=("email", "password"))
    email = parsing.required_text(body, "email", max_length=254)
    password = parsing.required_text(body, "password", max_length=1024)
    settings = request.app[settings_key]
    token = await accounts.log_in(
        db=request.app[database_key], hasher=request.app[hasher_key],
        dummy_hash=request.app[dummy_hash_key], email=email, password=password,
        address=request.remote or "unknown",
        policy=accounts.LoginPolicy(
            max_failures=settings.login_max_failures,
            window=timedelta(seconds=settings.login_window_seconds),
            token_ttl=timedelta(seconds=settings.token_ttl_seconds),
        ),
        now=request.app[clock_key](),
    )
    return ok({"access_token": token.access_token, "token_type": "Bearer",
               "expires_at": token.expires_at.isoformat()})


async def log_out(request: web.Request) -> web.Response:
    """Revoke the bearer token of the request."""
    await accounts.log_out(db=request.app[database_key], token=bearer(request),
                           now=request.app[clock_key]())
    return web.Response(status=204)
