"""Expensive operations are limited per user (a rate) and per process (a concurrency bound)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from visio.api.limits import ExpensiveLimits
from visio.errors import TooManyRequests
from visio.settings import Settings


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def run(limits: ExpensiveLimits, user_id: str) -> int | None:
    """None if the operation ran, else the Retry-After of the refusal."""
    try:
        async with limits.expensive(user_id):
            return None
    except TooManyRequests as err:
        return err.retry_after


async def test_a_user_may_burst_to_the_rate_then_waits_for_the_next_token() -> None:
    clock = FakeClock()
    limits = ExpensiveLimits(per_minute=6, concurrency=4, max_wait=0, clock=clock)
    assert [await run(limits, "agent-1") for _ in range(7)] == [None] * 6 + [10]
    clock.now += 9
    assert await run(limits, "agent-1") == 1
    clock.now += 1
    assert await run(limits, "agent-1") is None
    assert await run(limits, "agent-1") == 10


async def test_one_users_searches_do_not_spend_anothers_budget() -> None:
    limits = ExpensiveLimits(per_minute=2, concurrency=4, max_wait=0, clock=FakeClock())
    assert [await run(limits, "busy") for _ in range(3)] == [None, None, 30]
    assert await run(limits, "other") is None


async def test_past_the_concurrency_bound_a_caller_is_refused_with_retry_after_1() -> None:
    limits = ExpensiveLimits(per_minute=3, concurrency=2, max_wait=0, clock=FakeClock())
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(limits.expensive("a"))
        await stack.enter_async_context(limits.expensive("b"))
        assert await run(limits, "c") == 1
        assert await run(limits, "c") == 1
    # Refusals for lack of room gave the token back: "c" has its whole budget.
    assert [await run(limits, "c") for _ in range(4)] == [None, None, None, 20]


async def test_a_waiting_caller_runs_as_soon_as_a_place_frees() -> None:
    limits = ExpensiveLimits(per_minute=10, concurrency=1, max_wait=60, clock=FakeClock())
    ran = asyncio.Event()

    async def waiter() -> None:
        async with limits.expensive("second"):
            ran.set()

    async with AsyncExitStack() as stack:
        await stack.enter_async_context(limits.expensive("first"))
        task = asyncio.create_task(waiter())
        await asyncio.sleep(0)  # one loop turn: the waiter is now queued on the semaphore
        assert not ran.is_set()
    await asyncio.wait_for(task, timeout=5)
    assert ran.is_set()


async def test_a_failing_operation_gives_its_place_back() -> None:
    limits = ExpensiveLimits(per_minute=10, concurrency=1, max_wait=0, clock=FakeClock())
    with pytest.raises(ZeroDivisionError):
        async with limits.expensive("a"):
            1 / 0  # noqa: B018
    assert await run(limits, "b") is None


async def test_idle_users_are_forgotten_so_memory_stays_bounded() -> None:
    clock = FakeClock()
    limits = ExpensiveLimits(per_minute=60, concurrency=4, max_wait=0, clock=clock)
    for n in range(3000):
        assert await run(limits, f"user-{n}") is None
    clock.now += 60  # every bucket is full again
    assert await run(limits, "late") is None
    assert len(limits._buckets) == 1


def test_limits_come_from_the_settings() -> None:
    settings = Settings.from_env({"VISIO_SEARCH_RATE_PER_MINUTE": "30",
                                  "VISIO_SEARCH_CONCURRENCY": "2",
                                  "VISIO_SEARCH_MAX_WAIT_SECONDS": "0.5"})
    limits = ExpensiveLimits.from_settings(settings)
    assert (limits.per_minute, limits.concurrency, limits.max_wait) == (30, 2, 0.5)
    with pytest.raises(ValueError, match="at least 1"):
        ExpensiveLimits(per_minute=0, concurrency=1, max_wait=1)
