"""Sign-in with ProConnect: the start, the callback, and the provider's logout."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

from aiohttp import web

from visio.keys import clock_key, database_key, proconnect_key, settings_key
from visio.services import proconnect
from visio.web import session
from visio.web.common import safe_next, text
from visio.web.render import render

FLOW_COOKIE = "visio_oidc"
ID_TOKEN_COOKIE = "visio_idt"
FLOW_SECONDS = 600


def _sign(request: web.Request, data: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    secret = request.app[settings_key].secret_key or "visio-unset-secret"
    mac = hmac.new(secret.encode(), b"oidc|" + body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def _read(request: web.Request) -> dict[str, Any] | None:
    value = request.cookies.get(FLOW_COOKIE, "")
    body, _dot, mac = value.rpartition(".")
    secret = request.app[settings_key].secret_key or "visio-unset-secret"
    expected = hmac.new(secret.encode(), b"oidc|" + body.encode(), hashlib.sha256).hexdigest()
    if not body or not hmac.compare_digest(mac, expected):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body))
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("until", 0) < time.time():
        return None
    return data


def enabled(request: web.Request) -> bool:
    """Whether the settings configure ProConnect (else no button, no routes' use)."""
    return proconnect_key in request.app


async def _refusal(request: web.Request, err: proconnect.SignInRefused) -> web.Response:
    await proconnect.record_refusal(db=request.app[database_key], reason=err.reason,
                                    now=request.app[clock_key]())
    response = render(request, "login.html", status=err.status, next="/",
                      error=text(request, err.detail), email="", notice=None,
                      proconnect=enabled(request))
    response.del_cookie(FLOW_COOKIE, path="/")
    return response


async def begin(request: web.Request) -> web.Response:
    """Send the browser to ProConnect with a fresh state, nonce and PKCE verifier."""
    if not enabled(request):
        raise web.HTTPNotFound()
    try:
        started = await proconnect.start(request.app[proconnect_key])
    except proconnect.SignInRefused as err:
        return await _refusal(request, err)
    response = web.HTTPSeeOther(started.url)
    session.set_cookie(request, response, FLOW_COOKIE, _sign(request, {
        "state": started.state, "nonce": started.nonce, "verifier": started.verifier,
        "next": safe_next(request.query.get("next")), "until": time.time() + FLOW_SECONDS,
    }), max_age=FLOW_SECONDS)
    raise response


async def callback(request: web.Request) -> web.Response:
    """Check the state, finish the flow, open a session; a sentence for every refusal."""
    if not enabled(request):
        raise web.HTTPNotFound()
    flow = _read(request)
    state = request.query.get("state", "")
    try:
        if flow is None or not hmac.compare_digest(str(flow.get("state", "")), state):
            raise proconnect._refused("state")
        if "error" in request.query or "code" not in request.query:
            raise proconnect._refused("denied")
        identity = await proconnect.finish(request.app[proconnect_key],
                                           code=request.query["code"][:2000],
                                           nonce=str(flow["nonce"]),
                                           verifier=str(flow["verifier"]))
        settings = request.app[settings_key]
        token, _expires = await proconnect.sign_in(
            db=request.app[database_key], config=request.app[proconnect_key].config,
            identity=identity, now=request.app[clock_key](),
            token_ttl=timedelta(seconds=settings.token_ttl_seconds))
    except proconnect.SignInRefused as err:
        return await _refusal(request, err)
    response = web.HTTPSeeOther(safe_next(str(flow.get("next", "/"))))
    response.del_cookie(FLOW_COOKIE, path="/")
    session.set_cookie(request, response, session.SESSION_COOKIE, token,
                       max_age=settings.token_ttl_seconds)
    session.set_cookie(request, response, ID_TOKEN_COOKIE, identity.id_token,
                       max_age=settings.token_ttl_seconds)
    raise response


async def provider_logout(request: web.Request) -> str | None:
    """Where to send the browser to end the ProConnect session too, if it has one."""
    id_token = request.cookies.get(ID_TOKEN_COOKIE)
    if not id_token or not enabled(request):
        return None
    return await proconnect.logout_url(request.app[proconnect_key], id_token=id_token)
