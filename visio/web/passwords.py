"""Forgotten passwords: ask for a link, choose a new password with it."""

from __future__ import annotations

from aiohttp import web

from visio.api.addresses import client_address
from visio.domain.messages import _
from visio.errors import VisioError
from visio.keys import clock_key, database_key, hasher_key, settings_key
from visio.services import accounts, passwords
from visio.web import session
from visio.web.common import text
from visio.web.render import render


def _no_referrer(response: web.Response) -> web.Response:
    # The page's address holds the link's token: never sent on to anyone.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def forgot_page(request: web.Request) -> web.Response:
    """The form asking for a reset link."""
    return render(request, "password_forgot.html", sent=False)


async def forgot(request: web.Request) -> web.Response:
    """Record the request and, for an account within its budgets, write the e-mail; the
    same page in every case."""
    form = await session.checked_form(request)
    settings = request.app[settings_key]
    policy = accounts.LoginPolicy.from_settings(settings)
    await passwords.request_reset(
        db=request.app[database_key], email=str(form.get("email", "")),
        address=policy.counted_as(client_address(request, settings.trusted_proxies)),
        base_url=settings.base_url, policy=passwords.ResetPolicy.from_settings(settings),
        now=request.app[clock_key]())
    return render(request, "password_forgot.html", sent=True)


async def new_page(request: web.Request) -> web.Response:
    """The form choosing a new password, if the link is still valid."""
    token = request.query.get("token", "")[:200]
    try:
        await passwords.check_link(db=request.app[database_key], token=token,
                                   now=request.app[clock_key]())
    except VisioError as err:
        return _no_referrer(render(request, "password_new.html", status=err.status,
                                   valid=False, token="", error=text(request, err.detail)))
    return _no_referrer(render(request, "password_new.html", valid=True, token=token,
                               error=None))


async def choose(request: web.Request) -> web.Response:
    """Set the new password; every session of the account ends; on to the login."""
    form = await session.checked_form(request)
    token = str(form.get("token", ""))[:200]
    try:
        await passwords.choose_password(
            db=request.app[database_key], hasher=request.app[hasher_key], token=token,
            password=str(form.get("password", ""))[:1024], now=request.app[clock_key]())
    except VisioError as err:
        still = err.status == 422 and err.detail.msgid.startswith("The password must")
        return _no_referrer(render(request, "password_new.html", status=err.status,
                                   valid=still, token=token if still else "",
                                   error=text(request, err.detail)))
    response = web.HTTPSeeOther("/login?reset=1")
    response.del_cookie(session.SESSION_COOKIE, path="/")
    raise response


NOTICE_RESET = _("Your new password is saved; log in with it.")
