"""The background fetch of staff members' calendars, on the application's scheduler."""

from __future__ import annotations

import logging

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from visio.keys import calendar_expander_key, clock_key, database_key, settings_key
from visio.services import imported_calendars

log = logging.getLogger("visio.calendars")



async def fetch_calendars(app: web.Application) -> dict[str, str | None]:
    """Fetch the calendars due now; each calendar's error code, or None."""
    return await imported_calendars.refresh_due(
        db=app[database_key], settings=app[settings_key], now=app[clock_key](),
        expander=app[calendar_expander_key])


def schedule_calendar_fetches(scheduler: AsyncIOScheduler, app: web.Application) -> None:
    """Add the calendar fetch to ``scheduler`` (its owner starts and shuts it down)."""

    async def job() -> None:
        # A failed run is retried at the next interval; it must not stop the scheduler.
        try:
            results = await fetch_calendars(app)
        except Exception:
            log.exception("calendar fetch failed")
            return
        if results:
            failed = sum(1 for code in results.values() if code is not None)
            log.info("calendars fetched: %d, failed: %d", len(results), failed)

    # Each calendar is fetched every VISIO_CALENDAR_FETCH_MINUTES; a new one within
    # VISIO_CALENDAR_CHECK_SECONDS.
    scheduler.add_job(job, "interval", seconds=app[settings_key].calendar_check_seconds,
                      id="visio.calendars.fetch", name="fetch_calendars", coalesce=True,
                      max_instances=1, replace_existing=True)
