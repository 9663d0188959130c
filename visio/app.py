"""The application factory: everything is built here from the settings."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web
from aiohttp.typedefs import Handler
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from visio.api.calendars import serve_feed
from visio.api.limits import ExpensiveLimits
from visio.api.problems import problems_middleware
from visio.api.routes import PREFIX, api_routes
from visio.calendars.expand import Expander
from visio.calendars.jobs import schedule_calendar_fetches
from visio.clock import utcnow
from visio.db import database_for
from visio.domain.calendars import HolidayCalendar
from visio.jobs import schedule_purges
from visio.keys import (
    calendar_expander_key,
    clock_key,
    database_key,
    dummy_hash_key,
    hasher_key,
    holidays_key,
    limits_key,
    metrics_key,
    proconnect_key,
    search_cache_key,
    settings_key,
)
from visio.logs import quiet_drivers
from visio.notify.dispatcher import Dispatcher, schedule_dispatch
from visio.notify.webhooks import WebhookSender, schedule_webhooks
from visio.observability import (
    Metrics,
    metrics_endpoint,
    observe_middleware,
    outcome_middleware,
    readyz,
)
from visio.observability import install as install_observability
from visio.security import dummy_hash, password_hasher
from visio.services.proconnect import Config as ProConnectConfig
from visio.services.proconnect import Provider
from visio.services.search_cache import SearchCache
from visio.settings import Settings
from visio.signaling_host import mount_signaling
from visio.web import mount_pages
from visio.web.usager import usager_routes

SERVER = "visio"


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers, and which one (``visio serve --workers`` runs
    several on one port; a process id is no secret)."""
    return web.json_response({"status": "ok", "pid": os.getpid()})


@web.middleware
async def no_store_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API answers carry tokens and usager data: no cache may keep them."""
    response = await handler(request)
    if request.path.startswith(PREFIX) and request.path != f"{PREFIX}/openapi.json":
        response.headers["Cache-Control"] = "no-store"
    return response


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # No version in Server: it only helps an attacker pick an exploit.
    response.headers["Server"] = SERVER
    # Every answer, static files and errors included: no browser guesses a type (an
    # uploaded or echoed text read as a script).
    response.headers["X-Content-Type-Options"] = "nosniff"


def create_app(
    settings: Settings, *, clock: Callable[[], datetime] = utcnow
) -> web.Application:
    """Build the aiohttp application for ``settings`` (``clock`` is fixed only in tests)."""
    quiet_drivers()
    metrics = Metrics()
    # Request ids and counts outermost (they see every answer); booking outcomes innermost
    # (they see refusals before problems_middleware turns them into answers).
    app = web.Application(middlewares=[observe_middleware(metrics), no_store_middleware,
                                       problems_middleware, outcome_middleware(metrics)],
                          client_max_size=256 * 1024)
    app[metrics_key] = metrics
    install_observability(app, metrics)
    app[settings_key] = settings
    app[clock_key] = clock
    hasher = password_hasher()
    app[hasher_key] = hasher
    app[dummy_hash_key] = dummy_hash(hasher)
    app[holidays_key] = HolidayCalendar()
    app[limits_key] = ExpensiveLimits.from_settings(settings)
    app[search_cache_key] = SearchCache(
        settings.search_cache_entries,
        on_lookup=lambda outcome: metrics.search_cache.labels(outcome).inc())
    app[calendar_expander_key] = Expander.from_settings(settings)
    proconnect_config = ProConnectConfig.from_settings(settings)
    if proconnect_config is not None:
        provider = Provider(proconnect_config)
        app[proconnect_key] = provider

        async def close_provider(app: web.Application) -> None:
            await provider.close()

        app.on_cleanup.append(close_provider)
    app.on_response_prepare.append(_server_header)

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        database = database_for(settings)
        app[database_key] = database
        yield
        await database.dispose()

    async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
        scheduler = AsyncIOScheduler()
        schedule_purges(scheduler, app)
        schedule_calendar_fetches(scheduler, app)
        dispatcher = None
        sender = None
        if settings.dispatch:
            dispatcher = Dispatcher(db=app[database_key], settings=settings, clock=clock)
            schedule_dispatch(scheduler, dispatcher)
            sender = WebhookSender(db=app[database_key], settings=settings, clock=clock)
            schedule_webhooks(scheduler, sender)
        scheduler.start()
        yield
        if dispatcher is not None:
            # Before the scheduler: the send under way ends, the rest is given back.
            await dispatcher.stop(grace=settings.shutdown_grace_seconds)
        scheduler.shutdown(wait=False)  # cancels a calendar fetch under way
        # An expansion's child would keep the stop waiting on it: killed now.
        app[calendar_expander_key].close()
        if dispatcher is not None:
            await dispatcher.close()
        if sender is not None:
            await sender.close()

    # The database comes first: signaling hooks, the settling job and the purges use it.
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(jobs_ctx)
    mount_signaling(app, settings)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/calendars/{name}", serve_feed)
    app.router.add_routes(api_routes())
    app.router.add_routes(usager_routes())
    mount_pages(app)
    return app
