"""The slot-search cache never offers a slot a fresh search would refuse: two instances on
one database, each with its own cache, beside a third with none; whatever one changes
(through the API, or by hand in SQL) is seen by the other's next search."""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

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
from visio.domain.intervals import Interval
from visio.services.search_cache import Entry, Plan, SearchCache, SearchKey
from visio.settings import Settings

# The default clock is Monday 23 November 2026; the searches look at the next two weeks.
MONTH = ("2026-11-23T00:00:00+01:00", "2026-12-21T00:00:00+01:00")
MONDAY = ("2026-11-30T00:00:00+01:00", "2026-12-01T00:00:00+01:00")
WINDOWS = (MONTH, MONDAY)


@dataclass
class World:
    one: Client  # the instance that changes things
    two: Client  # the instance whose cache must follow
    fresh: Client  # an instance without a cache: what a fresh search finds
    db: Database
    site: m.Site
    elsewhere: m.Site  # another site served by the same staff
    operators: list[OperatorBundle]
    agent: dict[str, str]
    admin: dict[str, str]

    async def slots(self, client: Client, window: tuple[str, str] = MONTH,
                    **params: str) -> list[tuple[str, str, str]]:
        response = await client.get("/api/v1/slots", headers=self.agent, params={
            "site_id": self.site.id, "theme": "famille", "from": window[0],
            "to": window[1], **params})
        assert response.status == 200, await response.text()
        return [(s["start"], s["staff_id"], s["service_id"])
                for s in (await response.json())["items"]]

    async def same_everywhere(self) -> list[tuple[str, str, str]]:
        """Instance two's answers, checked against the fresh ones, for each window."""
        found: list[tuple[str, str, str]] = []
        for window in WINDOWS:
            cached = await self.slots(self.two, window)
            assert cached == await self.slots(self.fresh, window)
            found += cached
        return found

    async def book(self, slot: tuple[str, str, str],
                   site: m.Site | None = None) -> dict[str, Any]:
        start, staff_id, service_id = slot
        response = await self.one.post(
            "/api/v1/appointments",
            json={"site_id": (site or self.site).id, "service_id": service_id, "start": start,
                  "staff_id": staff_id, "usager": usager()},
            headers={**self.agent, "Idempotency-Key": secrets.token_hex(8)})
        body: dict[str, Any] = await response.json()
        assert response.status == 201, body
        return body

    async def availability(self, staff: m.StaffMember, **body: Any) -> None:
        response = await self.one.put(f"/api/v1/staff/{staff.id}/availability",
                                      json={"rules": [], "confirm": True, **body},
                                      headers=self.admin)
        assert response.status == 200, await response.text()


async def _lookups(client: Client) -> dict[str, float]:
    """The instance's cache lookups by outcome, read from its /metrics."""
    text = await (await client.get("/metrics")).text()
    return {outcome: float(value) for outcome, value in re.findall(
        r'^visio_slot_search_cache_total\{outcome="(\w+)"\} (\S+)$', text, re.M)}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test's settings, with room for its many searches by one agent."""
    return replace(settings, search_rate_per_minute=100_000)


@pytest.fixture
async def world(db: Database, settings: Settings,
                make_client: Callable[..., Awaitable[Client]]) -> AsyncIterator[World]:
    site, elsewhere = await make_site(db, booths=2), await make_site(db)
    operators = [await make_operator(db, staff=2, departements=["59"]),
                 await make_operator(db, staff=1)]
    fresh: Client = TestClient(TestServer(create_app(
        replace(settings, search_cache_entries=0), clock=lambda: DEFAULT_NOW)))
    await fresh.start_server()
    one, two = await make_client(), await make_client()
    agent = await auth_headers(one, await make_user(db, role="agent",
                                                    sites=[site, elsewhere]))
    admin = await auth_headers(one, await make_user(db, role="admin"))
    yield World(one, two, fresh, db, site, elsewhere, operators, agent, admin)
    await fresh.close()


def _starts_on(slots: list[tuple[str, str, str]], day: str) -> list[str]:
    return [start for start, _, _ in slots if start.startswith(day)]


async def test_a_change_through_one_instance_is_seen_by_the_others_next_search(
    world: World,
) -> None:
    """Absences, closures, bookings, cancellations and territories: instance two, whose
    cache holds the search, answers as a fresh search does right after each change."""
    before = await world.same_everywhere()
    assert await world.same_everywhere() == before
    lookups = await _lookups(world.two)
    assert lookups["hit"] >= 2  # the second round came from the cache

    # Both staff members of the first operator away all of Monday 30 November.
    for staff in world.operators[0].staff:
        await world.availability(staff, rules=[
            {"weekday": d, "opens": "09:00", "closes": "12:00"} for d in range(5)],
            absences=[{"start": "2026-11-30T00:00:00+01:00",
                       "end": "2026-12-01T00:00:00+01:00"}])
    after = await world.same_everywhere()
    away = {s.id for s in world.operators[0].staff}
    assert not [s for s in after if s[0].startswith("2026-11-30") and s[1] in away]
    assert [s for s in before if s[0].startswith("2026-11-30") and s[1] in away]

    # A booking on instance one: its start is gone for that staff member on instance two.
    slot = next(s for s in after if s[0].startswith("2026-12-01"))
    booked = await world.book(slot)
    after_booking = await world.same_everywhere()
    assert slot not in after_booking
    assert (await _lookups(world.two)).get("appointments", 0) >= 1

    # Cancelled on instance one: offered again on instance two.
    cancelled = await world.one.post(f"/api/v1/appointments/{booked['id']}/cancel",
                                     json={"reason": "Plus nécessaire"}, headers=world.agent)
    assert cancelled.status == 200, await cancelled.text()
    assert slot in await world.same_everywhere()

    # Booked at another site: that staff member's time is taken here too.
    await world.book(slot, world.elsewhere)
    assert slot not in await world.same_everywhere()

    # Both booths taken at one start by two bookings: nobody is offered it any more, not
    # even the staff member whose own time is still free.
    offered = await world.same_everywhere()
    operator_of = {staff.id: op.operator.id for op in world.operators for staff in op.staff}
    start = next(s[0] for s in offered if s[0].startswith("2026-12-02")
                 and len({operator_of[o[1]] for o in offered if o[0] == s[0]}) == 2)
    both = []
    for op in world.operators:  # a search after each booking keeps the cache busy
        both.append(await world.book(next(
            s for s in offered if s[0] == start and operator_of[s[1]] == op.operator.id)))
        await world.same_everywhere()
    assert not [s for s in await world.same_everywhere() if s[0] == start]
    # One of them cancelled: the booth is free again, for the other operator's staff too.
    response = await world.one.post(f"/api/v1/appointments/{both[1]['id']}/cancel",
                                    json={"reason": "Plus nécessaire"}, headers=world.agent)
    assert response.status == 200, await response.text()
    again = await world.same_everywhere()
    assert {operator_of[s[1]] for s in again if s[0] == start} == {
        op.operator.id for op in world.operators}

    # The site closed on Tuesday 1 December.
    closed = await world.one.post("/api/v1/closures", headers=world.admin, json={
        "date": "2026-12-01", "site_id": world.site.id, "reason": "Travaux"})
    assert closed.status == 201, await closed.text()
    assert not _starts_on(await world.same_everywhere(), "2026-12-01")

    # The first operator's desk now serves the Pas-de-Calais only.
    moved = await world.one.put(
        f"/api/v1/desks/{world.operators[0].desk.id}/territory", headers=world.admin,
        json={"departements": ["62"]})
    assert moved.status == 200, await moved.text()
    assert not {s[1] for s in await world.same_everywhere()} & away


async def test_a_change_made_by_hand_in_sql_is_seen_by_the_next_search(world: World) -> None:
    """The counters are kept by database triggers: even a change no instance made shows."""
    before = await world.same_everywhere()
    lone = world.operators[1].staff[0]
    assert [s for s in before if s[1] == lone.id]
    async with world.db.write() as session:
        await session.execute(sa.delete(m.AvailabilityRule)
                              .where(m.AvailabilityRule.staff_id == lone.id))
    assert not [s for s in await world.same_everywhere() if s[1] == lone.id]
    async with world.db.write() as session:
        await session.execute(sa.update(m.Site).where(m.Site.id == world.site.id)
                              .values(booths=1))
        await session.execute(sa.delete(m.SiteHours).where(
            m.SiteHours.site_id == world.site.id, m.SiteHours.weekday == 0))
    assert not _starts_on(await world.same_everywhere(), "2026-11-30")


async def test_the_cached_search_follows_a_random_series_of_changes(world: World) -> None:
    """Forty changes drawn at random (bookings, cancellations, reschedulings, absences,
    hours, closures, staff leaving and coming back): after each, instance two's cached
    answer is the fresh one."""
    draw = random.Random(20261130)
    staff = [s for op in world.operators for s in op.staff]
    booked: list[dict[str, Any]] = []
    slots = await world.same_everywhere()
    for _ in range(40):
        change = draw.choice(["book", "book", "book", "cancel", "reschedule", "absence", "hours",
                              "closure", "inactive"])
        if change == "book" and slots:
            site = draw.choice([world.site, world.elsewhere])
            booked.append(await world.book(draw.choice(slots), site))
        elif change == "cancel" and booked:
            gone = booked.pop(draw.randrange(len(booked)))
            response = await world.one.post(f"/api/v1/appointments/{gone['id']}/cancel",
                                            json={"reason": "Essai"}, headers=world.agent)
            assert response.status == 200, await response.text()
        elif change == "reschedule" and booked and slots:
            moving = booked[draw.randrange(len(booked))]
            start = draw.choice(slots)[0]
            response = await world.one.post(
                f"/api/v1/appointments/{moving['id']}/reschedule",
                json={"start": start}, headers=world.agent)
            assert response.status in (200, 409, 412, 422), await response.text()
            if response.status == 200:
                booked[booked.index(moving)] = await response.json()
        elif change in ("absence", "hours"):
            member = draw.choice(staff)
            day = date(2026, 11, 24) + timedelta(days=draw.randrange(20))
            opens = draw.choice(["08:30", "09:00", "10:00"])
            await world.availability(
                member,
                rules=[{"weekday": d, "opens": opens, "closes": "16:00"} for d in range(5)],
                absences=[] if change == "hours" else [
                    {"start": f"{day.isoformat()}T10:00:00+01:00",
                     "end": f"{day.isoformat()}T14:00:00+01:00"}])
        elif change == "closure":
            day = date(2026, 11, 24) + timedelta(days=draw.randrange(20))
            response = await world.one.post("/api/v1/closures", headers=world.admin, json={
                "date": day.isoformat(), "desk_id": draw.choice(world.operators).desk.id})
            assert response.status in (201, 409), await response.text()
        elif change == "inactive":
            member = draw.choice(staff)
            async with world.db.write() as session:
                await session.execute(sa.update(m.StaffMember)
                                      .where(m.StaffMember.id == member.id)
                                      .values(active=sa.not_(m.StaffMember.active)))
        slots = await world.same_everywhere()
    lookups = await _lookups(world.two)
    assert lookups.get("hit", 0) + lookups.get("appointments", 0) > 0


def test_the_cache_keeps_the_searches_used_last() -> None:
    """Beyond its capacity the least recently used search goes; capacity 0 keeps none."""
    def key(n: int) -> SearchKey:
        start = DEFAULT_NOW + timedelta(days=n)
        return SearchKey(site_id="s", theme="famille", allowed=True, operator_id=None,
                         language=None, stop_id=None, staff_id=None,
                         window=Interval(start, start + timedelta(days=1)))

    plan = Plan(zone="Europe/Paris", site_id="s", booths=1, services=(), places=(),
                desk_ids=frozenset(), staff=(), versions={})
    entry = Entry(plan=plan, booked={}, booth_full=(), busy={}, slots=())
    cache = SearchCache(2)
    cache.put(key(1), entry)
    cache.put(key(2), entry)
    assert cache.get(key(1)) is entry  # now the most recent
    cache.put(key(3), entry)
    assert cache.get(key(2)) is None
    assert cache.get(key(1)) is entry
    assert cache.get(key(3)) is entry
    off = SearchCache(0)
    off.put(key(1), entry)
    assert len(off) == 0
