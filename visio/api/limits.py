"""Limits on expensive operations (wide slot searches), so one caller cannot slow everyone.

Two guards, both per process (each instance behind a load balancer has its own):

- a token bucket per user id: ``per_minute`` tokens, refilled evenly over a minute, so a
  user may burst up to ``per_minute`` searches and then run one every ``60 / per_minute``
  seconds; an empty bucket is a 429 whose Retry-After is when the next token arrives;
- ``concurrency`` places across all users, shared fairly: one user holds at most
  ``concurrency - 1`` of them (all of them when there is one), so another user's search
  finds a place free however hard one user floods; a search without a place waits in its
  user's own line, and a freed place goes to the waiting user holding the fewest places
  (the longest waiting among equals), never first come first served across users. A
  search waits at most ``max_wait`` seconds, then gets a 429 with Retry-After 1 (and its
  token back).

Use ``async with limits.expensive(principal.user_id): ...`` around the search.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
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


class FairPlaces:
    """``places`` places shared between callers: at most ``per_caller`` each, and a freed
    place goes to the waiting caller holding the fewest (then the one waiting longest)."""

    def __init__(self, places: int, per_caller: int) -> None:
        self.free = places
        self.per_caller = per_caller
        self._held: dict[str, int] = {}
        self._lines: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._order = itertools.count()

    def held(self, caller: str) -> int:
        """Places ``caller`` holds now."""
        return self._held.get(caller, 0)

    def waiting(self, caller: str) -> int:
        """Searches of ``caller`` waiting for a place."""
        return sum(1 for _, future in self._lines.get(caller, ()) if not future.done())

    def try_take(self, caller: str) -> bool:
        """Take a place now if one is free for ``caller`` and none of its own waits."""
        if self.free > 0 and self.held(caller) < self.per_caller and not self._lines.get(caller):
            self._grant(caller)
            return True
        return False

    async def take(self, caller: str, max_wait: float) -> None:
        """A place for ``caller`` within ``max_wait`` seconds; TimeoutError if none came."""
        if self.try_take(caller):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._lines.setdefault(caller, deque())
        entry = (next(self._order), future)
        line.append(entry)
        try:
            async with asyncio.timeout(max_wait):
                await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.give_back(caller)  # granted just as the wait ended: pass it on
            else:
                future.cancel()
                self._drop(caller, entry)
            raise

    def give_back(self, caller: str) -> None:
        """Free a place ``caller`` held, for the caller the fairest to have it."""
        left = self._held.get(caller, 0) - 1
        if left > 0:
            self._held[caller] = left
        else:
            self._held.pop(caller, None)
        self.free += 1
        self._hand_out()

    def _grant(self, caller: str) -> None:
        self.free -= 1
        self._held[caller] = self._held.get(caller, 0) + 1

    def _drop(self, caller: str, entry: tuple[int, asyncio.Future[None]]) -> None:
        line = self._lines.get(caller)
        if line is None:
            return
        if entry in line:
            line.remove(entry)
        if not line:
            del self._lines[caller]

    def _hand_out(self) -> None:
        while self.free > 0:
            ready = [(self.held(caller), line[0][0], caller)
                     for caller, line in self._lines.items()
                     if line and self.held(caller) < self.per_caller]
            if not ready:
                return
            _, _, caller = min(ready)
            line = self._lines[caller]
            _, future = line.popleft()
            if not line:
                del self._lines[caller]
            if future.done():  # its wait ended meanwhile
                continue
            self._grant(caller)
            future.set_result(None)


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
        self.places = FairPlaces(concurrency, max(1, concurrency - 1))

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
            await self._enter(user_id)
        except TooManyRequests:
            self._give_back(user_id)
            raise
        try:
            yield
        finally:
            self.places.give_back(user_id)

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

    async def _enter(self, user_id: str) -> None:
        try:
            await self.places.take(user_id, self.max_wait)
        except TimeoutError as err:
            raise TooManyRequests(
                _("The server is busy with other searches; try again in a moment."),
                retry_after=1,
            ) from err
