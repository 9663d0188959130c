"""The webhook sender: delivers ``webhook_deliveries`` after commit, in order per endpoint.

Each round claims, for every active endpoint, its oldest pending delivery (by ``seq``,
the writing order) if that one is due, and the next ones behind it (a run of up to
``RUN_LENGTH``), sent one after the other: an endpoint's later events wait behind a
failing one, so a receiver never sees a cancellation before the booking it cancels. Claims take
a lease (``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) and every mark checks
it, so two senders never deliver one event at once; a sender that dies after the
receiver accepted and before the mark lets the event go again once the lease runs out
(receivers de-duplicate by ``webhook-id``). From our side an event id is delivered at
most once: a delivered row is never sent again.

Signing follows Standard Webhooks (the ``standardwebhooks`` package): ``webhook-id``,
``webhook-timestamp`` (the attempt's wall-clock second) and ``webhook-signature`` with
one ``v1,`` signature per valid secret (two during a rotation). Addresses are checked
again at connection time (``visio.calendars.fetch.GuardedResolver``) and redirects are
not followed.

Outcomes: 2xx delivered; 410 disables the endpoint (``gone``); anything else (another
status, a refused connection, a timeout) is retried with doubling backoff, and an
endpoint failing with no success for ``webhook_disable_after_seconds`` is disabled
(``failing``); its pending events wait for an administrator to enable it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from visio import models as m
from visio.calendars.fetch import client_session
from visio.clock import utcnow
from visio.db import Database
from visio.domain.reminders import backoff
from visio.services import webhooks as w
from visio.settings import Settings

log = logging.getLogger("visio.webhooks")
USER_AGENT = "visio-webhooks/1"
#: Deliveries of one endpoint claimed together (sent one after the other, in order).
RUN_LENGTH = 20


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed under ``lease``, with what signing it needs."""

    id: str
    event_id: str
    endpoint_id: str
    url: str
    payload: str
    attempts: int
    secrets: tuple[str, ...]
    failing_since: datetime | None
    lease: str


def signature_headers(*, event_id: str, payload: str, secrets_: tuple[str, ...],
                      at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    signatures = " ".join(Webhook(s).sign(msg_id=event_id, timestamp=at, data=payload)
                          for s in secrets_)
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures, "Content-Type": "application/json",
            "User-Agent": USER_AGENT}


class WebhookSender:
    """Delivers what is due; one instance per process."""

    def __init__(self, *, db: Database, settings: Settings,
                 clock: Callable[[], datetime] = utcnow,
                 wall: Callable[[], datetime] = utcnow, owner: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        # The signature's timestamp is the real time of the attempt (receivers check it
        # against theirs), whatever clock schedules the deliveries.
        self.wall = wall
        self.owner = owner or f"{os.getpid()}-{secrets.token_hex(6)}"
        self.cipher = w.secrets_cipher(settings.secret_key)
        self._session: aiohttp.ClientSession | None = None

    @property
    def lease(self) -> timedelta:
        """How long a claim holds a delivery: its timeout and a margin."""
        return timedelta(seconds=self.settings.webhook_timeout_seconds + 30)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = client_session(allow_private=self.settings.webhook_allow_private)
        return self._session

    async def claim(self, now: datetime) -> list[Claimed]:
        """Lease, for each active endpoint whose oldest pending delivery is due, that one
        and up to ``RUN_LENGTH`` - 1 of the next (never attempted: they waited behind it),
        in ``seq`` order per endpoint."""
        token = f"{self.owner}:{secrets.token_hex(6)}"
        d, e = m.WebhookDelivery, m.WebhookEndpoint
        # Each endpoint's head of line, in one pass over the (endpoint, status, seq) index.
        head = (sa.select(d.endpoint_id.label("endpoint_id"), sa.func.min(d.seq).label("seq"))
                .where(d.status == w.PENDING).group_by(d.endpoint_id).subquery())
        async with self.db.write() as session:
            pick = (sa.select(d.id, d.endpoint_id)
                    .join(head, sa.and_(head.c.endpoint_id == d.endpoint_id,
                                        head.c.seq == d.seq))
                    .join(e, e.id == d.endpoint_id)
                    .where(d.status == w.PENDING, e.disabled_at.is_(None),
                           e.deleted_at.is_(None),
                           # A new event is due at once (its stamp may be a tick ahead).
                           sa.or_(d.attempts == 0, d.next_attempt_at <= now),
                           sa.or_(d.lease_until.is_(None), d.lease_until <= now))
                    .order_by(d.next_attempt_at, d.seq, d.id)
                    .limit(max(1, self.settings.webhook_concurrency) * 2))
            if self.db.dialect == "postgresql":
                pick = pick.with_for_update(skip_locked=True, of=d)
            ids: list[str] = []
            seen: set[str] = set()
            for delivery_id, endpoint_id in (await session.execute(pick)).all():
                if endpoint_id not in seen:  # one at a time per endpoint: its order holds
                    seen.add(endpoint_id)
                    ids.append(delivery_id)
            ids = ids[:max(1, self.settings.webhook_concurrency)]
            if not ids:
                return []
            # The heads' endpoints: their next pending deliveries follow in one claim (the
            # head is leased by this transaction, so no other sender reaches them).
            heads = sa.select(d.endpoint_id).where(d.id.in_(ids))
            ranked = (sa.select(d.id.label("id"), sa.func.row_number().over(
                partition_by=d.endpoint_id, order_by=d.seq).label("rank"))
                .where(d.endpoint_id.in_(heads), d.status == w.PENDING).subquery())
            run = sa.select(ranked.c.id).where(ranked.c.rank <= RUN_LENGTH)
            ids = list({*ids, *(await session.scalars(run)).all()})
            await session.execute(
                sa.update(d).where(d.id.in_(ids))
                .values(lease_owner=token, lease_until=now + self.lease,
                        attempts=d.attempts + 1)
                .execution_options(synchronize_session=False))
            rows = (await session.execute(
                sa.select(d, e).join(e, e.id == d.endpoint_id).where(d.id.in_(ids))
                .order_by(d.endpoint_id, d.seq))).all()
        claimed = []
        for delivery, endpoint in rows:
            keys = [w.unseal(self.cipher, endpoint.secret)]
            if endpoint.previous_secret and endpoint.previous_until is not None \
                    and endpoint.previous_until > now:
                keys.append(w.unseal(self.cipher, endpoint.previous_secret))
            claimed.append(Claimed(
                id=delivery.id, event_id=delivery.event_id, endpoint_id=endpoint.id,
                url=endpoint.url, payload=delivery.payload, attempts=delivery.attempts,
                secrets=tuple(keys), failing_since=endpoint.failing_since, lease=token))
        return claimed

    async def run_once(self) -> int:
        """One round: claim, then deliver each endpoint's run in order (endpoints side by
        side); how many deliveries were attempted."""
        claimed = await self.claim(self.clock())
        runs: dict[str, list[Claimed]] = {}
        for c in claimed:
            runs.setdefault(c.endpoint_id, []).append(c)
        attempted = await asyncio.gather(*(self._deliver_run(run) for run in runs.values()))
        return sum(attempted)

    async def _deliver_run(self, run: list[Claimed]) -> int:
        """One endpoint's claimed deliveries, one after the other, each marked as soon as
        it is answered (a sender that dies repeats one event at most); the run stops at
        the first failure, or when the lease could end before another attempt would,
        and what it did not attempt is released as it was."""
        started = time.monotonic()
        attempted = 0
        failing_since = run[0].failing_since
        for c in run:
            if attempted and time.monotonic() - started > self.settings.webhook_timeout_seconds:
                break
            attempted += 1
            if not await self._deliver(dataclasses.replace(c, failing_since=failing_since)):
                break
            failing_since = None  # a success ends the endpoint's failing spell
        if attempted < len(run):
            await self._release(run[attempted:])
        return attempted

    async def _release(self, rest: list[Claimed]) -> None:
        d = m.WebhookDelivery
        try:
            async with self.db.write() as session:
                await session.execute(
                    sa.update(d).where(d.id.in_([c.id for c in rest]),
                                       d.lease_owner == rest[0].lease, d.status == w.PENDING)
                    .values(lease_owner=None, lease_until=None, attempts=d.attempts - 1)
                    .execution_options(synchronize_session=False))
        except Exception as err:
            # Their lease runs out and they are claimed again.
            log.error("webhook release: %s", type(err).__name__)

    async def drain(self, *, max_rounds: int = 1000) -> int:
        """Rounds until nothing is due (or ``max_rounds``); attempts in all."""
        total = 0
        for _ in range(max_rounds):
            count = await self.run_once()
            total += count
            if count == 0:
                break
        return total

    async def _post(self, c: Claimed) -> tuple[int | None, str | None, int]:
        headers = signature_headers(event_id=c.event_id, payload=c.payload,
                                    secrets_=c.secrets, at=self.wall())
        started = time.monotonic()
        try:
            async with self._http().post(
                    c.url, data=c.payload.encode(), headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=self.settings.webhook_timeout_seconds)) as response:
                await response.content.read(4096)  # a little of the answer, then close
                status: int | None = response.status
                error = None
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            status, error = None, type(err).__name__
        return status, error, int((time.monotonic() - started) * 1000)

    async def _deliver(self, c: Claimed) -> bool:
        """Post and mark one delivery; whether the receiver accepted it."""
        try:
            status, error, latency = await self._post(c)
            await self._record(c, status=status, error=error, latency=latency)
        except Exception as err:
            # The lease runs out and the delivery is claimed again.
            log.error("webhook %s: %s", c.id, type(err).__name__)
            return False
        return status is not None and 200 <= status < 300

    async def _record(self, c: Claimed, *, status: int | None, error: str | None,
                      latency: int) -> None:
        now = self.clock()
        d, e = m.WebhookDelivery, m.WebhookEndpoint
        held = sa.and_(d.id == c.id, d.lease_owner == c.lease, d.status == w.PENDING)
        ok = status is not None and 200 <= status < 300
        if error is None and not ok:
            error = f"http {status}"
        async with self.db.write() as session:
            session.add(m.WebhookAttempt(delivery_id=c.id, endpoint_id=c.endpoint_id,
                                         at=now, status_code=status, latency_ms=latency,
                                         error=error))
            done: dict[str, object] = {"lease_owner": None, "lease_until": None,
                                       "last_status": status, "last_error": error}
            if ok:
                await session.execute(sa.update(d).where(held).values(
                    status=w.DELIVERED, finished_at=now, **done)
                    .execution_options(synchronize_session=False))
                await session.execute(sa.update(e).where(e.id == c.endpoint_id)
                                      .values(failing_since=None)
                                      .execution_options(synchronize_session=False))
                return
            if status == 410:
                await session.execute(sa.update(d).where(held).values(
                    status=w.ABANDONED, finished_at=now, **done)
                    .execution_options(synchronize_session=False))
                await self._disable(session, c.endpoint_id, w.GONE, now)
                return
            wait = backoff(c.attempts, base=self.settings.webhook_retry_seconds,
                           cap=self.settings.webhook_retry_max_seconds)
            await session.execute(sa.update(d).where(held).values(
                next_attempt_at=now + wait, **done)
                .execution_options(synchronize_session=False))
            since = c.failing_since or now
            await session.execute(sa.update(e).where(e.id == c.endpoint_id,
                                                     e.failing_since.is_(None))
                                  .values(failing_since=now)
                                  .execution_options(synchronize_session=False))
            if now - since >= timedelta(seconds=self.settings.webhook_disable_after_seconds):
                await self._disable(session, c.endpoint_id, w.FAILING, now)

    @staticmethod
    async def _disable(session: AsyncSession, endpoint_id: str, reason: str,
                       now: datetime) -> None:
        e = m.WebhookEndpoint
        await session.execute(sa.update(e).where(e.id == endpoint_id,
                                                 e.disabled_at.is_(None))
                              .values(disabled_at=now, disabled_reason=reason)
                              .execution_options(synchronize_session=False))
        log.warning("webhook endpoint %s disabled (%s)", endpoint_id, reason)

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()


def schedule_webhooks(scheduler: AsyncIOScheduler, sender: WebhookSender) -> None:
    """Add the sender's job to ``scheduler`` (one run at a time, missed runs merged)."""

    async def job() -> None:
        try:
            sent = await sender.drain()
        except Exception as err:
            log.error("webhook delivery failed: %s", type(err).__name__)
            return
        if sent:
            log.info("webhook attempts: %d", sent)

    scheduler.add_job(job, "interval", seconds=sender.settings.webhook_interval_seconds,
                      id="visio.notify.webhooks", name="webhooks", coalesce=True,
                      max_instances=1, replace_existing=True, next_run_time=utcnow())
