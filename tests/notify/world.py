"""A site, an operator with one staff account, an agent, and booking through the API."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import (
    OperatorBundle,
    auth_headers,
    make_operator,
    make_site,
    make_user,
    usager,
)
from visio import models as m
from visio.app import create_app
from visio.db import Database
from visio.notify.dispatcher import Dispatcher
from visio.settings import Settings

# Monday 30 November 2026, 09:00 in Paris.
MONDAY_9 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = DEFAULT_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    db: Database
    client: Client
    site: m.Site
    op: OperatorBundle
    agent: m.User
    staff_user: m.User
    headers: dict[str, str]
    clock: Clock
    dispatcher: Dispatcher

    async def book(self, start: datetime = MONDAY_9, **who: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/appointments", headers={**self.headers,
                                             "Idempotency-Key": secrets.token_hex(8)},
            json={"site_id": self.site.id, "service_id": self.op.service.id,
                  "start": start.isoformat(), "usager": usager(**who)})
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def cancel(self, appointment_id: str) -> None:
        response = await self.client.post(f"/api/v1/appointments/{appointment_id}/cancel",
                                          headers=self.headers, json={"reason": "test"})
        assert response.status == 200, await response.text()

    async def reschedule(self, appointment_id: str, start: datetime) -> None:
        response = await self.client.post(
            f"/api/v1/appointments/{appointment_id}/reschedule", headers=self.headers,
            json={"start": start.isoformat()})
        assert response.status == 200, await response.text()

    async def rows(self, appointment_id: str | None = None) -> list[m.OutboxRow]:
        query = sa.select(m.OutboxRow).order_by(m.OutboxRow.due_at, m.OutboxRow.kind)
        if appointment_id is not None:
            query = query.where(m.OutboxRow.appointment_id == appointment_id)
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def dispatch_at(self, when: datetime) -> int:
        self.clock.now = when
        return await self.dispatcher.drain()


async def make_world(db: Database, settings: Settings,
                     start_client: Callable[[web.Application], Any]) -> World:
    """Everything a notification test books with; the app's clock is ``world.clock``."""
    clock = Clock()
    site = await make_site(db)
    op = await make_operator(db, languages=("fr", "nl", "en"))
    agent = await make_user(db, role="agent", sites=[site])
    staff_user = await make_user(db, role="staff", staff=op.staff[0])
    client = await start_client(create_app(settings, clock=clock))
    headers = await auth_headers(client, agent)
    dispatcher = Dispatcher(db=db, settings=settings, clock=clock)
    return World(db=db, client=client, site=site, op=op, agent=agent, staff_user=staff_user,
                 headers=headers, clock=clock, dispatcher=dispatcher)
