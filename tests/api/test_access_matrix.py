"""The access policy through the HTTP API, on SQLite and PostgreSQL, as one table.

One world per backend (module-scoped): two sides, each a site with its agent and an
operator with its staff member, plus an admin. Every scoped operation of
``visio.api.routes`` is asked by every role about its own side ("in") and the other side
("out"). Out-of-scope reads are 404 (nobody learns what exists elsewhere), admin-only
operations are 403 for everyone else, staff changing a booking is 403. Operations that
change something get a fresh target each, so cases never depend on one another; a refused
change is checked to have changed nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from tests.conftest import DEFAULT_NOW, Client, PostgresTemplate
from tests.factories import (
    STAFF_HOURS,
    OperatorBundle,
    auth_headers,
    make_appointment,
    make_operator,
    make_site,
    make_stop,
    make_user,
    read_appointment,
    usager,
)
from tests.support import POSTGRES_URL, missing_service
from visio import models as m
from visio.api.routes import operations
from visio.app import create_app
from visio.db import Database, open_database
from visio.settings import Settings

PARIS = ZoneInfo("Europe/Paris")
PROBLEM = "application/problem+json"


# ---------------------------------------------------------------- the world


@dataclass
class Side:
    """One half of the world: a site with its agent, an operator with its staff member."""

    site: m.Site
    op: OperatorBundle
    agent: m.User
    staff: m.User
    appointment: m.Appointment  # booked at this site with this operator, left untouched


@dataclass
class World:
    """Both sides, an admin, a bus for tour stops, and everyone's Authorization header."""

    db: Database
    client: Client
    sides: tuple[Side, Side]
    bus: m.Site
    admin: m.User
    headers: dict[str, dict[str, str]]
    _blocks: Iterator[datetime] = field(default_factory=lambda: iter(()))
    _days: Iterator[date] = field(default_factory=lambda: iter(()))

    def block(self) -> datetime:
        """A bookable hour nobody else uses: book at its start, move to its half."""
        return next(self._blocks)

    def day(self) -> date:
        """A date no other case uses (stops, closures), far from every booking."""
        return next(self._days)

    async def appointment(self, side: Side) -> m.Appointment:
        """A fresh booked appointment on ``side``, for a case that changes it."""
        return await make_appointment(self.db, site=side.site, op=side.op,
                                      start=self.block(), booked_by=self.admin)


def _blocks() -> Iterator[datetime]:
    """Monday to Thursday hours when site and staff are both open, from 30 November."""
    first = date(2026, 11, 30)
    for week, weekday, hour in itertools.product(range(3), range(4),
                                                 (9, 10, 11, 14, 15, 16)):
        day = first + timedelta(weeks=week, days=weekday)
        yield datetime(day.year, day.month, day.day, hour, tzinfo=PARIS).astimezone(UTC)


def _days() -> Iterator[date]:
    day = date(2027, 6, 1)
    while True:
        yield day
        day += timedelta(days=1)


# Roles: who asks, what kind of account it is, and which side is its own.
ROLES = {"admin": ("admin", 0), "agent_a": ("agent", 0), "agent_b": ("agent", 1),
         "staff_x": ("staff", 0), "staff_y": ("staff", 1)}


Drop = Callable[[], Awaitable[None]]


async def _database(request: pytest.FixtureRequest, backend: str,
                    tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Drop]:
    """A fresh migrated database of the module's own, and how to drop it."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("matrix") / "visio.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)

        async def nothing() -> None:
            return None

        return f"sqlite+aiosqlite:///{path}", nothing
    pg = request.getfixturevalue("postgres_template")
    if isinstance(pg, str):
        missing_service(f"PostgreSQL at {POSTGRES_URL} ({pg})")
    assert isinstance(pg, PostgresTemplate)
    name = f"visio_m_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await run(f'CREATE DATABASE "{name}" TEMPLATE "{pg.template}" STRATEGY WAL_LOG')
    url = make_url(pg.url).set(database=name).render_as_string(hide_password=False)
    return url, lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _side(db: Database, *, start: datetime) -> Side:
    site = await make_site(db, booths=3)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])
    appointment = await make_appointment(db, site=site, op=op, start=start, booked_by=agent)
    return Side(site=site, op=op, agent=agent, staff=staff, appointment=appointment)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """One world per backend, shared by every case of the module."""
    url, drop = await _database(request, str(request.param), tmp_path_factory)
    db = open_database(url)
    # Searches are rate-limited per user; this module searches a few dozen times.
    settings = Settings(database_url=url, secret_key="matrix-secret-" + "x" * 32,
                        search_rate_per_minute=10_000)
    client: Client = TestClient(TestServer(create_app(settings, clock=lambda: DEFAULT_NOW)))
    await client.start_server()
    try:
        monday = datetime(2026, 12, 21, 8, tzinfo=UTC)
        sides = (await _side(db, start=monday), await _side(db, start=monday))
        admin = await make_user(db, role="admin")
        users = {"admin": admin, "agent_a": sides[0].agent, "agent_b": sides[1].agent,
                 "staff_x": sides[0].staff, "staff_y": sides[1].staff}
        logins = await asyncio.gather(*(auth_headers(client, u) for u in users.values()))
        yield World(db=db, client=client, sides=sides,
                    bus=await make_site(db, kind="itinerant"), admin=admin,
                    headers=dict(zip(users, logins, strict=True)),
                    _blocks=_blocks(), _days=_days())
    finally:
        await client.close()
        await db.dispose()
        await drop()


# ---------------------------------------------------------------- the requests


@dataclass
class Call:
    """One request of a case, what to look for in a 2xx answer, and a check afterwards."""

    method: str
    path: str
    json: Any = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    probe: tuple[str, str] | None = None  # (key, value) the answer or its items hold
    after: Callable[[int], Awaitable[None]] | None = None  # runs with the status


Build = Callable[[World, Side], Awaitable[Call]]


def _unchanged(world: World, appointment: m.Appointment, *,
               changed: Callable[[m.Appointment], None]) -> Callable[[int], Awaitable[None]]:
    """After a change: a refusal left the appointment booked at version 1."""

    async def check(status: int) -> None:
        stored = await read_appointment(world.db, appointment.id)
        if status == 200:
            changed(stored)
        else:
            assert (stored.status, stored.version, stored.start) == (
                "booked", 1, appointment.start)

    return check


def _cancelled(stored: m.Appointment) -> None:
    assert (stored.status, stored.version, stored.cancel_reason) == (
        "cancelled", 2, "matrix")


async def get_sites(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/sites", probe=("id", s.site.id))


async def get_site(w: World, s: Side) -> Call:
    return Call("GET", f"/api/v1/sites/{s.site.id}", probe=("id", s.site.id))


async def patch_site(w: World, s: Side) -> Call:
    return Call("PATCH", f"/api/v1/sites/{s.site.id}", json={"booths": s.site.booths},
                probe=("id", s.site.id))


async def post_site(w: World, s: Side) -> Call:
    return Call("POST", "/api/v1/sites", json={
        "name": f"Site {secrets.token_hex(4)}", "kind": "fixed", "commune": "Bergues",
        "address": "Mairie"})


async def post_stops(w: World, s: Side) -> Call:
    return Call("POST", f"/api/v1/sites/{w.bus.id}/stops", json={"stops": [{
        "date": w.day().isoformat(), "commune": "Wormhout", "place": "Place",
        "hours": [{"opens": "09:30", "closes": "12:00"}]}]})


async def delete_stop(w: World, s: Side) -> Call:
    stop = await make_stop(w.db, w.bus, w.day())

    async def check(status: int) -> None:
        async with w.db.read() as session:
            kept = await session.get(m.TourStop, stop.id)
        assert (kept is None) is (status == 204)

    return Call("DELETE", f"/api/v1/sites/{w.bus.id}/stops/{stop.id}", after=check)


async def get_operators(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/operators", probe=("id", s.op.operator.id))


async def post_operator(w: World, s: Side) -> Call:
    code = f"OP-{secrets.token_hex(4)}"
    return Call("POST", "/api/v1/operators", json={
        "name": code, "code": code, "country": "FR", "kind": "national", "languages": ["fr"],
        "timezone": "Europe/Paris"})


async def get_operator(w: World, s: Side) -> Call:
    return Call("GET", f"/api/v1/operators/{s.op.operator.id}", probe=("id", s.op.operator.id))


async def patch_operator(w: World, s: Side) -> Call:
    return Call("PATCH", f"/api/v1/operators/{s.op.operator.id}",
                json={"timezone": "Europe/Paris"}, probe=("id", s.op.operator.id))


async def post_desk(w: World, s: Side) -> Call:
    return Call("POST", f"/api/v1/operators/{s.op.operator.id}/desks",
                json={"name": f"Desk {secrets.token_hex(4)}"},
                probe=("operator_id", s.op.operator.id))


async def put_territory(w: World, s: Side) -> Call:
    return Call("PUT", f"/api/v1/desks/{s.op.desk.id}/territory",
                json={"departements": ["59"]}, probe=("desk_id", s.op.desk.id))


async def get_themes(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/themes", probe=("code", "famille"))


async def get_services(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/services", probe=("id", s.op.service.id))


async def post_service(w: World, s: Side) -> Call:
    bare = await make_operator(w.db, themes=(), staff=0)
    return Call("POST", "/api/v1/services",
                json={"operator_id": bare.operator.id, "theme": "famille"},
                probe=("operator_id", bare.operator.id))


async def patch_service(w: World, s: Side) -> Call:
    return Call("PATCH", f"/api/v1/services/{s.op.service.id}", json={"buffer_minutes": 0},
                probe=("id", s.op.service.id))


async def post_closure(w: World, s: Side) -> Call:
    day = w.day()

    async def check(status: int) -> None:
        async with w.db.read() as session:
            stored = (await session.scalars(sa.select(m.ClosureDay).where(
                m.ClosureDay.day == day))).all()
        assert len(stored) == (1 if status == 201 else 0)

    return Call("POST", "/api/v1/closures", json={"date": day.isoformat(),
                                                  "site_id": s.site.id, "reason": "Travaux"},
                probe=("site_id", s.site.id), after=check)


async def get_users(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/users", probe=("id", w.admin.id))


async def post_user(w: World, s: Side) -> Call:
    return Call("POST", "/api/v1/users", json={
        "email": f"new-{secrets.token_hex(4)}@visio.test", "password": "a long passphrase",
        "role": "agent", "display_name": "Nouvel agent", "site_ids": [s.site.id]})


async def force_reset(w: World, s: Side) -> Call:
    # A fresh account of the side: the world's own logins keep working.
    target = await make_user(w.db, role="agent", sites=[s.site])

    async def check(status: int) -> None:
        async with w.db.read() as session:
            resets = await session.scalar(sa.select(sa.func.count()).where(
                m.PasswordReset.user_id == target.id))
        assert resets == (1 if status == 204 else 0)

    return Call("POST", f"/api/v1/users/{target.id}/password-reset", after=check)


async def grant_user(w: World, s: Side) -> Call:
    # A fresh agent with no site (as ProConnect provisioning leaves one) is given the
    # side's site; refused, it still has none.
    target = await make_user(w.db, role="agent")

    async def check(status: int) -> None:
        async with w.db.read() as session:
            sites = (await session.scalars(sa.select(m.UserSite.site_id).where(
                m.UserSite.user_id == target.id))).all()
        assert sites == ([s.site.id] if status == 200 else [])

    return Call("PUT", f"/api/v1/users/{target.id}/grants", json={"site_ids": [s.site.id]},
                after=check)


async def _endpoint(w: World, s: Side, *, disabled: bool = False) -> m.WebhookEndpoint:
    """A webhook endpoint of the side's operator, written directly (not through the API)."""
    async with w.db.write() as session:
        row = m.WebhookEndpoint(
            operator_id=s.op.operator.id, url="https://93.184.215.14/hooks",
            events=["appointment.booked"], secret="whsec_" + secrets.token_hex(16),
            created_at=DEFAULT_NOW, disabled_at=DEFAULT_NOW if disabled else None,
            disabled_reason="failing" if disabled else None)
        session.add(row)
    return row


async def _read_endpoint(w: World, endpoint_id: str) -> m.WebhookEndpoint:
    async with w.db.read() as session:
        row = await session.get(m.WebhookEndpoint, endpoint_id)
    assert row is not None
    return row


async def post_webhook(w: World, s: Side) -> Call:
    return Call("POST", f"/api/v1/operators/{s.op.operator.id}/webhooks",
                json={"url": "https://93.184.215.14/hooks", "events": ["appointment.booked"]},
                probe=("operator_id", s.op.operator.id))


async def get_webhooks(w: World, s: Side) -> Call:
    endpoint = await _endpoint(w, s)
    return Call("GET", f"/api/v1/operators/{s.op.operator.id}/webhooks",
                probe=("id", endpoint.id))


async def delete_webhook(w: World, s: Side) -> Call:
    endpoint = await _endpoint(w, s)

    async def check(status: int) -> None:
        stored = await _read_endpoint(w, endpoint.id)
        assert (stored.deleted_at is not None) is (status == 204)

    return Call("DELETE", f"/api/v1/operators/{s.op.operator.id}/webhooks/{endpoint.id}",
                after=check)


async def rotate_webhook(w: World, s: Side) -> Call:
    endpoint = await _endpoint(w, s)

    async def check(status: int) -> None:
        stored = await _read_endpoint(w, endpoint.id)
        assert (stored.secret != endpoint.secret) is (status == 200)

    return Call("POST",
                f"/api/v1/operators/{s.op.operator.id}/webhooks/{endpoint.id}/rotate",
                probe=("id", endpoint.id), after=check)


async def enable_webhook(w: World, s: Side) -> Call:
    endpoint = await _endpoint(w, s, disabled=True)

    async def check(status: int) -> None:
        stored = await _read_endpoint(w, endpoint.id)
        assert (stored.disabled_at is None) is (status == 200)

    return Call("POST",
                f"/api/v1/operators/{s.op.operator.id}/webhooks/{endpoint.id}/enable",
                probe=("id", endpoint.id), after=check)


async def webhook_deliveries(w: World, s: Side) -> Call:
    endpoint = await _endpoint(w, s)
    return Call("GET",
                f"/api/v1/operators/{s.op.operator.id}/webhooks/{endpoint.id}/deliveries")


async def get_audit(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/audit", params={"limit": "5"})


async def get_audit_csv(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/audit.csv", params={"limit": "5"})


async def get_availability(w: World, s: Side) -> Call:
    staff_id = s.op.staff[0].id
    return Call("GET", f"/api/v1/staff/{staff_id}/availability", probe=("staff_id", staff_id))


async def put_availability(w: World, s: Side) -> Call:
    # The same weekly hours the factory gave: other cases' slots stay as they were.
    staff_id = s.op.staff[0].id
    rules = [{"weekday": day, "opens": opens.strftime("%H:%M"), "closes": closes.strftime("%H:%M")}
             for day, ranges in STAFF_HOURS.items() for opens, closes in ranges]
    return Call("PUT", f"/api/v1/staff/{staff_id}/availability", json={"rules": rules},
                probe=("staff_id", staff_id))


async def get_slots(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/slots", params={
        "site_id": s.site.id, "theme": "famille", "operator_id": s.op.operator.id,
        "from": "2027-01-04T00:00:00+01:00", "to": "2027-01-05T00:00:00+01:00"},
        probe=("operator_id", s.op.operator.id))


async def get_appointments(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/appointments", params={"limit": "200"},
                probe=("id", s.appointment.id))


async def book(w: World, s: Side) -> Call:
    return Call("POST", "/api/v1/appointments", json={
        "site_id": s.site.id, "service_id": s.op.service.id,
        "start": w.block().astimezone(PARIS).isoformat(), "usager": usager()},
        headers={"Idempotency-Key": secrets.token_hex(8)}, probe=("site_id", s.site.id))


async def get_appointment(w: World, s: Side) -> Call:
    return Call("GET", f"/api/v1/appointments/{s.appointment.id}",
                probe=("id", s.appointment.id))


async def cancel(w: World, s: Side) -> Call:
    target = await w.appointment(s)
    return Call("POST", f"/api/v1/appointments/{target.id}/cancel", json={"reason": "matrix"},
                probe=("id", target.id), after=_unchanged(w, target, changed=_cancelled))


async def reschedule(w: World, s: Side) -> Call:
    target = await w.appointment(s)
    new_start = target.start + timedelta(minutes=30)

    def moved(stored: m.Appointment) -> None:
        assert (stored.status, stored.version, stored.start) == ("booked", 2, new_start)

    return Call("POST", f"/api/v1/appointments/{target.id}/reschedule",
                json={"start": new_start.isoformat()}, probe=("id", target.id),
                after=_unchanged(w, target, changed=moved))


async def correct_usager(w: World, s: Side) -> Call:
    target = await w.appointment(s)

    def corrected(stored: m.Appointment) -> None:
        assert (stored.usager_first_name, stored.version) == ("Matrix", 2)

    return Call("PATCH", f"/api/v1/appointments/{target.id}/usager",
                json={"first_name": "Matrix"}, probe=("id", target.id),
                after=_unchanged(w, target, changed=corrected))


async def resend(w: World, s: Side) -> Call:
    target = await w.appointment(s)
    async with w.db.write() as session:
        # The usager's confirmation went: there is a last message to send again.
        session.add(m.OutboxRow(
            appointment_id=target.id, appointment_version=1, kind="confirmation",
            channel="email", audience="usager", recipient="matrix@example.org",
            language="fr", due_at=DEFAULT_NOW, status="sent", finished_at=DEFAULT_NOW))
        await session.execute(sa.update(m.Appointment).where(m.Appointment.id == target.id)
                              .values(usager_email="matrix@example.org"))

    async def check(status: int) -> None:
        async with w.db.read() as session:
            rows = await session.scalar(sa.select(sa.func.count()).where(
                m.OutboxRow.appointment_id == target.id))
        assert rows == (2 if status == 202 else 1)

    return Call("POST", f"/api/v1/appointments/{target.id}/resend",
                probe=("recipient", "matrix@example.org"), after=check)


async def join(w: World, s: Side) -> Call:
    return Call("POST", f"/api/v1/appointments/{s.appointment.id}/join")


async def call_log(w: World, s: Side) -> Call:
    return Call("GET", f"/api/v1/appointments/{s.appointment.id}/call-log",
                probe=("appointment_id", s.appointment.id))


async def notifications(w: World, s: Side) -> Call:
    return Call("GET", f"/api/v1/appointments/{s.appointment.id}/notifications",
                probe=("appointment_id", s.appointment.id))


async def convocation(w: World, s: Side) -> Call:
    return Call("GET", f"/api/v1/appointments/{s.appointment.id}/convocation")


async def invitation(w: World, s: Side) -> Call:
    return Call("GET", f"/api/v1/appointments/{s.appointment.id}/invite.ics")


async def post_feed(w: World, s: Side) -> Call:
    return Call("POST", "/api/v1/calendar-feeds", json={"scope": "site", "id": s.site.id},
                probe=("target_id", s.site.id))


async def get_feeds(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/calendar-feeds")


async def delete_feed(w: World, s: Side) -> Call:
    # A fresh feed of the side's agent: admins revoke any, others only their own.
    async with w.db.write() as session:
        feed = m.CalendarFeed(user_id=s.agent.id, scope="site", target_id=s.site.id,
                              token_hash=secrets.token_hex(32), language="fr")
        session.add(feed)
    return Call("DELETE", f"/api/v1/calendar-feeds/{feed.id}")


async def post_calendar(w: World, s: Side) -> Call:
    # A public address literal: nothing to resolve, and nothing fetches it in this test.
    staff_id = s.op.staff[0].id
    return Call("POST", f"/api/v1/staff/{staff_id}/calendars",
                json={"url": "https://93.184.215.14/calendar.ics"}, probe=("staff_id", staff_id))


async def get_calendars(w: World, s: Side) -> Call:
    return Call("GET", f"/api/v1/staff/{s.op.staff[0].id}/calendars")


async def delete_calendar(w: World, s: Side) -> Call:
    async with w.db.write() as session:
        row = m.ImportedCalendar(staff_id=s.op.staff[0].id, url="https://93.184.215.14/c.ics",
                                 status="pending", busy_count=0)
        session.add(row)
    return Call("DELETE", f"/api/v1/staff/{s.op.staff[0].id}/calendars/{row.id}")


async def correct_outcome(w: World, s: Side) -> Call:
    # The appointment has not begun at the test's clock: in scope, the answer says so.
    return Call("POST", f"/api/v1/appointments/{s.appointment.id}/outcome",
                json={"outcome": "no_show", "reason": "matrix"},
                after=_unchanged(w, s.appointment, changed=lambda _: None))


async def get_figures(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/figures", params={"from": "2026-12-21", "to": "2026-12-21"})


async def export_appointments(w: World, s: Side) -> Call:
    return Call("GET", "/api/v1/figures/appointments",
                params={"from": "2026-12-21", "to": "2026-12-21"},
                probe=("id", s.appointment.id))


async def echo_test_call(w: World, s: Side) -> Call:
    return Call("POST", "/api/v1/test-calls")


# ---------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Expect:
    """A status and, for a 2xx list, whether the probed item is listed."""

    status: int
    listed: bool | None = None


LISTED = Expect(200, listed=True)
HIDDEN = Expect(200, listed=False)
Cell = int | Expect
# One answer for any scope (the operation names nothing of a side), or (in, out).
Answers = Cell | tuple[Cell, Cell]


@dataclass(frozen=True, slots=True)
class Row:
    operation: str  # "METHOD /path" exactly as visio.api.routes declares it
    build: Build
    admin: Answers
    agent: Answers
    staff: Answers


MATRIX = [
    # ------------------------------------------------------------- sites
    Row("GET /sites", get_sites, (LISTED, LISTED), (LISTED, HIDDEN), (LISTED, LISTED)),
    Row("GET /sites/{id}", get_site, (200, 200), (200, 404), (200, 200)),
    Row("PATCH /sites/{id}", patch_site, (200, 200), (403, 403), (403, 403)),
    Row("POST /sites", post_site, 201, 403, 403),
    Row("POST /sites/{id}/stops", post_stops, 201, 403, 403),
    Row("DELETE /sites/{id}/stops/{stop_id}", delete_stop, 204, 403, 403),
    # ------------------------------------------------------------- operators, services
    Row("GET /operators", get_operators, LISTED, LISTED, LISTED),
    Row("POST /operators", post_operator, 201, 403, 403),
    Row("GET /operators/{id}", get_operator, (200, 200), (200, 200), (200, 200)),
    Row("PATCH /operators/{id}", patch_operator, (200, 200), (403, 403), (403, 403)),
    Row("POST /operators/{id}/desks", post_desk, (201, 201), (403, 403), (403, 403)),
    Row("PUT /desks/{id}/territory", put_territory, (200, 200), (403, 403), (403, 403)),
    Row("GET /themes", get_themes, LISTED, LISTED, LISTED),
    Row("GET /services", get_services, LISTED, LISTED, LISTED),
    Row("POST /services", post_service, 201, 403, 403),
    Row("PATCH /services/{id}", patch_service, (200, 200), (403, 403), (403, 403)),
    Row("POST /closures", post_closure, (201, 201), (403, 403), (403, 403)),
    # ------------------------------------------------------------- accounts
    Row("GET /users", get_users, LISTED, 403, 403),
    Row("POST /users", post_user, 201, 403, 403),
    Row("POST /users/{id}/password-reset", force_reset, (204, 204), (403, 403), (403, 403)),
    Row("PUT /users/{id}/grants", grant_user, (200, 200), (403, 403), (403, 403)),
    # ------------------------------------------------------------- webhooks (admin only)
    Row("POST /operators/{id}/webhooks", post_webhook, (201, 201), (403, 403), (403, 403)),
    Row("GET /operators/{id}/webhooks", get_webhooks, (LISTED, LISTED), (403, 403),
        (403, 403)),
    Row("DELETE /operators/{id}/webhooks/{webhook_id}", delete_webhook, (204, 204),
        (403, 403), (403, 403)),
    Row("POST /operators/{id}/webhooks/{webhook_id}/rotate", rotate_webhook, (200, 200),
        (403, 403), (403, 403)),
    Row("POST /operators/{id}/webhooks/{webhook_id}/enable", enable_webhook, (200, 200),
        (403, 403), (403, 403)),
    Row("GET /operators/{id}/webhooks/{webhook_id}/deliveries", webhook_deliveries,
        (200, 200), (403, 403), (403, 403)),
    # ------------------------------------------------------------- audit trail
    Row("GET /audit", get_audit, 200, 403, 403),
    Row("GET /audit.csv", get_audit_csv, 200, 403, 403),
    # ------------------------------------------------------------- availability
    Row("GET /staff/{id}/availability", get_availability, (200, 200), (404, 404),
        (200, 404)),
    Row("PUT /staff/{id}/availability", put_availability, (200, 200), (404, 404),
        (200, 404)),
    # ------------------------------------------------------------- booking
    # Staff searching another operator's slots find none (the search is narrowed).
    Row("GET /slots", get_slots, (LISTED, LISTED), (LISTED, 404), (LISTED, HIDDEN)),
    Row("GET /appointments", get_appointments, (LISTED, LISTED), (LISTED, HIDDEN),
        (LISTED, HIDDEN)),
    # Operator staff never book: no site is one they can book for.
    Row("POST /appointments", book, (201, 201), (201, 404), (404, 404)),
    Row("GET /appointments/{id}", get_appointment, (200, 200), (200, 404), (200, 404)),
    Row("POST /appointments/{id}/cancel", cancel, (200, 200), (200, 404), (403, 404)),
    Row("POST /appointments/{id}/reschedule", reschedule, (200, 200), (200, 404),
        (403, 404)),
    Row("PATCH /appointments/{id}/usager", correct_usager, (200, 200), (200, 404),
        (403, 404)),
    Row("POST /appointments/{id}/resend", resend, (202, 202), (202, 404), (403, 404)),
    # An outcome before the appointment begins is a conflict, for whoever may set it.
    Row("POST /appointments/{id}/outcome", correct_outcome, (409, 409), (409, 404),
        (409, 404)),
    # ------------------------------------------------------------- figures
    Row("GET /figures", get_figures, 200, 200, 200),
    Row("GET /figures/appointments", export_appointments, (LISTED, LISTED),
        (LISTED, HIDDEN), (LISTED, HIDDEN)),
    # ------------------------------------------------------------- calls
    # Admins read every call log but take no seat in a call.
    Row("POST /appointments/{id}/join", join, (404, 404), (200, 404), (200, 404)),
    Row("GET /appointments/{id}/call-log", call_log, (200, 200), (200, 404), (200, 404)),
    Row("POST /test-calls", echo_test_call, 404, 200, 200),
    # ------------------------------------------------------------- calendars
    Row("GET /appointments/{id}/invite.ics", invitation, (200, 200), (200, 404), (200, 404)),
    # Feeds: staff subscribe to themselves and their desk, agents to their sites.
    Row("POST /calendar-feeds", post_feed, (201, 201), (201, 403), (403, 403)),
    Row("GET /calendar-feeds", get_feeds, 200, 200, 200),
    Row("DELETE /calendar-feeds/{id}", delete_feed, (204, 204), (204, 404), (404, 404)),
    # A staff member's own calendars: theirs and admins' only; absent for anyone else.
    Row("POST /staff/{id}/calendars", post_calendar, (201, 201), (404, 404), (201, 404)),
    Row("GET /staff/{id}/calendars", get_calendars, (200, 200), (404, 404), (200, 404)),
    Row("DELETE /staff/{id}/calendars/{calendar_id}", delete_calendar, (204, 204),
        (404, 404), (204, 404)),
    # ------------------------------------------------------------- notifications
    Row("GET /appointments/{id}/notifications", notifications, (200, 200), (200, 404),
        (200, 404)),
    Row("GET /appointments/{id}/convocation", convocation, (200, 200), (200, 404),
        (200, 404)),
]
#: Operations about the caller's own session: no scope to test.
UNSCOPED = {"POST /auth/token", "POST /auth/logout"}


def _cases() -> list[Any]:
    cases = []
    for row in MATRIX:
        for role, (kind, home) in ROLES.items():
            answers: Answers = getattr(row, kind)
            pairs = (("in", answers[0]), ("out", answers[1])) if isinstance(answers, tuple) \
                else (("any", answers),)
            for scope, cell in pairs:
                expect = cell if isinstance(cell, Expect) else Expect(cell)
                side = home if scope != "out" else 1 - home
                cases.append(pytest.param(row, role, side, expect,
                                          id=f"{row.operation}-{role}-{scope}"))
    return cases


CASES = _cases()


def test_the_table_covers_every_declared_operation() -> None:
    """Every operation of visio.api.routes is in the matrix, or has no scope to test."""
    declared = {f"{op.method} {op.path}" for op in operations()}
    tabled = [row.operation for row in MATRIX]
    assert len(tabled) == len(set(tabled))
    assert declared == set(tabled) | UNSCOPED


@pytest.mark.parametrize(("row", "role", "side", "expect"), CASES)
async def test_each_role_gets_the_tables_answer(
    world: World, row: Row, role: str, side: int, expect: Expect
) -> None:
    """The role's request about its own side (in) or the other side (out) answers as tabled."""
    call = await row.build(world, world.sides[side])
    response = await world.client.request(
        call.method, call.path, json=call.json, params=call.params,
        headers={**world.headers[role], **call.headers})
    text = await response.text()
    assert response.status == expect.status, text
    if response.status >= 400:
        assert response.content_type == PROBLEM
        assert (await response.json())["status"] == expect.status
    elif response.status != 204 and call.probe is not None:
        body = await response.json()
        key, value = call.probe
        if key in body:
            assert body[key] == value
        else:
            listed = any(item.get(key) == value for item in body["items"])
            assert listed is (expect.listed is not False), (key, value, body["items"])
    if call.after is not None:
        await call.after(response.status)


@pytest.mark.parametrize("operation", [op for op in operations() if op.auth],
                         ids=lambda op: f"{op.method} {op.path}")
async def test_every_operation_needs_a_token(world: World, operation: Any) -> None:
    """Without a bearer token every authenticated operation is a 401 naming Bearer."""
    path = "/api/v1" + re.sub(r"\{[a-z_]+\}", "x", operation.path)
    response = await world.client.request(operation.method, path, json={})
    assert response.status == 401
    assert response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
