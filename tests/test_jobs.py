"""The purge jobs forget personal data on schedule: idempotency keys and login records."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import PASSWORD, make_site, make_user
from visio import jobs
from visio import models as m
from visio.db import Database
from visio.services import idempotency
from visio.services.idempotency import Claim, IdempotencyRequest

MakeClient = Callable[..., Awaitable[Client]]


async def count(db: Database, table: type[m.Base]) -> int:
    async with db.read() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_purges_are_scheduled_every_hour_without_overlapping() -> None:
    scheduler = AsyncIOScheduler()
    jobs.schedule_purges(scheduler, web.Application())
    scheduled = {job.name: job for job in scheduler.get_jobs()}
    assert set(scheduled) == {"purge_idempotency_keys", "purge_login_records",
                              "purge_retained", "purge_reset_requests"}
    for job in scheduled.values():
        assert job.trigger.interval == timedelta(hours=1)
        assert job.max_instances == 1
        assert job.coalesce


async def test_the_idempotency_purge_runs_on_the_apps_clock(
    db: Database, make_client: MakeClient,
) -> None:
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    request = IdempotencyRequest(user_id=agent.id, key="k", request_hash="h" * 64)
    assert isinstance(await idempotency.claim(db=db, request=request, now=DEFAULT_NOW), Claim)

    same_day = await make_client(DEFAULT_NOW + timedelta(hours=23))
    assert await jobs.purge_idempotency_keys(same_day.app) == 0
    next_day = await make_client(DEFAULT_NOW + timedelta(hours=24))
    assert await jobs.purge_idempotency_keys(next_day.app) == 1
    assert await count(db, m.IdempotencyKey) == 0


async def test_the_login_purge_keeps_failures_while_they_count(
    db: Database, make_client: MakeClient,
) -> None:
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    client = await make_client()
    for password in ("wrong", "wrong", PASSWORD):
        await client.post("/api/v1/auth/token", json={"email": agent.email, "password": password})
    await client.post("/api/v1/auth/token", json={"email": agent.email, "password": "wrong"})
    assert await count(db, m.LoginFailure) == 1

    assert await jobs.purge_login_records(client.app) == 0
    after_window = await make_client(DEFAULT_NOW + timedelta(minutes=15))
    assert await jobs.purge_login_records(after_window.app) == 1
    assert await count(db, m.LoginFailure) == 0


async def test_a_failing_purge_is_logged_and_the_job_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The scheduled wrapper logs the error and returns (the next run retries)."""
    scheduler = AsyncIOScheduler()
    jobs.schedule_purges(scheduler, web.Application())  # no database: every purge fails
    with caplog.at_level(logging.ERROR, logger="visio.jobs"):
        for job in scheduler.get_jobs():
            await job.func()
    # Only this logger: an earlier test may have lowered the root level (APScheduler's INFO).
    assert sorted(r.getMessage() for r in caplog.records if r.name == "visio.jobs") == [
        "purge_idempotency_keys failed", "purge_login_records failed",
        "purge_reset_requests failed", "purge_retained failed"]
