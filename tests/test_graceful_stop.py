"""SIGTERM is graceful: `visio serve` finishes the requests in flight, closes signaling
sockets with 1012, and exits 0; a dispatcher (in `serve` or `visio worker`) ends its send
under way and gives back the rows it claimed, for another to take at once."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import threading
import time
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.engine import make_url

from tests.factories import PASSWORD, make_site, make_user
from tests.notify.receivers import SmtpSink, free_port
from tests.notify.test_crash import _fill
from tests.processes import metric, start_visio, stopped, visio_env, wait_healthy
from visio import models as m
from visio.db import Database
from visio.notify.dispatcher import Dispatcher
from visio.settings import Settings


@dataclass
class GatedSmtpSink(SmtpSink):
    """An SMTP server that holds each message until the test opens the gate."""

    entered: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        self.entered.set()
        await asyncio.to_thread(self.gate.wait, 60)
        return await super().handle_DATA(server, session, envelope)


async def _rows(db: Database) -> list[m.OutboxRow]:
    async with db.read() as session:
        return list((await session.scalars(sa.select(m.OutboxRow))).all())


async def _assert_given_back(db: Database, total: int) -> int:
    """Every row is sent or pending with no lease left on it; how many were sent."""
    rows = await _rows(db)
    assert len(rows) == total
    sent = [row for row in rows if row.status == "sent"]
    pending = [row for row in rows if row.status == "pending"]
    assert len(sent) + len(pending) == total
    assert [(row.lease_owner, row.lease_until) for row in pending] == \
        [(None, None)] * len(pending)
    return len(sent)


async def test_a_stopping_dispatcher_ends_its_send_and_gives_back_the_rest(
        db: Database, settings: Settings) -> None:
    """Stopped while an SMTP server holds its first message: that message is delivered and
    recorded as sent, the two others are given back, and another dispatcher claims them
    at once, long before their 120-second lease would have run out."""
    sink = GatedSmtpSink()
    sink.start()
    await _fill(db, 3)
    conf = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=sink.port,
                               mail_from="rdv@visio.test", dispatch_lease_seconds=120)
    dispatcher = Dispatcher(db=db, settings=conf)
    other = Dispatcher(db=db, settings=conf)
    try:
        draining = asyncio.create_task(dispatcher.drain())
        assert await asyncio.to_thread(sink.entered.wait, 30)
        stopping = asyncio.create_task(dispatcher.stop(grace=30))
        # Opened after the stop's first step has run (call_soon is FIFO): the send under
        # way ends after the stop was asked for.
        asyncio.get_running_loop().call_soon(sink.gate.set)
        assert await stopping == 2
        await draining
        assert await _assert_given_back(db, 3) == 1
        assert len(sink.ids()) == 1
        assert await other.run_once() == 2
    finally:
        sink.gate.set()
        await dispatcher.close()
        await other.close()
        sink.stop()


async def test_sigterm_stops_a_worker_which_gives_back_its_rows(
        db: Database, database_url: str) -> None:
    """`visio worker` sending (its SMTP server holding a message) gets SIGTERM: it ends that
    send, leaves no row leased, and exits 0."""
    sink = GatedSmtpSink()
    sink.start()
    await _fill(db, 4)
    env = visio_env(database_url, VISIO_SMTP_HOST="127.0.0.1",
                    VISIO_SMTP_PORT=str(sink.port), VISIO_MAIL_FROM="rdv@visio.test",
                    VISIO_DISPATCH_INTERVAL_SECONDS="0.2")
    worker = await start_visio("worker", env=env)
    try:
        assert await asyncio.to_thread(sink.entered.wait, 30)
        worker.send_signal(signal.SIGTERM)
        sink.gate.set()
        assert await stopped(worker) == 0
    finally:
        sink.gate.set()
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        sink.stop()
    assert await _assert_given_back(db, 4) >= 1


@pytest.mark.parametrize("backend", ["postgres"])
async def test_sigterm_lets_serve_finish_its_requests_and_close_sockets_with_1012(
        db: Database, database_url: str) -> None:
    """A login held by a slow database (the test locks the accounts table) and an open
    signaling socket when SIGTERM arrives: new connections are refused, the socket is
    closed with 1012, the login is answered once the database moves, and the process
    exits 0."""
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = await start_visio("serve", env=visio_env(
        database_url, VISIO_PORT=str(port), VISIO_BASE_URL=base,
        VISIO_SHUTDOWN_GRACE_SECONDS="20"))
    session = aiohttp.ClientSession()
    locker = await asyncpg.connect(make_url(database_url).set(drivername="postgresql")
                                   .render_as_string(hide_password=False))
    try:
        await wait_healthy(base, server)
        ws = await session.ws_connect(f"{base.replace('http', 'ws')}/signaling/ws",
                                      headers={"Origin": base})
        locking = locker.transaction()
        await locking.start()
        await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        login = asyncio.create_task(session.post(
            f"{base}/api/v1/auth/token", json={"email": agent.email, "password": PASSWORD}))
        # In flight: the login (waiting for the lock) and /metrics itself.
        deadline = time.monotonic() + 20
        while await metric(base, "visio_http_requests_in_flight") < 2:
            assert time.monotonic() < deadline, "the login never reached its handler"
            await asyncio.sleep(0.05)

        server.send_signal(signal.SIGTERM)
        closing = await ws.receive(timeout=20)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1012
        deadline = time.monotonic() + 20
        while True:  # the listening socket is closed before the requests are waited for
            try:
                async with session.get(f"{base}/healthz"):
                    pass
            except aiohttp.ClientConnectionError:
                break
            assert time.monotonic() < deadline, "still accepting connections"
            await asyncio.sleep(0.05)
        assert server.returncode is None  # still finishing the login
        assert not login.done()

        await locking.rollback()
        answer = await asyncio.wait_for(login, 20)
        assert answer.status == 200
        assert "access_token" in await answer.json()
        assert await stopped(server) == 0
    finally:
        await locker.close()
        await session.close()
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_sigterm_makes_serves_dispatcher_give_back_its_rows(
        db: Database, database_url: str, settings: Settings) -> None:
    """`visio serve` whose dispatcher is stuck on a send (an SMTP server that does not
    answer) when SIGTERM arrives: after VISIO_SHUTDOWN_GRACE_SECONDS the send is cut, every
    claimed row is given back, the process exits 0, and another dispatcher claims all of
    them at once (their 120-second lease would otherwise hold them)."""
    sink = GatedSmtpSink()
    sink.start()
    await _fill(db, 3)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = await start_visio("serve", env=visio_env(
        database_url, VISIO_PORT=str(port), VISIO_BASE_URL=base,
        VISIO_SMTP_HOST="127.0.0.1", VISIO_SMTP_PORT=str(sink.port),
        VISIO_MAIL_FROM="rdv@visio.test", VISIO_DISPATCH="1",
        VISIO_DISPATCH_INTERVAL_SECONDS="0.2", VISIO_SHUTDOWN_GRACE_SECONDS="2"))
    other = Dispatcher(db=db, settings=dataclasses.replace(
        settings, smtp_host="127.0.0.1", smtp_port=sink.port, mail_from="rdv@visio.test"))
    try:
        await wait_healthy(base, server)
        assert await asyncio.to_thread(sink.entered.wait, 30)
        server.send_signal(signal.SIGTERM)
        assert await stopped(server) == 0
        assert await _assert_given_back(db, 3) == 0
        sink.gate.set()  # the SMTP server answers again, for the other dispatcher
        assert await other.run_once() == 3
    finally:
        sink.gate.set()
        await other.close()
        if server.returncode is None:
            server.kill()
            await server.wait()
        sink.stop()
