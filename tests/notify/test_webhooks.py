"""Webhooks to operators' software, against a real receiver on loopback: signatures verified
with the ``standardwebhooks`` package, outages and 500s retried in order, 410 disables, a
slow receiver never slows a booking, SSRF refused."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from standardwebhooks import Webhook

from signaling import CallEvent
from tests.conftest import Client
from tests.factories import auth_headers, make_user
from tests.notify.receivers import free_port
from tests.notify.world import MONDAY_9, World, make_world
from visio import models as m
from visio.db import Database
from visio.notify.webhooks import WebhookSender
from visio.services import calls
from visio.settings import Settings

ALL = ["appointment.booked", "appointment.rescheduled", "appointment.cancelled",
       "appointment.usager_updated", "call.connected"]


class Receiver:
    """An operator's endpoint on 127.0.0.1: answers ``status`` (or holds requests while
    ``held``), and keeps what it accepted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.held = False
        self.release = asyncio.Event()
        self.in_flight = 0
        self.hits = 0
        self.arrived = asyncio.Event()  # a held request is in
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/visio"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.held:
            self.in_flight += 1
            self.arrived.set()
            await self.release.wait()
            self.in_flight -= 1
        self.hits += 1
        if 200 <= self.status < 300:  # what a receiver refused, it did not take
            self.received.append((dict(request.headers), body))
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/visio", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def payloads(self, secret: str) -> list[dict[str, Any]]:
        """Every delivery, each verified with ``secret`` by the standardwebhooks verifier."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.received]


@pytest.fixture
def hook_settings(notify_settings: Settings) -> Settings:
    return dataclasses.replace(notify_settings, webhook_allow_private=True,
                               webhook_retry_seconds=60, webhook_retry_max_seconds=600,
                               webhook_timeout_seconds=30)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    found.release.set()
    await found.stop()


@pytest.fixture
async def hook_world(db: Database, hook_settings: Settings) -> AsyncIterator[World]:
    from aiohttp.test_utils import TestClient, TestServer

    clients: list[Client] = []

    async def start(app: web.Application) -> Client:
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    built = await make_world(db, hook_settings, start)
    yield built
    await built.dispatcher.close()
    for client in clients:
        await client.close()


@pytest.fixture
async def sender(hook_world: World, hook_settings: Settings) -> AsyncIterator[WebhookSender]:
    found = WebhookSender(db=hook_world.db, settings=hook_settings, clock=hook_world.clock)
    yield found
    await found.close()


async def admin_headers(world: World) -> dict[str, str]:
    return await auth_headers(world.client, await make_user(world.db, role="admin"))


async def register(world: World, url: str, events: list[str] = ALL) -> dict[str, Any]:
    response = await world.client.post(
        f"/api/v1/operators/{world.op.operator.id}/webhooks", headers=await admin_headers(world),
        json={"url": url, "events": events})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_deliveries_carry_the_appointment_as_staff_read_it_signed_through_rotation(
        hook_world: World, sender: WebhookSender, receiver: Receiver) -> None:
    """The payload's data is the staff member's GET of the appointment; every delivery
    verifies; after a rotation both the old and the new secret verify; the secret is
    never shown again, and stored sealed."""
    endpoint = await register(hook_world, receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    booked = await hook_world.book()
    assert await sender.drain() == 1
    [payload] = receiver.payloads(endpoint["secret"])
    assert payload["type"] == "appointment.booked"
    assert payload["id"] == receiver.received[0][0]["webhook-id"]
    staff = await auth_headers(hook_world.client, hook_world.staff_user)
    read = await hook_world.client.get(f"/api/v1/appointments/{booked['id']}", headers=staff)
    assert payload["data"] == await read.json()

    admin = await admin_headers(hook_world)
    base = f"/api/v1/operators/{hook_world.op.operator.id}/webhooks"
    listed = await (await hook_world.client.get(base, headers=admin)).json()
    assert [e["id"] for e in listed["items"]] == [endpoint["id"]]
    assert "secret" not in listed["items"][0]
    rotated = await hook_world.client.post(f"{base}/{endpoint['id']}/rotate", headers=admin)
    new_secret = (await rotated.json())["secret"]
    assert new_secret != endpoint["secret"]
    # At rest, neither secret is readable: a copy of the database alone signs nothing.
    async with hook_world.db.read() as session:
        stored = await session.get(m.WebhookEndpoint, endpoint["id"])
    assert stored is not None
    assert stored.previous_secret is not None
    for kept, shown in ((stored.secret, new_secret),
                        (stored.previous_secret, endpoint["secret"])):
        assert not kept.startswith("whsec_")
        assert shown.removeprefix("whsec_") not in kept
    await hook_world.reschedule(booked["id"], MONDAY_9 + timedelta(hours=1))
    assert await sender.drain() == 1
    headers, body = receiver.received[1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new_secret):
        assert Webhook(secret).verify(body, headers)["type"] == "appointment.rescheduled"
    # Once the rotation's day is over, only the new secret signs.
    hook_world.clock.advance(25 * 3600)
    hook_world.headers = await auth_headers(hook_world.client, hook_world.agent)
    await hook_world.cancel(booked["id"])
    assert await sender.drain() == 1
    headers, body = receiver.received[2]
    assert Webhook(new_secret).verify(body, headers)["data"]["status"] == "cancelled"
    assert len(headers["webhook-signature"].split(" ")) == 1


async def test_outages_and_500s_are_retried_and_order_holds_across_reschedule_and_cancel(
        hook_world: World, sender: WebhookSender, receiver: Receiver) -> None:
    """A 500, then no server at all: the booking waits and retries with backoff, the
    later events wait behind it; at last the receiver gets booked, rescheduled and
    cancelled in that order, each once; the log shows every attempt."""
    endpoint = await register(hook_world, receiver.url)
    receiver.status = 500
    booked = await hook_world.book()
    await hook_world.reschedule(booked["id"], MONDAY_9 + timedelta(hours=2))
    await hook_world.cancel(booked["id"])
    assert await sender.drain() == 1  # the head failed; the rest waits behind it
    async with hook_world.db.read() as session:
        waiting = (await session.execute(
            sa.select(m.WebhookDelivery.attempts, m.WebhookDelivery.lease_owner)
            .order_by(m.WebhookDelivery.seq))).all()
    # Claimed with the head as one run, the two behind it were released untried.
    assert [tuple(row) for row in waiting] == [(1, None), (0, None), (0, None)]
    assert await sender.drain() == 0  # not due before its backoff
    await receiver.stop()
    hook_world.clock.advance(61)
    assert await sender.drain() == 1  # refused connection
    await receiver.start()
    receiver.status = 200
    hook_world.clock.advance(121)
    assert await sender.drain() == 3
    delivered = receiver.payloads(endpoint["secret"])
    assert [(p["type"], p["data"]["version"]) for p in delivered] == [
        ("appointment.booked", 1), ("appointment.rescheduled", 2),
        ("appointment.cancelled", 3)]
    assert len({p["id"] for p in delivered}) == 3
    assert await sender.drain() == 0  # delivered events never go again
    log = await hook_world.client.get(
        f"/api/v1/operators/{hook_world.op.operator.id}/webhooks/{endpoint['id']}/deliveries",
        headers=await admin_headers(hook_world))
    attempts = (await log.json())["attempts"]
    assert [a["status_code"] for a in reversed(attempts)] == [500, None, 200, 200, 200]
    assert all(a["latency_ms"] >= 0 for a in attempts)
    assert (await log.json())["endpoint"]["failing_since"] is None


async def test_a_410_disables_the_endpoint_and_the_administrator_sees_it(
        hook_world: World, sender: WebhookSender, receiver: Receiver) -> None:
    """Gone means gone: the endpoint is disabled and receives nothing more."""
    endpoint = await register(hook_world, receiver.url)
    receiver.status = 410
    booked = await hook_world.book()
    assert await sender.drain() == 1
    await hook_world.cancel(booked["id"])
    hook_world.clock.advance(3600)
    assert await sender.drain() == 0
    assert receiver.hits == 1
    listed = await (await hook_world.client.get(
        f"/api/v1/operators/{hook_world.op.operator.id}/webhooks",
        headers=await admin_headers(hook_world))).json()
    [shown] = listed["items"]
    assert shown["id"] == endpoint["id"]
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", "gone")
    # The administrator's page says so, with the attempt and its answer.
    admin = await admin_headers(hook_world)
    page = await hook_world.client.get(
        f"/admin/operators/{hook_world.op.operator.id}/webhooks",
        cookies={"visio_session": admin["Authorization"].split(" ", 1)[1],
                 "visio_lang": "en"})
    html = await page.text()
    assert page.status == 200
    assert 'data-status="disabled"' in html
    assert "gone (410)" in html
    assert "<td>410</td>" in html
    agent_page = await hook_world.client.get(
        f"/admin/operators/{hook_world.op.operator.id}/webhooks",
        cookies={"visio_session": hook_world.headers["Authorization"].split(" ", 1)[1]})
    assert agent_page.status == 403


async def test_an_endpoint_failing_for_a_day_is_disabled(
        hook_world: World, sender: WebhookSender, receiver: Receiver) -> None:
    """Retried for hours with capped backoff; after a day without success, disabled."""
    await register(hook_world, receiver.url)
    receiver.status = 503
    await hook_world.book()
    attempts = 0
    for _ in range(200):
        attempts += await sender.drain()
        async with hook_world.db.read() as session:
            endpoint = await session.scalar(sa.select(m.WebhookEndpoint))
        assert endpoint is not None
        if endpoint.disabled_at is not None:
            break
        hook_world.clock.advance(600)
    assert endpoint.disabled_reason == "failing"
    assert endpoint.failing_since is not None
    assert endpoint.disabled_at - endpoint.failing_since >= timedelta(days=1)
    assert attempts > 24  # retried all along, at most every 10 minutes here
    assert receiver.hits == attempts


async def test_a_slow_receiver_never_slows_a_booking(
        hook_world: World, sender: WebhookSender, receiver: Receiver) -> None:
    """While a delivery hangs at the receiver, bookings are answered; the events wait."""
    endpoint = await register(hook_world, receiver.url)
    receiver.held = True
    await hook_world.book()
    delivering = asyncio.create_task(sender.drain())
    async with asyncio.timeout(60):
        await receiver.arrived.wait()
    second = await hook_world.book(MONDAY_9 + timedelta(hours=1))
    assert receiver.in_flight == 1  # the first delivery is still held
    assert second["status"] == "booked"
    receiver.release.set()
    await delivering
    await sender.drain()
    assert [p["type"] for p in receiver.payloads(endpoint["secret"])] == [
        "appointment.booked", "appointment.booked"]


async def test_call_connected_and_usager_updates_are_sent(
        hook_world: World, sender: WebhookSender, receiver: Receiver) -> None:
    """Both sides connected (once) and a corrected usager each make one event."""
    endpoint = await register(hook_world, receiver.url,
                              ["call.connected", "appointment.usager_updated"])
    booked = await hook_world.book()
    corrected = await hook_world.client.patch(
        f"/api/v1/appointments/{booked['id']}/usager", headers=hook_world.headers,
        json={"first_name": "Hélène"})
    assert corrected.status == 200, await corrected.text()
    for role in ("kiosk", "operator", "kiosk"):
        await calls.record_event(db=hook_world.db, appointment_id=booked["id"],
                                 event=CallEvent(kind="connection_state", peer_id=role,
                                                 role=role, at=hook_world.clock(),
                                                 detail={"state": "connected"}))
    await sender.drain()
    await sender.drain()
    kinds = [(p["type"], p["data"]["usager"]["first_name"])
             for p in receiver.payloads(endpoint["secret"])]
    assert kinds == [("appointment.usager_updated", "Hélène"), ("call.connected", "Hélène")]


async def test_webhook_addresses_go_through_the_ssrf_refusal(
        hook_world: World, hook_settings: Settings) -> None:
    """Loopback is refused unless the test setting allows it; metadata always; only
    administrators register."""
    from aiohttp.test_utils import TestClient, TestServer

    from visio.app import create_app

    strict = create_app(dataclasses.replace(hook_settings, webhook_allow_private=False),
                        clock=hook_world.clock)
    async with TestClient(TestServer(strict)) as client:
        admin = await auth_headers(client, await make_user(hook_world.db, role="admin"))
        base = f"/api/v1/operators/{hook_world.op.operator.id}/webhooks"
        for url in ("http://127.0.0.1:8080/hook", "http://10.0.0.8/hook",
                    "http://localhost/hook", "http://169.254.169.254/latest/meta-data/"):
            refused = await client.post(base, headers=admin,
                                        json={"url": url, "events": ["appointment.booked"]})
            assert refused.status == 422, url
            assert (await refused.json())["reason"] in ("address_refused", "unresolvable")
        agent = await client.post(base, headers=hook_world.headers,
                                  json={"url": "https://example.org/hook",
                                        "events": ["appointment.booked"]})
        assert agent.status == 403
    metadata = await hook_world.client.post(
        f"/api/v1/operators/{hook_world.op.operator.id}/webhooks",
        headers=await admin_headers(hook_world),
        json={"url": "http://169.254.169.254/hook", "events": ["appointment.booked"]})
    assert metadata.status == 422
    body = json.loads(await metadata.text())
    assert body["reason"] == "address_refused"
