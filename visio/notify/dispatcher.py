"""The dispatcher: claims due outbox rows, checks them again, sends, records the outcome.

Run by APScheduler (``AsyncIOScheduler``, in-memory job store: the job is re-created by
every process at start, and the database, not the job store, decides who sends what).
``visio serve`` runs it beside the API; ``visio worker`` runs it alone. Any number of
dispatchers may run on PostgreSQL (``SKIP LOCKED`` claims with a lease); on SQLite the
claims are serialised by the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from visio.calendars.invitations import invitation_ics, load_invitation_facts
from visio.clock import utcnow
from visio.db import Database, database_for
from visio.domain import contact
from visio.domain import reminders as r
from visio.notify import account_mail, compose
from visio.notify.senders import (
    Gateway,
    HttpSms,
    LogSms,
    Mailer,
    Outcome,
    SmsGateway,
    build_email,
)
from visio.notify.webhooks import WebhookSender, schedule_webhooks
from visio.services import outbox
from visio.settings import Settings
from visio.usager_link import LinkKey

log = logging.getLogger("visio.notify")


def sms_gateway(settings: Settings) -> SmsGateway:
    """The SMS adapter the settings name."""
    if settings.sms_adapter == "http":
        gateways = [Gateway(settings.sms_http_url, settings.sms_http_token)]
        if settings.sms_fallback_url:
            gateways.append(Gateway(settings.sms_fallback_url, settings.sms_fallback_token))
        return HttpSms(gateways)
    return LogSms()


def mailer(settings: Settings) -> Mailer | None:
    """The SMTP client, or None when no server is configured."""
    if not settings.smtp_host:
        return None
    return Mailer(host=settings.smtp_host, port=settings.smtp_port,
                  security=settings.smtp_security, username=settings.smtp_username,
                  password=settings.smtp_password)


class Dispatcher:
    """Sends what is due, once per claim, and records every outcome in the outbox."""

    def __init__(self, *, db: Database, settings: Settings,
                 clock: Callable[[], datetime] = utcnow, owner: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.owner = owner or f"{os.getpid()}-{secrets.token_hex(6)}"
        self.concurrency = max(1, settings.dispatch_concurrency)
        self._all_mailers = [c for c in (mailer(settings) for _ in range(self.concurrency))
                             if c is not None]
        self.mailers: asyncio.Queue[Mailer] = asyncio.Queue()
        for client in self._all_mailers:
            self.mailers.put_nowait(client)
        self.sms = sms_gateway(settings)
        self.links = LinkKey.from_secret(settings.secret_key)
        self.domain = urlsplit(settings.base_url).hostname or "visio.invalid"
        self._facts: dict[tuple[str, int], compose.Facts | None] = {}
        self._sent: dict[str, int] = {}
        self._held: set[str] = set()  # the batch's rows not settled yet, leases renewed
        #: What the last ``drain`` did with its rows: status (or "postponed") -> count.
        self.outcomes: Counter[str] = Counter()
        self._stopping = False
        self._draining: asyncio.Task[int] | None = None
        # Tokens of the batches a stop interrupted: their unsettled rows are given back.
        self._interrupted: set[str] = set()

    @property
    def lease(self) -> timedelta:
        """How long a claim or a renewal holds a row."""
        return timedelta(seconds=self.settings.dispatch_lease_seconds)

    async def run_once(self) -> int:
        """Claim one batch and settle every row of it; how many rows were claimed."""
        if self._stopping:
            return 0
        now = self.clock()
        claimed = await outbox.claim(db=self.db, owner=self.owner, now=now, lease=self.lease,
                                     limit=self.settings.dispatch_batch)
        if not claimed:
            return 0
        self._held = {row.id for row in claimed}
        renewing = asyncio.create_task(self._renew(claimed[0].lease))
        try:
            await self._settle_batch(claimed, now)
        finally:
            if self._stopping:
                self._interrupted.add(claimed[0].lease)
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            self._held = set()
        return len(claimed)

    async def send_account_mail(self) -> int:
        """Send the account e-mails due (reset links); how many rows were claimed."""
        if self._stopping:
            return 0
        client = await self.mailers.get() if self._all_mailers else None
        try:
            return await account_mail.send_due(db=self.db, settings=self.settings,
                                               mailer=client, now=self.clock())
        finally:
            if client is not None:
                self.mailers.put_nowait(client)

    async def _renew(self, lease: str) -> None:
        """Keep the batch's leases while it is worked on: a slow send must not let another
        dispatcher claim the rows still waiting their turn."""
        every = self.settings.dispatch_lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                kept = await outbox.renew(db=self.db, lease=lease, row_ids=sorted(self._held),
                                          now=self.clock(), duration=self.lease)
            except Exception as err:
                # The check before each send still fences; the next tick tries again.
                log.warning("lease renewal failed: %s", type(err).__name__)
                continue
            self._held &= kept

    async def _settle_batch(self, claimed: list[outbox.Claimed], now: datetime) -> None:
        self._facts.clear()
        # How many messages each recipient got in 24 h, read once per batch and counted on
        # as this batch sends.
        self._sent = await outbox.sent_recently(
            db=self.db, keys=[contact.cap_key(row.channel, row.recipient) for row in claimed
                              if row.audience == r.Audience.USAGER], now=now)
        if self.concurrency == 1:
            for row in claimed:
                await self._settle(row)
            return
        # Several sends at once, each on its own SMTP connection; a crash may then repeat
        # as many messages as were in flight.
        gate = asyncio.Semaphore(self.concurrency)

        async def settle(row: outbox.Claimed) -> None:
            async with gate:
                await self._settle(row)

        await asyncio.gather(*(settle(row) for row in claimed))

    async def drain(self, *, max_batches: int = 1000) -> int:
        """Run batches until nothing is due (or ``max_batches``); rows claimed in all."""
        total = 0
        self.outcomes = Counter()
        self._draining = asyncio.current_task()
        try:
            total += await self.send_account_mail()
            for _ in range(max_batches):
                count = await self.run_once()
                total += count
                if count == 0 or self._stopping:
                    break
        finally:
            self._draining = None
        return total

    async def stop(self, *, grace: float) -> int:
        """Stop: the sends under way end (within ``grace`` seconds, else they are cut), no
        other row is started, and the rows claimed but not settled are given back at once
        (another dispatcher takes them without waiting for the lease); how many."""
        self._stopping = True
        task = self._draining
        if task is not None and task is not asyncio.current_task():
            _, pending = await asyncio.wait([task], timeout=grace)
            if pending:
                task.cancel()
                await asyncio.wait([task])
        released = 0
        for lease in sorted(self._interrupted):
            released += await outbox.release(db=self.db, lease=lease)
        self._interrupted.clear()
        if released:
            log.info("dispatcher %s stopping: gave back %d row(s)", self.owner, released)
        return released

    async def _finish(self, row: outbox.Claimed, status: str, *, error: str | None = None,
                      reference: str | None = None) -> None:
        self.outcomes[status] += 1
        await outbox.finish(db=self.db, owner=row.lease, row_id=row.id, status=status,
                            now=self.clock(), error=error, reference=reference)

    async def _settle(self, row: outbox.Claimed) -> None:
        """Settle one row; whatever goes wrong with it stays with it."""
        if self._stopping:
            return  # left held: ``stop`` gives it back
        try:
            await self._settle_row(row)
        except Exception as err:
            # Only the type and the row: a traceback's message and frames may hold the
            # address, the number or the text.
            name = type(err).__name__
            log.error("outbox %s: %s while composing or sending", row.id, name)
            await self._give_up_or_retry(row, err)
        finally:
            self._held.discard(row.id)

    async def _give_up_or_retry(self, row: outbox.Claimed, err: Exception) -> None:
        try:
            if isinstance(err, OSError | TimeoutError) and \
                    row.attempts < self.settings.dispatch_max_attempts:
                await self._postpone(row, error=f"retry ({type(err).__name__})")
            else:
                await self._finish(row, outbox.FAILED,
                                   error=f"internal_error ({type(err).__name__})")
        except Exception as again:
            # The database is away too: the lease runs out and the row is claimed again.
            log.error("outbox %s: not recorded (%s)", row.id, type(again).__name__)

    async def _postpone(self, row: outbox.Claimed, *, error: str) -> None:
        wait = r.backoff(row.attempts, base=self.settings.dispatch_retry_seconds,
                         cap=self.settings.dispatch_retry_max_seconds)
        self.outcomes["postponed"] += 1
        await outbox.postpone(db=self.db, owner=row.lease, row_id=row.id,
                              until=self.clock() + wait, error=error)

    async def _recipient(self, row: outbox.Claimed) -> str | None:
        """Where the usager's row goes, checked again (older rows were not checked when
        written); None once the row is settled as failed or skipped."""
        if row.audience != r.Audience.USAGER:
            return row.recipient
        try:
            if row.channel == r.Channel.SMS:
                number = contact.e164(row.recipient, country="FR")
                if not contact.takes_sms(number):
                    await self._finish(row, outbox.SKIPPED, error=outbox.NOT_MOBILE)
                    return None
                return number
            return contact.mailbox(row.recipient)
        except contact.Refused as err:
            await self._finish(row, outbox.FAILED, error=err.reason)
            return None

    async def _settle_row(self, row: outbox.Claimed) -> None:
        now = self.clock()
        # Checked again just before sending: a cancel or a move since the claim retires it.
        state = (await outbox.appointment_states(
            db=self.db, appointment_ids=[row.appointment_id])).get(row.appointment_id)
        if state is None:
            await self._finish(row, outbox.RETIRED, error="appointment_gone")
            return
        verdict = r.verdict(kind=row.kind, audience=row.audience,
                            row_version=row.appointment_version, version=state.version,
                            cancelled=state.cancelled, start=state.start, end=state.end,
                            now=now)
        if verdict is r.Verdict.RETIRED:
            await self._finish(row, outbox.RETIRED, error="appointment_changed")
            return
        if verdict is r.Verdict.SKIPPED:
            await self._finish(row, outbox.SKIPPED, error="too_late")
            return
        facts = await self._load(row)
        if facts is None:
            await self._finish(row, outbox.RETIRED, error="appointment_gone")
            return
        if row.audience == r.Audience.USAGER and r.in_quiet_hours(now, facts.zone):
            # Fell due in the day but is sent at night (every dispatcher was down): wait
            # for 08:00 if that still comes before the appointment, else it is too late.
            morning = r.later_in_window(now, facts.zone)
            if morning >= state.start:
                await self._finish(row, outbox.SKIPPED, error="quiet_hours")
            else:
                self.outcomes["postponed"] += 1
                await outbox.postpone(db=self.db, owner=row.lease, row_id=row.id,
                                      until=morning, error="quiet_hours")
            return
        recipient = await self._recipient(row)
        if recipient is None:
            return
        if row.audience == r.Audience.USAGER:
            key = contact.cap_key(row.channel, recipient)
            if self._sent.get(key, 0) >= self.settings.notify_daily_cap:
                await self._finish(row, outbox.SKIPPED, error="daily_cap")
                return
            # Counted before the send: two rows to one mailbox in a batch both count.
            self._sent[key] = self._sent.get(key, 0) + 1
        # The fence: a row whose lease was lost (and maybe claimed again) is left to its
        # new holder, neither sent nor marked here.
        if not await outbox.hold(db=self.db, lease=row.lease, row_id=row.id,
                                 now=self.clock(), duration=self.lease):
            log.info("outbox %s: lease lost, left to its new holder", row.id)
            return
        outcome = await self._send(row, facts, now, recipient)
        if outcome.result == "accepted":
            await self._finish(row, outbox.SENT, reference=outcome.reference)
        elif outcome.result == "permanent" or \
                row.attempts >= self.settings.dispatch_max_attempts:
            await self._finish(row, outbox.FAILED, error=outcome.error)
        else:
            await self._postpone(row, error=outcome.error or "retry")

    async def _load(self, row: outbox.Claimed) -> compose.Facts | None:
        key = (row.appointment_id, row.appointment_version)
        if key not in self._facts:
            self._facts[key] = await compose.load_facts(db=self.db,
                                                        appointment_id=row.appointment_id)
        return self._facts[key]

    async def _send(self, row: outbox.Claimed, facts: compose.Facts, now: datetime,
                    recipient: str) -> Outcome:
        url = compose.usager_url(facts, key=self.links, base_url=self.settings.base_url)
        if row.channel == r.Channel.SMS:
            text = compose.sms_text(facts, row.kind, row.language, url)
            return await self.sms.send(to=recipient, text=text, reference=row.id)
        if row.audience == r.Audience.STAFF:
            invitation = await load_invitation_facts(
                db=self.db, appointment_id=row.appointment_id,
                base_url=self.settings.base_url)
            calendar = invitation_ics(facts=invitation, method=compose.staff_method(row.kind),
                                      language=row.language,
                                      organizer=self.settings.mail_from, dtstamp=now)
            email = compose.staff_email(facts, row.kind, row.language, calendar=calendar)
        else:
            email = compose.usager_email(facts, row.kind, row.language, url)
        if not self._all_mailers:
            return Outcome("temporary", error="no smtp server configured")
        message = build_email(row_id=row.id, sender=self.settings.mail_from,
                              recipient=recipient, email=email, language=row.language,
                              domain=self.domain)
        client = await self.mailers.get()
        try:
            return await client.send(message)
        finally:
            self.mailers.put_nowait(client)

    async def close(self) -> None:
        """Close the SMTP connection and the SMS session."""
        for client in self._all_mailers:
            await client.close()
        await self.sms.close()


def schedule_dispatch(scheduler: AsyncIOScheduler, dispatcher: Dispatcher) -> None:
    """Add the dispatcher's job to ``scheduler`` (one run at a time, missed runs merged)."""

    async def job() -> None:
        # A failed run is retried at the next tick; it must not stop the scheduler.
        try:
            claimed = await dispatcher.drain()
        except Exception as err:
            # No traceback: a database error's message may quote a recipient.
            log.error("dispatch failed: %s", type(err).__name__)
            return
        if claimed:  # an idle run says nothing
            log.info("dispatched %d: %s", claimed, ", ".join(
                f"{status} {count}" for status, count in sorted(dispatcher.outcomes.items())))

    scheduler.add_job(job, "interval", seconds=dispatcher.settings.dispatch_interval_seconds,
                      id="visio.notify.dispatch", name="dispatch", coalesce=True,
                      max_instances=1, replace_existing=True, next_run_time=utcnow())


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """``visio worker``: the dispatcher alone, until SIGINT or SIGTERM."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    db = database_for(settings)
    dispatcher = Dispatcher(db=db, settings=settings)
    scheduler = AsyncIOScheduler()
    schedule_dispatch(scheduler, dispatcher)

    sender = WebhookSender(db=db, settings=settings)
    schedule_webhooks(scheduler, sender)
    scheduler.start()
    log.info("dispatcher %s started", dispatcher.owner)
    try:
        await stop.wait()
    finally:
        await dispatcher.stop(grace=settings.shutdown_grace_seconds)
        scheduler.shutdown(wait=False)
        await dispatcher.close()
        await sender.close()
        await db.dispose()

