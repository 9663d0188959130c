"""The steady load of the fleet test, through nginx: slot searches, bookings with an
Idempotency-Key (retried with the same key until a final answer), reads and cancels.

Every answer is counted by phase (the fault being played) and status; a connection error
counts as status 0. A booking whose answer was lost (0, 502, 503, 504, or 409 "request in
flight") is retried with the same key and body until it is booked or refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp

from visio.clock import utcnow

RETRYABLE = {0, 502, 503, 504}


@dataclass
class Agent:
    headers: dict[str, str]
    site_ids: list[str]


@dataclass
class Booking:
    key: str
    body: dict[str, Any]
    headers: dict[str, str]
    attempts: int = 0


@dataclass
class Load:
    """A fixed number of loops, each pacing its requests."""

    url: str
    agents: list[Agent]
    service_id: str
    theme: str
    phase: str = "warm-up"
    loops: int = 4
    pause: float = 0.05
    statuses: dict[str, Counter[tuple[str, int]]] = field(default_factory=dict)
    # (phase, answer) of each 5xx that was not problem+json (or a 503 without Retry-After)
    problems: list[tuple[str, str]] = field(default_factory=list)
    booked: dict[str, str] = field(default_factory=dict)  # key -> appointment id (201)
    refused: dict[str, int] = field(default_factory=dict)  # key -> final 4xx
    retrying: dict[str, Booking] = field(default_factory=dict)
    retried_keys: set[str] = field(default_factory=set)
    refusal_samples: list[str] = field(default_factory=list)
    phones: dict[str, str] = field(default_factory=dict)  # key -> usager phone
    live: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None

    def count(self, kind: str, status: int) -> None:
        self.statuses.setdefault(self.phase, Counter())[(kind, status)] += 1

    def failures(self, phase: str, *, allow: frozenset[int] = frozenset()) -> int:
        """Answers of that phase that failed (5xx or no answer), except ``allow``."""
        return sum(n for (_, status), n in self.statuses.get(phase, Counter()).items()
                   if (status == 0 or status >= 500) and status not in allow)

    def total(self, phase: str) -> int:
        return sum(self.statuses.get(phase, Counter()).values())

    def summary(self, phase: str) -> str:
        counts: Counter[int] = Counter()
        for (_, status), n in self.statuses.get(phase, Counter()).items():
            counts[status] += n
        return " ".join(f"{s or 'conn'}:{n}" for s, n in sorted(counts.items()))

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=40))
        self._tasks = [asyncio.create_task(self._loop(n)) for n in range(self.loops)]
        self._tasks.append(asyncio.create_task(self._retry_loop()))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def settle(self, within: float = 120.0) -> None:
        """Until every booking retried has a final answer."""
        deadline = time.monotonic() + within
        while self.retrying:
            assert time.monotonic() < deadline, f"{len(self.retrying)} bookings unsettled"
            await self._retry_all()
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ requests

    async def _request(self, kind: str, method: str, path: str, **kw: Any
                       ) -> tuple[int, Any]:
        assert self._session is not None
        try:
            async with self._session.request(method, self.url + path, **kw) as response:
                text = await response.text()
                status = response.status
                if status >= 500 and (
                        "application/problem+json" not in response.headers.get(
                            "Content-Type", "")
                        or (status == 503 and "Retry-After" not in response.headers)):
                    self.problems.append((self.phase, f"{kind} {status} {text[:80]!r}"))
        except (aiohttp.ClientError, TimeoutError):
            status, text = 0, ""
        self.count(kind, status)
        body: Any = None
        if text:
            with contextlib.suppress(ValueError):
                import json
                body = json.loads(text)
        return status, body

    async def _loop(self, n: int) -> None:
        rng = random.Random(n)
        while not self._stop.is_set():
            agent = self.agents[rng.randrange(len(self.agents))]
            roll = rng.random()
            if roll < 0.70:
                await self._search(agent, rng)
            elif roll < 0.80:
                await self._book(agent, rng)
            elif roll < 0.95:
                await self._read(agent, rng)
            else:
                await self._cancel(rng)
            await asyncio.sleep(self.pause)

    async def _search(self, agent: Agent, rng: random.Random) -> list[dict[str, Any]]:
        # Soon: notices of appointments starting before the quiet hours end go at once,
        # so the dispatcher has work whatever the hour of the run.
        start = utcnow() + timedelta(minutes=15 + rng.randrange(0, 30))
        status, body = await self._request("search", "GET", "/api/v1/slots", headers=agent.headers,
                                           params={"site_id": rng.choice(agent.site_ids),
                                                   "theme": self.theme,
                                                   "from": start.isoformat(),
                                                   "to": (start + timedelta(hours=2)).isoformat()})
        if status == 200 and isinstance(body, dict):
            return list(body.get("items", []))
        return []

    async def burst(self, n: int, *, soon: bool = False) -> None:
        """``n`` bookings at once (to have some in flight when a fault strikes); ``soon``:
        each on the first free slot (its messages are due at once, quiet hours or not)."""
        rng = random.Random(len(self.phones))
        await asyncio.gather(*(self._book(self.agents[i % len(self.agents)], rng, soon=soon)
                               for i in range(n)))

    async def _book(self, agent: Agent, rng: random.Random, *, soon: bool = False) -> None:
        site_id = rng.choice(agent.site_ids)
        slots = await self._search(Agent(agent.headers, [site_id]), rng)
        if not slots:
            return
        slot = slots[0] if soon else rng.choice(slots[:8])
        key = secrets.token_hex(8)
        # 06 1x xx xx xx: metropolitan mobiles (0639 and 069x belong to the overseas
        # départements, which a French phone number refuses).
        phone = f"+3361{rng.randrange(10**7):07d}"
        body = {"site_id": site_id, "service_id": self.service_id, "start": slot["start"],
                "usager": {"first_name": "Jeanne", "last_name": "Martin", "phone": phone,
                           "email": f"u{key}@example.fr", "language": "fr", "consent": True}}
        booking = Booking(key=key, body=body, headers=agent.headers)
        self.phones[key] = phone
        await self._send_booking(booking)

    async def _send_booking(self, booking: Booking) -> None:
        booking.attempts += 1
        status, answer = await self._request(
            "book", "POST", "/api/v1/appointments", json=booking.body,
            headers={**booking.headers, "Idempotency-Key": booking.key})
        in_flight = status == 409 and isinstance(answer, dict) and \
            str(answer.get("type", "")).endswith("request-in-flight")
        if status in RETRYABLE or in_flight:
            self.retrying[booking.key] = booking
            self.retried_keys.add(booking.key)
            return
        self.retrying.pop(booking.key, None)
        if status == 201 and isinstance(answer, dict):
            self.booked[booking.key] = str(answer["id"])
            self.live.append((str(answer["id"]), booking.headers))
        else:
            self.refused[booking.key] = status
            if len(self.refusal_samples) < 3:
                self.refusal_samples.append(f"{status} {answer}")

    async def _retry_all(self) -> None:
        for booking in list(self.retrying.values()):
            await self._send_booking(booking)

    async def _retry_loop(self) -> None:
        while not self._stop.is_set():
            await self._retry_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    async def _read(self, agent: Agent, rng: random.Random) -> None:
        if self.live and rng.random() < 0.7:
            appointment_id, headers = rng.choice(self.live)
            await self._request("read", "GET", f"/api/v1/appointments/{appointment_id}",
                                headers=headers)
        else:
            await self._request("read", "GET", "/api/v1/appointments", headers=agent.headers,
                                params={"limit": "20"})

    async def _cancel(self, rng: random.Random) -> None:
        if len(self.live) < 5:
            return
        appointment_id, headers = self.live.pop(rng.randrange(len(self.live)))
        status, _ = await self._request(
            "cancel", "POST", f"/api/v1/appointments/{appointment_id}/cancel",
            json={"reason": "fleet"}, headers=headers)
        if status == 200:
            self.cancelled.add(appointment_id)
        elif status in RETRYABLE:
            self.live.append((appointment_id, headers))
