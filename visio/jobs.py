"""Periodic jobs: forget personal data once it has served its purpose.

The retention policy (``visio.services.retention``) says how long each kind is kept:
``purge_retained`` erases the usager's details of past appointments and deletes old call
logs and message records, in small batches. Idempotency keys hold the usager's name,
phone and e-mail (the stored booking answer) and live 24 hours; login records hold
client addresses and live as long as throttling needs them. The purges run hourly on the
scheduler of the application's owner (``schedule_purges``); each is also a plain
coroutine of the app, for tests and the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from visio.keys import clock_key, database_key, settings_key
from visio.services import accounts, idempotency, passwords, retention

log = logging.getLogger("visio.jobs")

PURGE_EVERY = timedelta(hours=1)

Purge = Callable[[web.Application], Awaitable[int]]


async def purge_idempotency_keys(app: web.Application) -> int:
    """Delete the Idempotency-Keys past their 24 hours; how many were deleted."""
    return await idempotency.purge_expired(db=app[database_key], now=app[clock_key]())


async def purge_login_records(app: web.Application) -> int:
    """Delete login failures out of the window and addresses no longer remembered."""
    settings = app[settings_key]
    return await accounts.purge_login_records(
        db=app[database_key], window=timedelta(seconds=settings.login_window_seconds),
        remember=timedelta(days=settings.login_remember_days), now=app[clock_key](),
    )


async def purge_retained(app: web.Application) -> int:
    """Erase the usager details, call logs and message records the policy no longer keeps."""
    done = await retention.purge(
        db=app[database_key], policy=retention.Policy.from_settings(app[settings_key]),
        now=app[clock_key](), kinds=RETAINED)
    return sum(done.values())


#: What ``purge_retained`` handles (the two purges above handle the rest of the policy).
RETAINED = ("usager_details", "call_events", "messages")


async def purge_reset_requests(app: web.Application) -> int:
    """Delete password reset requests out of their throttling window."""
    settings = app[settings_key]
    return await passwords.purge_requests(
        db=app[database_key], window=timedelta(seconds=settings.password_reset_window_seconds),
        now=app[clock_key]())


PURGES: tuple[Purge, ...] = (purge_idempotency_keys, purge_login_records, purge_retained,
                             purge_reset_requests)


def schedule_purges(
    scheduler: AsyncIOScheduler, app: web.Application, *, every: timedelta = PURGE_EVERY
) -> None:
    """Add every purge to ``scheduler`` (its owner starts and shuts it down)."""
    for purge in PURGES:
        scheduler.add_job(
            _logged(purge, app), "interval", seconds=every.total_seconds(),
            id=f"visio.jobs.{purge.__name__}", name=purge.__name__, coalesce=True,
            max_instances=1, replace_existing=True,
        )


def _logged(purge: Purge, app: web.Application) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        # A failed run is retried at the next interval; it must not stop the scheduler.
        try:
            deleted = await purge(app)
        except Exception:
            log.exception("%s failed", purge.__name__)
            return
        if deleted:
            log.info("%s purged %d row(s)", purge.__name__, deleted)

    return job
