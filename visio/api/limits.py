"""Limits on expensive operations (wide slot searches), so one caller cannot slow everyone.

Two guards, both per process (each instance behind a load balancer has its own):

- a token bucket per user id: ``per_minute`` tokens, refilled evenly over a minute, so a
  user may burst up to ``per_minute`` searches and then run one every ``60 / per_minute``
  seconds; an empty bucket is a 429 whose Retry-After is when the next token arrives;
- a semaphore of ``concurrency`` places across all users: a search waits in line for at
  most ``max_wait`` seconds, then gets a 429 with Retry-After 1 (and its token back).

Use ``async with limits.expensive(principal.user_id): ...`` around the search.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from visio.domain.messages import _
from visio.errors import TooManyRequests
from visio.settings import Settings

# Once a minute, buckets that are full again (idle users) are dropped: full is the default.
_PRUNE_EVERY = 60.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class ExpensiveLimits:
    """A per-user rate and a process-wide bound on concurrent expensive operations."""

    def __init__(
        self, *, per_minute: int, concurrency: int, max_wait: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or concurrency < 1 or max_wait < 0:
            raise ValueError("per_minute and concurrency must be at least 1, max_wait >= 0")
        self.per_minute = per_minute
        self.concurrency = concurrency
        self.max_wait = max_wait
        self._clock = clock
        self._rate = per_minute / 60.0
        self._buckets: dict[str, _Bucket] = {}
        self._pruned_at = clock()
        self._places = asyncio.Semaphore(concurrency)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.monotonic
    ) -> ExpensiveLimits:
        """The limits set by the ``VISIO_SEARCH_*`` settings."""
        return cls(per_minute=settings.search_rate_per_minute,
                   concurrency=settings.search_concurrency,
                   max_wait=settings.search_max_wait_seconds, clock=clock)

    @asynccontextmanager
    async def expensive(self, user_id: str) -> AsyncIterator[None]:
        """Run the body within ``user_id``'s rate and a free place; TooManyRequests if not."""
        self._take(user_id)
        try:
            await self._enter()
        except TooManyRequests:
            self._give_back(user_id)
            raise
        try:
            yield
        finally:
            self._places.release()

    def _take(self, user_id: str) -> None:
        now = self._clock()
        if now - self._pruned_at >= _PRUNE_EVERY:
            self._prune(now)
        bucket = self._refilled(user_id, now)
        if bucket.tokens < 1:
            wait = math.ceil((1 - bucket.tokens) / self._rate)
            raise TooManyRequests(
                _("Too many searches in a short time; wait a moment before searching again."),
                retry_after=max(1, wait),
            )
        bucket.tokens -= 1

    def _give_back(self, user_id: str) -> None:
        bucket = self._buckets.get(user_id)
        if bucket is not None:
            bucket.tokens = min(float(self.per_minute), bucket.tokens + 1)

    def _refilled(self, user_id: str, now: float) -> _Bucket:
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = _Bucket(tokens=float(self.per_minute), at=now)
            return bucket
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(float(self.per_minute), bucket.tokens + elapsed * self._rate)
        bucket.at = now
        return bucket

    def _prune(self, now: float) -> None:
        full = [user_id for user_id, bucket in self._buckets.items()
                if bucket.tokens + max(0.0, now - bucket.at) * self._rate >= self.per_minute]
        for user_id in full:
            del self._buckets[user_id]
        self._pruned_at = now

    async def _enter(self) -> None:
        if not self._places.locked():
            await self._places.acquire()
            return
        try:
            async with asyncio.timeout(self.max_wait):
                await self._places.acquire()
        except TimeoutError as err:
            raise TooManyRequests(
                _("The server is busy with other searches; try again in a moment."),
                retry_after=1,
            ) from err
