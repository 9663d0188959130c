"""Browser sessions, cross-site request forgery tokens and the reader's language.

A session is a bearer token of ``visio.services.accounts`` (stored hashed on the server,
expiring, revoked at logout) held in an HttpOnly, SameSite=Lax cookie, Secure when the
base URL is https. Every form and every script's POST carries a CSRF token: an HMAC of
a random per-browser cookie under the secret key (double submit, signed), and POSTs
from another origin are refused outright.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from visio.access import Principal
from visio.domain.messages import _
from visio.errors import Forbidden, NotAuthenticated
from visio.i18n import LANGUAGES, negotiate
from visio.keys import clock_key, database_key, settings_key
from visio.services import accounts

SESSION_COOKIE = "visio_session"
CSRF_COOKIE = "visio_csrf"
LANG_COOKIE = "visio_lang"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
YEAR = 365 * 24 * 3600
#: The CSRF cookie value given to a browser that had none, during this request.
new_browser_key = web.RequestKey("new_browser_id", str)


def secure(request: web.Request) -> bool:
    """Cookies are Secure when visio is served over https."""
    return request.app[settings_key].base_url.startswith("https://")


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
               *, max_age: int | None = None) -> None:
    """A cookie scripts cannot read, not sent on cross-site subrequests."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        samesite="Lax", secure=secure(request))


def language(request: web.Request) -> str:
    """The remembered choice, else the browser's languages, else French."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return negotiate(request.headers.get("Accept-Language"))


def _browser_id(request: web.Request) -> str:
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) < 20:
        value = request.get(new_browser_key) or secrets.token_urlsafe(24)
        request[new_browser_key] = value
    return value


def csrf_token(request: web.Request) -> str:
    """The token forms and scripts of this browser send back."""
    secret = request.app[settings_key].secret_key or "visio-unset-secret"
    return hmac.new(secret.encode(), b"csrf|" + _browser_id(request).encode(),
                    hashlib.sha256).hexdigest()


def remember_browser(request: web.Request, response: web.StreamResponse) -> None:
    """Set the CSRF cookie when this response gave the browser its first token."""
    if new_browser_key in request:
        set_cookie(request, response, CSRF_COOKIE, request[new_browser_key], max_age=YEAR)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    base = urlsplit(request.app[settings_key].base_url)
    mine = {f"{base.scheme}://{base.netloc}", f"{request.scheme}://{request.host}"}
    return origin in mine


async def check_csrf(request: web.Request, sent: str | None = None) -> None:
    """Refuse a state-changing request without this browser's token or from elsewhere."""
    if sent is None:
        sent = request.headers.get(CSRF_HEADER)
    expected = csrf_token(request) if request.cookies.get(CSRF_COOKIE) else None
    if not _same_origin(request) or expected is None or sent is None \
            or not hmac.compare_digest(sent, expected):
        raise Forbidden(_("This form has expired or comes from another site; "
                          "reload the page and try again."))


async def checked_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    """The posted form, once its CSRF field is checked (:func:`check_csrf`)."""
    form = await request.post()
    field = form.get(CSRF_FIELD, "")
    await check_csrf(request, field if isinstance(field, str) else "")
    return form


def session_token(request: web.Request) -> str | None:
    """The session's token, if the browser holds one."""
    return request.cookies.get(SESSION_COOKIE) or None


async def principal(request: web.Request) -> Principal | None:
    """Who is logged in on this browser, or None."""
    token = session_token(request)
    if token is None:
        return None
    try:
        return await accounts.authenticate(db=request.app[database_key], token=token,
                                           now=request.app[clock_key]())
    except NotAuthenticated:
        return None


async def required(request: web.Request) -> Principal:
    """The logged-in principal; NotAuthenticated (a 401, or a redirect on pages) otherwise."""
    found = await principal(request)
    if found is None:
        raise NotAuthenticated(_("Log in first."))
    return found
