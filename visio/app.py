"""The application factory: everything is built here from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web

from visio.api.problems import problems_middleware
from visio.api.routes import api_routes
from visio.clock import utcnow
from visio.db import open_database
from visio.domain.calendars import HolidayCalendar
from visio.keys import (
    clock_key,
    database_key,
    dummy_hash_key,
    hasher_key,
    holidays_key,
    settings_key,
)
from visio.security import dummy_hash, password_hasher
from visio.settings import Settings
from visio.signaling_host import mount_signaling


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


def create_app(
    settings: Settings, *, clock: Callable[[], datetime] = utcnow
) -> web.Application:
    """Build the aiohttp application for ``settings`` (``clock`` is fixed only in tests)."""
    app = web.Application(middlewares=[problems_middleware], client_max_size=256 * 1024)
    app[settings_key] = settings
    app[clock_key] = clock
    hasher = password_hasher()
    app[hasher_key] = hasher
    app[dummy_hash_key] = dummy_hash(hasher)
    app[holidays_key] = HolidayCalendar()

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        database = open_database(settings.database_url)
        app[database_key] = database
        yield
        await database.dispose()

    # The database comes first: signaling hooks and the settling job use it.
    app.cleanup_ctx.append(database_ctx)
    mount_signaling(app, settings)
    app.router.add_get("/healthz", healthz)
    app.router.add_routes(api_routes())
    return app
