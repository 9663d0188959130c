"""One middleware maps every error to RFC 9457 application/problem+json, in the caller's
language (``Accept-Language``; French by default), with ``Content-Language`` saying which."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import asyncpg
import orjson
import sqlalchemy.exc as sa_exc
from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import OperationalError

from visio.domain.messages import N_, Message, _
from visio.errors import DatabaseBusy, DatabaseUnavailable, VisioError
from visio.i18n import Catalogue, catalogue, negotiate
from visio.observability import route_of

log = logging.getLogger("visio.api")

PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://visio.example/problems/"


def language_of(request: web.Request) -> str:
    """The language the caller reads, from ``Accept-Language`` (French by default)."""
    return negotiate(request.headers.get("Accept-Language"))


def _rendered(value: Any, texts: Catalogue) -> Any:
    if isinstance(value, Message):
        return texts.render(value)
    if isinstance(value, dict):
        return {k: _rendered(v, texts) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a named tuple: an object
        return _rendered(value._asdict(), texts)
    if isinstance(value, list | tuple):
        return [_rendered(v, texts) for v in value]
    return value


def problem(request: web.Request, status: int, title: str, detail: Message, *,
            slug: str = "error", extra: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> web.Response:
    """A problem+json response in the caller's language."""
    language = language_of(request)
    texts = catalogue(language)
    body = {"type": PROBLEM_BASE + slug, "title": texts.gettext(title), "status": status,
            "detail": texts.render(detail), **_rendered(extra or {}, texts)}
    response = web.Response(status=status, body=orjson.dumps(body), content_type=PROBLEM,
                            headers=headers)
    response.headers["Content-Language"] = language
    return response


_HTTP_TEXTS: dict[int, tuple[str, Message]] = {
    404: (N_("Not found"), _("There is nothing at this address.")),
    405: (N_("Method not allowed"), _("This method is not allowed here.")),
    413: (N_("Request too large"), _("The request body is too large.")),
}


def domain_problem(request: web.Request, err: VisioError) -> web.Response:
    """The problem+json response of a domain error."""
    headers: dict[str, str] = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="visio"'
    return problem(request, err.status, err.title, err.detail, slug=err.slug,
                   extra=err.extra, headers=headers)


def _internal(request: web.Request) -> web.Response:
    return problem(request, 500, N_("Internal error"),
                   _("Something went wrong on our side."), slug="internal")


def _unreachable(err: BaseException) -> bool:
    """Whether ``err`` says the database (or the network to it) is away, not that a query
    is wrong: refused or lost connections, a full pool, a server restarting or out of
    connections."""
    if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
        return True
    if isinstance(err, OSError | sa_exc.TimeoutError | asyncpg.PostgresConnectionError
                  | asyncpg.InterfaceError | asyncpg.CannotConnectNowError
                  | asyncpg.AdminShutdownError | asyncpg.CrashShutdownError
                  | asyncpg.TooManyConnectionsError):
        return True
    if isinstance(err, sqlite3.OperationalError):
        # Its other operational errors ("no such column"…) are bugs: a 500.
        return any(words in str(err) for words in _SQLITE_AWAY)
    # SQLAlchemy wraps the driver's error, which wraps asyncpg's: look down the chain.
    cause = getattr(err, "orig", None) or err.__cause__
    return cause is not None and cause is not err and _unreachable(cause)


_SQLITE_AWAY = ("unable to open", "disk I/O error", "readonly database")


def _unavailable(request: web.Request) -> web.StreamResponse:
    """503 with Retry-After: problem+json for the API, a page in words for a browser."""
    err = DatabaseUnavailable(_("The service is briefly unavailable; try again in a few "
                                "seconds."))
    if not request.path.startswith("/api/") and "text/html" in request.headers.get(
            "Accept", ""):
        from visio.web.render import render  # the pages import this module

        page = render(request, "error.html", status=err.status,
                      message=catalogue(language_of(request)).render(err.detail))
        page.headers["Retry-After"] = str(err.retry_after)
        return page
    return domain_problem(request, err)


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors and HTTP errors into problem+json; never leak internals."""
    try:
        return await handler(request)
    except VisioError as err:
        return domain_problem(request, err)
    except web.HTTPException as err:
        if err.status < 400 or request.path.startswith("/signaling/ws"):
            raise
        title, detail = _HTTP_TEXTS.get(
            err.status, (N_("Request refused"), _("The request was refused.")))
        headers = {k: v for k, v in err.headers.items() if k.lower() == "allow"}
        return problem(request, err.status, title, detail, slug=f"http-{err.status}",
                       headers=headers)
    except OperationalError as err:
        if "locked" in str(err.orig) or "busy" in str(err.orig):
            # SQLite writers waited longer than busy_timeout: ask to retry, never a 500.
            return domain_problem(request, DatabaseBusy(
                _("The service is busy; retry in a moment.")))
        if not _unreachable(err):
            log.exception("database error on %s %s", request.method, route_of(request))
            return _internal(request)
        # The type only: the driver's message may quote a query's values.
        log.error("database unreachable on %s %s (%s)", request.method, route_of(request),
                  type(err).__name__)
        return _unavailable(request)
    except Exception as err:
        if _unreachable(err):
            log.error("database unreachable on %s %s (%s)", request.method,
                      route_of(request), type(err).__name__)
            return _unavailable(request)
        # Only the method and route are logged: bodies carry personal data, paths tokens.
        log.exception("unhandled error on %s %s", request.method, route_of(request))
        return _internal(request)
