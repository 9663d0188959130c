"""Booking over the API: search, book, races, idempotency, calendars, scoping, errors."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import aliased

from tests.conftest import Client
from tests.factories import (
    OperatorBundle,
    auth_headers,
    make_operator,
    make_site,
    make_stop,
    make_user,
    usager,
)
from visio import models as m
from visio.db import Database
from visio.i18n import catalogue

MakeClient = Callable[..., Awaitable[Client]]
# Monday 30 November 2026, a week after the default clock: 09:00 in Paris is 08:00Z.
MONDAY_9 = "2026-11-30T09:00:00+01:00"


@dataclass
class World:
    client: Client
    site: m.Site
    op: OperatorBundle
    agent: m.User
    headers: dict[str, str]

    def booking(self, start: str = MONDAY_9, **overrides: Any) -> dict[str, Any]:
        body = {"site_id": self.site.id, "service_id": self.op.service.id, "start": start,
                "usager": usager()}
        body.update(overrides)
        return body

    async def book(self, body: dict[str, Any], key: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(
            "/api/v1/appointments", json=body,
            headers={**(headers or self.headers), "Idempotency-Key": key or secrets.token_hex(8)})
        return response.status, await response.json(content_type=None)

    async def slots(self, start: str, end: str, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/slots", headers=self.headers, params={
            "site_id": self.site.id, "theme": next(iter(self.op.services)), "from": start,
            "to": end, **params})
        assert response.status == 200, await response.text()
        return list((await response.json())["items"])


async def make_world(db: Database, client: Client, *, booths: int = 1, staff: int = 1,
                     **operator: Any) -> World:
    site = await make_site(db, booths=booths)
    op = await make_operator(db, staff=staff, **operator)
    agent = await make_user(db, role="agent", sites=[site])
    return World(client=client, site=site, op=op, agent=agent,
                 headers=await auth_headers(client, agent))


async def assert_no_overlap(db: Database) -> None:
    """A self-join of active appointments finds no overlap of staff time nor of booths."""
    a, b = aliased(m.Appointment), aliased(m.Appointment)
    active = sa.and_(a.status != "cancelled", b.status != "cancelled", a.id < b.id)
    async with db.read() as session:
        staff = await session.scalar(sa.select(sa.func.count()).select_from(a).join(b, sa.and_(
            active, a.staff_id == b.staff_id, a.start < b.staff_until, b.start < a.staff_until)))
        booth = await session.scalar(sa.select(sa.func.count()).select_from(a).join(b, sa.and_(
            active, a.site_id == b.site_id, a.booth == b.booth, a.start < b.end,
            b.start < a.end)))
    assert (staff, booth) == (0, 0)


async def count_appointments(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(m.Appointment))
                   or 0)


def assert_problem(status: int, body: dict[str, Any], expected: int) -> None:
    assert status == expected, body
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == expected
    assert body["detail"].endswith((".", "?", ")"))


# ---------------------------------------------------------------- the happy path


async def test_agent_searches_books_reads_and_cancels(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    slots = await world.slots("2026-11-30T00:00:00+01:00", "2026-12-01T00:00:00+01:00")
    assert slots[0]["start"] == MONDAY_9
    assert slots[0]["end"] == "2026-11-30T09:30:00+01:00"
    status, created = await world.book(world.booking())
    assert status == 201, created
    assert created["status"] == "booked"
    assert created["version"] == 1
    assert created["usager"]["phone"] == "+33612345678"
    assert created["booth"] == 1
    assert created["staff_id"] == world.op.staff[0].id

    fetched = await client.get(f"/api/v1/appointments/{created['id']}", headers=world.headers)
    assert (await fetched.json())["id"] == created["id"]
    listed = await (await client.get("/api/v1/appointments", headers=world.headers)).json()
    assert [a["id"] for a in listed["items"]] == [created["id"]]
    after = await world.slots("2026-11-30T00:00:00+01:00", "2026-12-01T00:00:00+01:00")
    assert MONDAY_9 not in {s["start"] for s in after}

    cancelled = await client.post(f"/api/v1/appointments/{created['id']}/cancel",
                                  json={"reason": "L'usager a trouvé une solution"},
                                  headers=world.headers)
    body = await cancelled.json()
    assert cancelled.status == 200
    assert body["status"] == "cancelled"
    assert body["version"] == 2
    again = await world.slots("2026-11-30T00:00:00+01:00", "2026-12-01T00:00:00+01:00")
    assert MONDAY_9 in {s["start"] for s in again}
    twice = await client.post(f"/api/v1/appointments/{created['id']}/cancel",
                              json={"reason": "encore"}, headers=world.headers)
    assert_problem(twice.status, await twice.json(), 409)


async def test_lists_are_paginated_with_a_cursor(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    for hour in (9, 10, 11):
        status, _ = await world.book(world.booking(f"2026-11-30T{hour:02d}:00:00+01:00"))
        assert status == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/v1/appointments", params=params,
                                       headers=world.headers)).json()
        seen += [a["start"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"2026-11-30T{h:02d}:00:00+01:00" for h in (9, 10, 11)]


# ---------------------------------------------------------------- races


async def _race(world: World, bodies: list[dict[str, Any]]) -> Counter[int]:
    results = await asyncio.gather(*(world.book(body) for body in bodies))
    for status, body in results:
        if status == 409:
            assert body["title"]
            assert "alternatives" in body
    return Counter(status for status, _ in results)


async def test_fifty_concurrent_bookings_of_one_staff_slot_give_one_booking(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client, booths=50)
    counts = await _race(world, [world.booking() for _ in range(50)])
    assert counts == Counter({201: 1, 409: 49})
    await assert_no_overlap(db)


async def test_fifty_concurrent_bookings_of_one_booth_give_one_booking(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client, booths=1, staff=50)
    bodies = [world.booking(staff_id=s.id) for s in world.op.staff]
    counts = await _race(world, bodies)
    assert counts == Counter({201: 1, 409: 49})
    await assert_no_overlap(db)


async def test_partial_overlaps_of_one_staff_member_give_one_booking(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client, booths=50, themes={"famille": 60, "retraite": 30})
    long = world.booking(service_id=world.op.services["famille"].id)
    short = world.booking("2026-11-30T09:30:00+01:00",
                          service_id=world.op.services["retraite"].id)
    counts = await _race(world, [long, short] * 25)
    assert counts == Counter({201: 1, 409: 49})
    await assert_no_overlap(db)


async def test_partial_overlaps_of_one_booth_give_one_booking(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client, booths=1, staff=25, themes={"famille": 60})
    other = await make_operator(db, staff=25, themes={"famille": 30})
    bodies = []
    for a, b in zip(world.op.staff, other.staff, strict=True):
        bodies.append(world.booking(staff_id=a.id))
        bodies.append(world.booking("2026-11-30T09:30:00+01:00",
                                    service_id=other.service.id, staff_id=b.id))
    counts = await _race(world, bodies)
    assert counts == Counter({201: 1, 409: 49})
    await assert_no_overlap(db)


async def test_back_to_back_appointments_are_fine(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    assert (await world.book(world.booking()))[0] == 201
    assert (await world.book(world.booking("2026-11-30T09:30:00+01:00")))[0] == 201
    await assert_no_overlap(db)


async def test_loser_of_a_race_is_offered_the_nearest_free_slots(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client)
    assert (await world.book(world.booking()))[0] == 201
    status, body = await world.book(world.booking())
    assert_problem(status, body, 409)
    assert [a["start"] for a in body["alternatives"]][:2] == [
        "2026-11-30T09:30:00+01:00", "2026-11-30T10:00:00+01:00"]


async def test_buffer_after_keeps_the_next_slot_free(db: Database, client: Client) -> None:
    world = await make_world(db, client, buffer=10)
    assert (await world.book(world.booking()))[0] == 201
    status, body = await world.book(world.booking("2026-11-30T09:30:00+01:00"))
    # 09:00 + 30 min + 10 min buffer: the 09:30 start is not offered any more.
    assert status in (409, 422), body
    await assert_no_overlap(db)


# ---------------------------------------------------------------- idempotency


async def test_retry_with_same_key_replays_the_booking(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    first = await world.book(world.booking(), key="retry-1")
    second = await world.book(world.booking(), key="retry-1")
    assert first == second
    assert first[0] == 201
    assert await count_appointments(db) == 1


async def test_same_key_with_another_body_is_refused(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    assert (await world.book(world.booking(), key="k"))[0] == 201
    status, body = await world.book(world.booking("2026-11-30T10:00:00+01:00"), key="k")
    assert_problem(status, body, 422)


async def test_keys_are_scoped_to_the_caller(db: Database, client: Client) -> None:
    world = await make_world(db, client, staff=2, booths=2)
    other = await make_user(db, role="agent", sites=[world.site])
    other_headers = await auth_headers(client, other)
    mine = await world.book(world.booking(), key="shared")
    theirs = await world.book(world.booking(), key="shared", headers=other_headers)
    assert mine[0] == theirs[0] == 201
    assert mine[1]["id"] != theirs[1]["id"]


async def test_twenty_concurrent_requests_with_one_key_make_one_appointment(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client)
    body = world.booking()
    results = await asyncio.gather(*(world.book(body, key="same") for _ in range(20)))
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {201, 409}
    assert statuses[201] >= 1
    assert len({b["id"] for s, b in results if s == 201}) == 1
    assert await count_appointments(db) == 1
    assert (await world.book(body, key="same"))[0] == 201


async def test_booking_needs_an_idempotency_key(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    response = await client.post("/api/v1/appointments", json=world.booking(),
                                 headers=world.headers)
    assert_problem(response.status, await response.json(), 400)


# ---------------------------------------------------------------- calendars


async def test_wall_clock_hours_stay_put_across_the_october_change(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(datetime(2026, 10, 12, 6, 0, tzinfo=UTC))
    world = await make_world(db, client)
    before = await world.slots("2026-10-19T00:00:00+02:00", "2026-10-20T00:00:00+02:00")
    after = await world.slots("2026-10-26T00:00:00+01:00", "2026-10-27T00:00:00+01:00")
    assert before[0]["start"] == "2026-10-19T09:00:00+02:00"
    assert after[0]["start"] == "2026-10-26T09:00:00+01:00"
    assert len(before) == len(after)


async def test_wall_clock_hours_stay_put_across_the_march_change(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(datetime(2026, 3, 20, 8, 0, tzinfo=UTC))
    world = await make_world(db, client)
    before = await world.slots("2026-03-23T00:00:00+01:00", "2026-03-28T00:00:00+01:00")
    after = await world.slots("2026-03-30T00:00:00+02:00", "2026-04-04T00:00:00+02:00")
    assert {s["start"][11:] for s in before if s["start"][11:13] == "09"} == {
        "09:00:00+01:00", "09:30:00+01:00"}
    assert {s["start"][11:] for s in after if s["start"][11:13] == "09"} == {
        "09:00:00+02:00", "09:30:00+02:00"}
    status, body = await world.book(world.booking("2026-03-30T09:00:00+02:00"))
    assert status == 201
    assert body["start"] == "2026-03-30T09:00:00+02:00"


async def test_french_site_is_closed_on_14_july_even_for_a_belgian_cell(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    world = await make_world(db, client, country="BE", languages=("fr", "nl"))
    assert await world.slots("2026-07-14T00:00:00+02:00", "2026-07-15T00:00:00+02:00") == []
    status, body = await world.book(world.booking("2026-07-14T09:00:00+02:00"))
    assert_problem(status, body, 422)
    assert body["reason"] == "holiday"
    assert await world.slots("2026-07-15T00:00:00+02:00", "2026-07-16T00:00:00+02:00")


async def test_belgian_cell_is_closed_on_21_july_while_a_french_operator_is_open(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    world = await make_world(db, client, country="BE", languages=("fr", "nl"))
    french = await make_operator(db, country="FR")
    day = ("2026-07-21T00:00:00+02:00", "2026-07-22T00:00:00+02:00")
    slots = await world.slots(*day)
    assert slots
    assert {s["operator_id"] for s in slots} == {french.operator.id}
    status, body = await world.book(world.booking("2026-07-21T09:00:00+02:00"))
    assert_problem(status, body, 422)
    assert body["reason"] == "outside_availability"


async def test_itinerant_site_offers_slots_only_on_its_stop_days(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client)
    bus = await make_site(db, kind="itinerant")
    async with db.write() as session:
        session.add(m.UserSite(user_id=world.agent.id, site_id=bus.id))
    stop = await make_stop(db, bus, date(2026, 12, 1))
    market = await make_stop(db, bus, date(2026, 12, 3), hours=[("09:30", "13:00")])
    world.site = bus
    slots = await world.slots("2026-11-30T00:00:00+01:00", "2026-12-05T00:00:00+01:00")
    days = {s["start"][:10] for s in slots}
    assert days == {"2026-12-01", "2026-12-03"}
    assert {s["stop_id"] for s in slots} == {stop.id, market.id}
    # The market-day stop ends at 13:00: no afternoon, unlike an ordinary stop day.
    afternoon = {s["start"][:10] for s in slots if s["start"][11:16] >= "13:00"}
    assert afternoon == {"2026-12-01"}
    only = await world.slots("2026-11-30T00:00:00+01:00", "2026-12-05T00:00:00+01:00",
                             stop_id=market.id)
    assert {s["start"][:10] for s in only} == {"2026-12-03"}
    status, body = await world.book(world.booking("2026-12-02T10:00:00+01:00"))
    assert_problem(status, body, 422)
    assert body["reason"] == "site_closed"
    status, body = await world.book(world.booking("2026-12-01T10:00:00+01:00"))
    assert status == 201
    assert body["stop_id"] == stop.id


@pytest.mark.parametrize(
    ("start", "reason"),
    [
        ("2026-11-23T09:00:00+01:00", "too_soon"),
        ("2027-03-01T09:00:00+01:00", "too_far"),
        ("2026-11-30T12:30:00+01:00", "site_closed"),
        ("2026-11-30T09:10:00+01:00", "off_grid"),
    ],
)
async def test_a_start_search_would_not_offer_is_refused_with_a_reason(
    db: Database, client: Client, start: str, reason: str
) -> None:
    world = await make_world(db, client)
    status, body = await world.book(world.booking(start))
    assert_problem(status, body, 422)
    assert body["reason"] == reason


async def test_language_filter_picks_the_dutch_speaking_cell(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client, country="BE", languages=("nl",))
    french = await make_operator(db, country="FR")
    day = ("2026-11-30T00:00:00+01:00", "2026-12-01T00:00:00+01:00")
    assert {s["operator_id"] for s in await world.slots(*day, language="nl")} == {
        world.op.operator.id}
    assert {s["operator_id"] for s in await world.slots(*day, language="fr")} == {
        french.operator.id}


async def test_staff_absence_removes_their_slots(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    staff = world.op.staff[0]
    async with db.write() as session:
        session.add(m.BusyPeriod(staff_id=staff.id, start=datetime(2026, 11, 30, 8, tzinfo=UTC),
                                 end=datetime(2026, 11, 30, 11, tzinfo=UTC), source="absence"))
    slots = await world.slots("2026-11-30T00:00:00+01:00", "2026-12-01T00:00:00+01:00")
    # Away until 12:00; the site reopens at 14:00.
    assert slots[0]["start"] == "2026-11-30T14:00:00+01:00"


# ---------------------------------------------------------------- reschedule


async def test_reschedule_frees_the_old_time_only_when_the_new_one_is_obtained(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client)
    _, first = await world.book(world.booking())
    _, second = await world.book(world.booking("2026-11-30T10:00:00+01:00"))
    url = f"/api/v1/appointments/{first['id']}/reschedule"
    taken = await client.post(url, json={"start": "2026-11-30T10:00:00+01:00"},
                              headers=world.headers)
    assert_problem(taken.status, await taken.json(), 409)
    kept = await (await client.get(f"/api/v1/appointments/{first['id']}",
                                   headers=world.headers)).json()
    assert kept["start"] == MONDAY_9
    assert kept["version"] == 1

    moved = await client.post(url, json={"start": "2026-11-30T11:00:00+01:00"},
                              headers=world.headers)
    body = await moved.json()
    assert moved.status == 200
    assert body["start"] == "2026-11-30T11:00:00+01:00"
    assert body["version"] == 2
    free = await world.slots("2026-11-30T00:00:00+01:00", "2026-12-01T00:00:00+01:00")
    assert MONDAY_9 in {s["start"] for s in free}
    await assert_no_overlap(db)
    async with db.read() as session:
        actions = (await session.scalars(sa.select(m.AuditEntry.action).where(
            m.AuditEntry.appointment_id.is_not(None)).order_by(
            m.AuditEntry.at, m.AuditEntry.action))).all()
    assert Counter(actions) == Counter({"booked": 2, "rescheduled": 1})
    assert second["id"] != first["id"]


async def test_reschedule_onto_its_own_time_shifted_by_half_an_hour_works(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client, themes={"famille": 60})
    _, first = await world.book(world.booking())
    moved = await client.post(f"/api/v1/appointments/{first['id']}/reschedule",
                              json={"start": "2026-11-30T10:00:00+01:00"},
                              headers=world.headers)
    assert moved.status == 200, await moved.text()


# ---------------------------------------------------------------- scope


async def test_agent_of_another_site_sees_nothing(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    _, created = await world.book(world.booking())
    elsewhere = await make_site(db)
    stranger = await make_user(db, role="agent", sites=[elsewhere])
    headers = await auth_headers(client, stranger)
    response = await client.get(f"/api/v1/appointments/{created['id']}", headers=headers)
    assert_problem(response.status, await response.json(), 404)
    listed = await (await client.get("/api/v1/appointments", headers=headers)).json()
    assert listed["items"] == []
    status, body = await world.book(world.booking(), headers=headers)
    assert_problem(status, body, 404)
    response = await client.get("/api/v1/slots", headers=headers, params={
        "site_id": world.site.id, "theme": "famille", "from": "2026-11-30T00:00:00Z",
        "to": "2026-12-01T00:00:00Z"})
    assert_problem(response.status, await response.json(), 404)
    cancel = await client.post(f"/api/v1/appointments/{created['id']}/cancel",
                               json={"reason": "x"}, headers=headers)
    assert_problem(cancel.status, await cancel.json(), 404)


async def test_staff_see_only_their_operators_appointments(
    db: Database, client: Client
) -> None:
    world = await make_world(db, client, country="BE", languages=("fr",), booths=2)
    french = await make_operator(db, country="FR")
    _, belgian_booking = await world.book(world.booking())
    _, french_booking = await world.book(world.booking(service_id=french.service.id))
    belgian_staff = await make_user(db, role="staff", staff=world.op.staff[0])
    french_staff = await make_user(db, role="staff", staff=french.staff[0])
    for user, mine, theirs in ((belgian_staff, belgian_booking, french_booking),
                               (french_staff, french_booking, belgian_booking)):
        headers = await auth_headers(client, user)
        listed = await (await client.get("/api/v1/appointments", headers=headers)).json()
        assert [a["id"] for a in listed["items"]] == [mine["id"]]
        other = await client.get(f"/api/v1/appointments/{theirs['id']}", headers=headers)
        assert_problem(other.status, await other.json(), 404)
    admin = await make_user(db, role="admin")
    everything = await (await client.get("/api/v1/appointments",
                                         headers=await auth_headers(client, admin))).json()
    assert len(everything["items"]) == 2


# ---------------------------------------------------------------- errors


async def test_every_bad_request_is_a_readable_problem(db: Database, client: Client) -> None:
    world = await make_world(db, client)
    h = world.headers
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/api/v1/appointments", {"headers": {}}, 401),
        ("GET", "/api/v1/appointments", {"headers": {"Authorization": "Bearer nope"}}, 401),
        ("GET", "/api/v1/slots", {"headers": h, "params": {"site_id": world.site.id}}, 400),
        ("GET", "/api/v1/slots", {"headers": h, "params": {
            "site_id": world.site.id, "theme": "famille", "from": "2026-11-30T09:00:00",
            "to": "2026-12-01T00:00:00Z"}}, 400),
        ("GET", "/api/v1/slots", {"headers": h, "params": {
            "site_id": world.site.id, "theme": "famille", "from": "2026-12-01T00:00:00Z",
            "to": "2026-11-30T00:00:00Z"}}, 422),
        ("GET", "/api/v1/slots", {"headers": h, "params": {
            "site_id": world.site.id, "theme": "famille", "from": "2026-12-01T00:00:00Z",
            "to": "2027-12-01T00:00:00Z"}}, 422),
        ("GET", "/api/v1/slots", {"headers": h, "params": {
            "site_id": "nope", "theme": "famille", "from": "2026-12-01T00:00:00Z",
            "to": "2026-12-02T00:00:00Z"}}, 404),
        ("GET", "/api/v1/slots", {"headers": h, "params": {
            "site_id": world.site.id, "theme": "astrologie", "from": "2026-12-01T00:00:00Z",
            "to": "2026-12-02T00:00:00Z"}}, 404),
        ("POST", "/api/v1/appointments", {"headers": {**h, "Idempotency-Key": "a"},
                                          "data": b"{not json"}, 400),
        ("POST", "/api/v1/appointments", {"headers": {**h, "Idempotency-Key": "b"},
                                          "json": world.booking("2026-11-30T09:00:00")}, 400),
        ("POST", "/api/v1/appointments", {"headers": {**h, "Idempotency-Key": "c"},
                                          "json": world.booking(site_id="nope")}, 404),
        ("POST", "/api/v1/appointments", {"headers": {**h, "Idempotency-Key": "d"},
                                          "json": world.booking(service_id="nope")}, 404),
        ("POST", "/api/v1/appointments", {"headers": {**h, "Idempotency-Key": "e"},
                                          "json": {**world.booking(), "extra": 1}}, 400),
        ("POST", "/api/v1/appointments", {"headers": {**h, "Idempotency-Key": "f"},
                                          "json": world.booking(usager=usager(phone="12"))},
         422),
        ("POST", "/api/v1/appointments", {"headers": {**h, "Idempotency-Key": "g"},
                                          "json": [1, 2]}, 400),
        ("GET", "/api/v1/appointments/nope", {"headers": h}, 404),
        ("GET", "/api/v1/appointments", {"headers": h, "params": {"status": "lost"}}, 400),
        ("GET", "/api/v1/appointments", {"headers": h, "params": {"cursor": "!!"}}, 400),
        ("POST", "/api/v1/sites", {"headers": h, "json": {"name": "x"}}, 403),
        ("DELETE", "/api/v1/appointments", {"headers": h}, 405),
        ("GET", "/api/v1/nothing-here", {"headers": h}, 404),
    ]
    for method, url, kwargs, expected in cases:
        response = await client.request(method, url, **kwargs)
        assert response.content_type == "application/problem+json", (method, url)
        assert_problem(response.status, await response.json(), expected)


# ---------------------------------------------------------------- accounts


@pytest.mark.parametrize("account_exists", [True, False])
async def test_repeated_failed_logins_are_throttled_without_revealing_the_account(
    db: Database, client: Client, account_exists: bool
) -> None:
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    email = agent.email if account_exists else "nobody@visio.test"
    answers = []
    for _ in range(6):
        response = await client.post("/api/v1/auth/token",
                                     json={"email": email, "password": "wrong"})
        answers.append((response.status, (await response.json())["detail"]))
    assert [status for status, _ in answers] == [401] * 5 + [429]
    assert answers[0][1] == catalogue("fr").render("The e-mail address or the password is wrong.")
    assert int(response.headers["Retry-After"]) > 0
    assert response.content_type == "application/problem+json"


async def test_failed_logins_from_one_address_are_throttled_across_accounts(
    db: Database, client: Client
) -> None:
    """Guessing across accounts from one address is slowed after the address budget (20)."""
    statuses = []
    for n in range(21):
        response = await client.post("/api/v1/auth/token",
                                     json={"email": f"guess{n}@visio.test", "password": "x"})
        statuses.append(response.status)
    assert statuses == [401] * 20 + [429]


async def test_logout_revokes_the_token(db: Database, client: Client) -> None:
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    headers = await auth_headers(client, agent)
    assert (await client.get("/api/v1/sites", headers=headers)).status == 200
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status == 204
    assert (await client.get("/api/v1/sites", headers=headers)).status == 401


async def test_expired_tokens_are_refused(db: Database, make_client: MakeClient) -> None:
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    headers = await auth_headers(await make_client(now), agent)
    later = await make_client(now + timedelta(hours=13))
    response = await later.get("/api/v1/sites", headers=headers)
    assert_problem(response.status, await response.json(), 401)
    assert "expiré" in (await response.json())["detail"]


async def test_passwords_are_stored_with_argon2id(db: Database) -> None:
    await make_user(db, role="admin")
    async with db.read() as session:
        stored = await session.scalar(sa.select(m.User.password_hash))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "m=19456,t=2" in stored


async def test_staff_edit_their_own_availability_only(db: Database, client: Client) -> None:
    world = await make_world(db, client, staff=2)
    me, colleague = world.op.staff
    headers = await auth_headers(client, await make_user(db, role="staff", staff=me))
    body = {"rules": [{"weekday": 0, "opens": "10:00", "closes": "12:00"}],
            "overrides": [{"date": "2026-12-07", "ranges": []}],
            "absences": [{"start": "2026-12-01T08:00:00Z", "end": "2026-12-01T17:00:00Z"}]}
    mine = await client.put(f"/api/v1/staff/{me.id}/availability", json=body, headers=headers)
    assert mine.status == 200, await mine.text()
    assert (await mine.json())["rules"][0]["opens"] == "10:00"
    theirs = await client.put(f"/api/v1/staff/{colleague.id}/availability", json=body,
                              headers=headers)
    assert_problem(theirs.status, await theirs.json(), 404)
    slots = await world.slots("2026-11-30T00:00:00+01:00", "2026-12-01T00:00:00+01:00",
                              staff_id=me.id)
    assert [s["start"][11:16] for s in slots] == ["10:00", "10:30", "11:00", "11:30"]
