"""Logs that say something: a job writes one line when it did something, none when idle,
and APScheduler's own lines ("Running job", "executed successfully") stay off unless DEBUG."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from tests.notify.world import World
from visio.calendars.jobs import schedule_calendar_fetches
from visio.clock import utcnow
from visio.jobs import schedule_purges
from visio.logs import quiet_scheduler
from visio.notify.dispatcher import schedule_dispatch


@pytest.fixture
def scheduler_logger() -> Iterator[None]:
    """Whatever a test sets on the ``apscheduler`` logger is undone after it."""
    logger = logging.getLogger("apscheduler")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
async def scheduler(world: World) -> AsyncIterator[AsyncIOScheduler]:
    """The app's real jobs (purges, calendar fetch, dispatch) on a running scheduler."""
    scheduler = AsyncIOScheduler()
    schedule_purges(scheduler, world.client.app)
    schedule_calendar_fetches(scheduler, world.client.app)
    schedule_dispatch(scheduler, world.dispatcher)
    for job in scheduler.get_jobs():
        job.modify(next_run_time=None)  # paused: each run is asked for by the test
    scheduler.start()
    yield scheduler
    scheduler.shutdown(wait=False)


async def run_every_job(scheduler: AsyncIOScheduler, times: int = 1) -> None:
    """Run each job ``times`` times, one after the other, waiting for each to end."""
    ended: asyncio.Queue[str] = asyncio.Queue()

    def listener(event: JobExecutionEvent) -> None:
        ended.put_nowait(event.job_id)

    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    try:
        for _ in range(times):
            for job in scheduler.get_jobs():
                job.modify(next_run_time=utcnow())
                while await asyncio.wait_for(ended.get(), 30) != job.id:
                    pass
                job.modify(next_run_time=None)
    finally:
        scheduler.remove_listener(listener)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.INFO and r.name.split(".")[0] in ("visio", "apscheduler")]


async def test_idle_jobs_log_nothing(
        world: World, scheduler: AsyncIOScheduler, scheduler_logger: None,
        caplog: pytest.LogCaptureFixture) -> None:
    """Three runs of every job with nothing due, nothing to fetch, nothing to purge, at
    INFO: not one line, neither from the jobs nor from APScheduler."""
    caplog.set_level(logging.INFO)
    quiet_scheduler("INFO")
    await run_every_job(scheduler, times=3)
    assert lines(caplog) == []


async def test_a_job_that_did_something_says_how_much_once(
        world: World, scheduler: AsyncIOScheduler, scheduler_logger: None,
        caplog: pytest.LogCaptureFixture) -> None:
    """After a booking the dispatch logs one line with what it did; a day later the purge
    says how many idempotency keys it forgot; the next runs, idle, say nothing."""
    caplog.set_level(logging.INFO)
    quiet_scheduler("INFO")
    await world.book()
    await run_every_job(scheduler)
    dispatched = [line for line in lines(caplog) if line.startswith("visio.notify: ")]
    assert len(dispatched) == 1
    assert dispatched[0].startswith("visio.notify: dispatched ")
    assert "sent " in dispatched[0]
    assert len(lines(caplog)) == 1

    caplog.clear()
    world.clock.advance(timedelta(hours=25).total_seconds())
    await run_every_job(scheduler)
    assert "visio.jobs: purge_idempotency_keys purged 1 row(s)" in lines(caplog)

    caplog.clear()
    await run_every_job(scheduler, times=2)
    assert lines(caplog) == []


async def test_apschedulers_own_lines_come_back_at_debug(
        world: World, scheduler: AsyncIOScheduler, scheduler_logger: None,
        caplog: pytest.LogCaptureFixture) -> None:
    """VISIO_LOG_LEVEL=DEBUG gives back "Running job" and "executed successfully"."""
    caplog.set_level(logging.INFO)
    quiet_scheduler("DEBUG")
    await run_every_job(scheduler)
    said = "\n".join(lines(caplog))
    assert "Running job" in said
    assert "executed successfully" in said


async def test_a_job_outlasting_its_interval_logs_no_skipped_runs(
        scheduler_logger: None, caplog: pytest.LogCaptureFixture) -> None:
    """A run longer than the job's interval (a loaded machine, a slow SMTP server): the
    ticks that fall during it are skipped without a line ("maximum number of running
    instances reached" is APScheduler's, at DEBUG only); the run itself says what it did."""
    caplog.set_level(logging.INFO)
    quiet_scheduler("INFO")
    release = asyncio.Event()
    skipped: asyncio.Queue[str] = asyncio.Queue()
    log = logging.getLogger("visio.notify")

    async def slow_job() -> None:
        await release.wait()
        log.info("dispatched 1: sent 1")

    scheduler = AsyncIOScheduler()
    scheduler.add_job(slow_job, "interval", seconds=0.05, id="slow", next_run_time=utcnow())
    scheduler.add_listener(lambda event: skipped.put_nowait(event.job_id),
                           EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        for _ in range(3):  # three ticks fell while the run went on
            assert await asyncio.wait_for(skipped.get(), 30) == "slow"
        scheduler.pause()
        release.set()
        for _ in range(600):  # polls the log, at most 30 s
            if lines(caplog):
                break
            await asyncio.sleep(0.05)
    finally:
        scheduler.shutdown(wait=False)
    assert lines(caplog) == ["visio.notify: dispatched 1: sent 1"]
