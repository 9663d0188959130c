"""Fixtures of notification tests: real receivers and a world to book in."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import Client
from tests.notify.receivers import SmsSink, SmtpSink
from tests.notify.world import World, make_world
from visio.db import Database
from visio.settings import Settings


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server on a free port."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def sms_sink() -> AsyncIterator[SmsSink]:
    """A local HTTP SMS gateway."""
    sink = SmsSink()
    await sink.start()
    yield sink
    await sink.stop()


@dataclass
class Receivers:
    smtp: SmtpSink
    sms: SmsSink


@pytest.fixture
def receivers(smtp_sink: SmtpSink, sms_sink: SmsSink) -> Receivers:
    """Both receivers."""
    return Receivers(smtp_sink, sms_sink)


@pytest.fixture
def notify_settings(settings: Settings, smtp_sink: SmtpSink, sms_sink: SmsSink) -> Settings:
    """Settings sending to the test receivers (the dispatcher is driven by the test)."""
    return dataclasses.replace(
        settings, smtp_host="127.0.0.1", smtp_port=smtp_sink.port, sms_adapter="http",
        sms_http_url=sms_sink.url, sms_http_token=sms_sink.token,
        mail_from="rdv@visio.test", dispatch_retry_seconds=1, dispatch_retry_max_seconds=8)


@pytest.fixture
async def world(db: Database, notify_settings: Settings) -> AsyncIterator[World]:
    """A booking world on the real app, its clock and dispatcher driven by the test."""
    clients: list[Client] = []

    async def start(app: web.Application) -> Client:
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    built = await make_world(db, notify_settings, start)
    yield built
    await built.dispatcher.close()
    for client in clients:
        await client.close()
