"""Expensive operations are limited per user (a rate) and per process (a concurrency bound)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (a bounded wait, never a guess)."""
    async with asyncio.timeout(10):
        while True:
            if condition():
                return
            await asyncio.sleep(0)


async def test_a_flooding_user_never_holds_every_place_nor_jumps_the_others() -> None:
    """Agent A floods: it holds at most concurrency - 1 places and the rest of its searches
    wait in its own line. Agent B finds the last place free at once; agent C, arriving
    while every place is taken, gets the next freed place before A's waiting searches."""
    limits = ExpensiveLimits(per_minute=1000, concurrency=4, max_wait=60, clock=FakeClock())
    places = limits.places
    gates = [asyncio.Event() for _ in range(13)]
    order: list[str] = []

    async def search(user: str, gate: asyncio.Event) -> None:
        async with limits.expensive(user):
            order.append(user)
            await gate.wait()

    flood = [asyncio.create_task(search("A", gate)) for gate in gates]
    try:
        await _until(lambda: places.held("A") == 3 and places.waiting("A") == 10)
        b_gate, c_gate = asyncio.Event(), asyncio.Event()
        b = asyncio.create_task(search("B", b_gate))
        await _until(lambda: places.held("B") == 1)
        assert places.waiting("A") == 10
        assert places.free == 0
        c = asyncio.create_task(search("C", c_gate))
        await _until(lambda: places.waiting("C") == 1)
        # One of A's searches ends: its place goes to C, not to A's next one.
        gates[0].set()
        await _until(lambda: "C" in order)
        assert places.held("C") == 1
        assert places.held("A") == 2
        assert places.waiting("A") == 10
        assert order == ["A"] * 3 + ["B", "C"]
        b_gate.set()
        c_gate.set()
        for gate in gates:
            gate.set()
        await asyncio.gather(b, c, *flood)
    finally:
        for task in flood:
            task.cancel()
    assert order.count("A") == 13
    assert (places.free, places.held("A"), places.waiting("A")) == (4, 0, 0)


async def test_a_search_that_stops_waiting_gives_its_turn_away() -> None:
    """A waiting search that times out (429) or is cancelled leaves the line; the place
    freed later goes to the next one."""
    limits = ExpensiveLimits(per_minute=1000, concurrency=1, max_wait=60, clock=FakeClock())
    places = limits.places
    gate = asyncio.Event()

    async def holder() -> None:
        async with limits.expensive("A"):
            await gate.wait()

    held = asyncio.create_task(holder())
    await _until(lambda: places.held("A") == 1)
    gone = asyncio.create_task(run(limits, "B"))
    stays = asyncio.create_task(run(limits, "C"))
    await _until(lambda: places.waiting("B") == 1 and places.waiting("C") == 1)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert places.waiting("B") == 0
    gate.set()
    await held
    assert await stays is None
    assert places.free == 1
