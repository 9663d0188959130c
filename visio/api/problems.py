"""One middleware maps every error to RFC 9457 application/problem+json."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import OperationalError

from visio.errors import DatabaseBusy, VisioError

log = logging.getLogger("visio.api")

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, *, slug: str = "error",
            extra: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> web.Response:
    """A problem+json response."""
    body = {"type": f"https://visio.example/problems/{slug}", "title": title,
            "status": status, "detail": detail, **(extra or {})}
    return web.Response(status=status, text=json.dumps(body), content_type=PROBLEM,
                        headers=headers)


_HTTP_DETAILS = {
    404: "There is nothing at this address.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
}


def domain_problem(err: VisioError) -> web.Response:
    """The problem+json response of a domain error."""
    headers = None if err.retry_after is None else {"Retry-After": str(err.retry_after)}
    return problem(err.status, err.title, err.detail, slug=err.slug, extra=err.extra,
                   headers=headers)


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors and HTTP errors into problem+json; never leak internals."""
    try:
        return await handler(request)
    except VisioError as err:
        return domain_problem(err)
    except web.HTTPException as err:
        if err.status < 400 or request.path.startswith("/signaling/ws"):
            raise
        detail = _HTTP_DETAILS.get(err.status, err.reason)
        headers = {k: v for k, v in err.headers.items() if k.lower() == "allow"}
        return problem(err.status, err.reason, detail, headers=headers)
    except OperationalError as err:
        if "locked" in str(err.orig) or "busy" in str(err.orig):
            # SQLite writers waited longer than busy_timeout: ask to retry, never a 500.
            return domain_problem(DatabaseBusy("The service is busy; retry in a moment."))
        log.exception("database error on %s %s", request.method, request.path)
        return problem(500, "Internal error", "Something went wrong on our side.")
    except Exception:
        # Only the method and path are logged: bodies carry personal data.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal error", "Something went wrong on our side.")
