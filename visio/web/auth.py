"""Login, logout and the language switch."""

from __future__ import annotations

import contextlib

from aiohttp import web

from visio.api.addresses import client_address
from visio.domain.kinds import Role
from visio.errors import NotAuthenticated, VisioError
from visio.i18n import LANGUAGES
from visio.keys import (
    clock_key,
    database_key,
    dummy_hash_key,
    hasher_key,
    settings_key,
)
from visio.services import (
    accounts,
)
from visio.web import passwords, proconnect, session
from visio.web.common import (
    safe_next,
    signed_in,
    text,
)
from visio.web.render import render


async def home(request: web.Request) -> web.Response:
    """The caller's home page: booking for agents, the agenda for staff and admins."""
    who = await signed_in(request)
    if who.role is Role.COORDINATOR:
        raise web.HTTPSeeOther("/network/figures")
    raise web.HTTPSeeOther("/agent/book" if who.role is Role.AGENT else "/staff/agenda")


async def login_page(request: web.Request) -> web.Response:
    """The login form."""
    notice = text(request, passwords.NOTICE_RESET) if request.query.get("reset") else None
    return render(request, "login.html", next=safe_next(request.query.get("next")),
                  error=None, email="", notice=notice, proconnect=proconnect.enabled(request))


async def login(request: web.Request) -> web.Response:
    """Check the password (throttled like the API), open a session, go home."""
    form = await session.checked_form(request)
    email = str(form.get("email", ""))[:254]
    password = str(form.get("password", ""))[:1024]
    target = safe_next(str(form.get("next", "")))
    settings = request.app[settings_key]
    try:
        token = await accounts.log_in(
            db=request.app[database_key], hasher=request.app[hasher_key],
            dummy_hash=request.app[dummy_hash_key], email=email, password=password,
            address=client_address(request, settings.trusted_proxies),
            policy=accounts.LoginPolicy.from_settings(settings),
            now=request.app[clock_key](), replaces=session.session_token(request))
    except VisioError as err:
        return render(request, "login.html", status=err.status, next=target,
                      error=text(request, err.detail), email=email, notice=None,
                      proconnect=proconnect.enabled(request))
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
    # Signed in with ProConnect: its session ends too (it comes back to the login page).
    # A page with a link, not a redirect: the form's CSP (form-action 'self') would stop
    # a redirect to another origin.
    elsewhere = await proconnect.provider_logout(request)
    if elsewhere is not None:
        page = render(request, "logout_provider.html", url=elsewhere)
        page.del_cookie(session.SESSION_COOKIE, path="/")
        page.del_cookie(proconnect.ID_TOKEN_COOKIE, path="/")
        return page
    response = web.HTTPSeeOther("/login")
    response.del_cookie(session.SESSION_COOKIE, path="/")
    raise response


async def choose_language(request: web.Request) -> web.Response:
    """Remember the language chosen (a year) and come back to the page."""
    chosen = request.query.get("to", "")
    response = web.HTTPSeeOther(safe_next(request.query.get("next")))
    if chosen in LANGUAGES:
        session.set_cookie(request, response, session.LANG_COOKIE, chosen,
                           max_age=session.YEAR)
    raise response
