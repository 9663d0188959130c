"""Leases that hold: a dispatcher keeps the rows it works on, however slow the server."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.notify.receivers import SmtpSink, duplicates
from tests.notify.test_crash import _fill, _statuses
from visio.db import Database, open_database
from visio.notify.dispatcher import Dispatcher
from visio.settings import Settings


@dataclass
class SlowSmtpSink(SmtpSink):
    """An SMTP server that takes ``delay`` seconds to accept each message."""

    delay: float = 1.5

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


async def test_a_server_slower_than_the_lease_gets_each_message_once(
        db: Database, database_url: str, settings: Settings) -> None:
    """Each send takes longer than the lease; two dispatchers, one with more rows than the
    other: the busy one renews its leases, so the idle one never takes its waiting rows,
    and every message arrives exactly once."""
    sink = SlowSmtpSink(delay=1.5)
    sink.start()
    expected = await _fill(db, 6)
    conf = dataclasses.replace(
        settings, smtp_host="127.0.0.1", smtp_port=sink.port, mail_from="rdv@visio.test",
        dispatch_lease_seconds=1.0, dispatch_batch=4, dispatch_retry_seconds=0.5)
    databases = [open_database(database_url) for _ in range(2)]
    dispatchers = [Dispatcher(db=each, settings=conf) for each in databases]

    async def work(dispatcher: Dispatcher) -> None:
        # Claim again whenever the last batch is done, until nothing is pending (or a
        # message arrived twice: the test has failed then).
        while (await _statuses(db)).get("pending", 0) and not duplicates(sink.ids()):
            if not await dispatcher.run_once():
                await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(asyncio.gather(*(work(d) for d in dispatchers)), 120)
    finally:
        for dispatcher in dispatchers:
            await dispatcher.close()
        for each in databases:
            await each.dispose()
        sink.stop()
    assert duplicates(sink.ids()) == 0
    assert set(sink.ids()) == expected
    assert await _statuses(db) == {"sent": 6}
