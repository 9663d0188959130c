"""POST /auth/token and /auth/logout."""

from __future__ import annotations

from aiohttp import web

from visio.api import codec
from visio.api.addresses import client_address
from visio.api.context import bearer, caller
from visio.contract import bodies as api
from visio.keys import clock_key, database_key, dummy_hash_key, hasher_key, settings_key
from visio.services import accounts, directory, passwords


async def issue_token(request: web.Request) -> web.Response:
    """Log in with e-mail and password; returns a bearer token."""
    body = await codec.body(request, api.Login)
    settings = request.app[settings_key]
    token = await accounts.log_in(
        db=request.app[database_key], hasher=request.app[hasher_key],
        dummy_hash=request.app[dummy_hash_key], email=body.email, password=body.password,
        address=client_address(request, settings.trusted_proxies),
        policy=accounts.LoginPolicy.from_settings(settings),
        now=request.app[clock_key](),
    )
    return codec.respond(api.Token(access_token=token.access_token, token_type="Bearer",
                                   expires_at=token.expires_at))


async def log_out(request: web.Request) -> web.Response:
    """Revoke the bearer token of the request."""
    await accounts.log_out(db=request.app[database_key], token=bearer(request),
                           now=request.app[clock_key]())
    return web.Response(status=204)


async def force_password_reset(request: web.Request) -> web.Response:
    """An administrator's reset: the password stops working, every session ends, and a
    link to choose a new one goes to the account's address."""
    principal = await caller(request)
    directory.require_admin(principal)
    settings = request.app[settings_key]
    await passwords.force_reset(
        db=request.app[database_key], user_id=request.match_info["id"],
        admin_id=principal.user_id, base_url=settings.base_url,
        policy=passwords.ResetPolicy.from_settings(settings), now=request.app[clock_key]())
    return web.Response(status=204)
