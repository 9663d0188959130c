"""Regression tests for holes found and fixed: each would have been a 500, a lost update,
a silent data change or a leak. They run on SQLite and PostgreSQL like every API test."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import Client
from tests.factories import (
    PASSWORD,
    OperatorBundle,
    audit_trail,
    auth_headers,
    make_appointment,
    make_operator,
    make_site,
    make_stop,
    make_user,
    read_appointment,
    usager,
)
from visio import models as m
from visio.db import Database

PROBLEM = "application/problem+json"
MONDAY_9 = "2026-11-30T09:00:00+01:00"


@dataclass
class World:
    db: Database
    client: Client
    site: m.Site
    op: OperatorBundle
    agent: dict[str, str]
    admin: dict[str, str]
    cancel_url: str | None = None

    def booking(self, start: str = MONDAY_9, **overrides: Any) -> dict[str, Any]:
        return {"site_id": self.site.id, "service_id": self.op.service.id, "start": start,
                "usager": usager(), **overrides}

    async def book(self, start: str = MONDAY_9, **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/appointments", json=self.booking(start, **overrides),
            headers={**self.agent, "Idempotency-Key": secrets.token_hex(8)})
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def get(self, appointment_id: str) -> tuple[str, dict[str, Any]]:
        response = await self.client.get(f"/api/v1/appointments/{appointment_id}",
                                         headers=self.agent)
        assert response.status == 200, await response.text()
        return response.headers["ETag"], dict(await response.json())


async def make_world(db: Database, client: Client, **operator: Any) -> World:
    site = await make_site(db)
    op = await make_operator(db, **operator)
    agent = await make_user(db, role="agent", sites=[site])
    admin = await make_user(db, role="admin")
    return World(db=db, client=client, site=site, op=op,
                 agent=await auth_headers(client, agent),
                 admin=await auth_headers(client, admin))


async def problem_of(response: Any, status: int | None = None) -> dict[str, Any]:
    """The problem+json body of a refusal (4xx), checked for its shape."""
    body = dict(await response.json(content_type=None))
    assert response.content_type == PROBLEM, body
    assert 400 <= response.status < 500, body
    if status is not None:
        assert response.status == status, body
    assert body["status"] == response.status
    assert {"type", "title", "detail"} <= set(body)
    return body


def raw_json(value: Any) -> bytes:
    """JSON bytes as ``json.dumps`` writes them: a lone surrogate becomes its \\u escape."""
    return json.dumps(value).encode("ascii")


# ---------------------------------------------------------------- crafted cursors


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


YEAR_9999 = _cursor('["9999-12-31T23:59:59+00:00","x"]')


async def test_a_cursor_from_the_year_9999_is_a_problem_not_a_crash(
    db: Database, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A crafted cursor dated 9999 is a 4xx naming the cursor, with one log line at most."""
    world = await make_world(db, client)
    await world.book()
    caplog.set_level(logging.INFO)
    caplog.clear()
    response = await client.get("/api/v1/appointments", params={"cursor": YEAR_9999},
                                headers=world.agent)
    body = await problem_of(response)
    assert body["field"] == "cursor"
    assert len(caplog.records) <= 1, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_call_log_cursor_from_the_year_9999_names_the_cursor(
    db: Database, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The call log refuses the same crafted cursor as a 4xx naming the cursor."""
    world = await make_world(db, client)
    booked = await world.book()
    caplog.set_level(logging.INFO)
    caplog.clear()
    response = await client.get(f"/api/v1/appointments/{booked['id']}/call-log",
                                params={"cursor": YEAR_9999}, headers=world.agent)
    body = await problem_of(response)
    assert len(caplog.records) <= 1
    assert body["field"] == "cursor"


# ---------------------------------------------------------------- hostile JSON


def _nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _nested_in_email(depth: int) -> bytes:
    return b'{"password":"x","email":' + _nested_arrays(depth) + b"}"


def _nested_in_unknown_field(depth: int) -> bytes:
    return b'{"email":"a@visio.test","password":"x","extra":' + _nested_arrays(depth) + b"}"


def _nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


NESTINGS = {"arrays": _nested_arrays, "arrays in email": _nested_in_email,
            "arrays in an unknown field": _nested_in_unknown_field,
            "objects": _nested_objects}


async def test_deeply_nested_json_at_login_is_a_400(
    client: Client, subtests: pytest.Subtests
) -> None:
    """JSON nested 1,000 or 100,000 deep, posted without a token, is a plain 400."""
    for (name, shape), depth in itertools.product(NESTINGS.items(), (1_000, 100_000)):
        with subtests.test(shape=name, depth=depth):
            response = await client.post("/api/v1/auth/token", data=shape(depth),
                                         headers={"Content-Type": "application/json"})
            await problem_of(response, 400)


# ---------------------------------------------------------------- lone surrogates


async def _cancel_url(world: World) -> str:
    """The cancel address of one booked appointment (refused cancels leave it booked)."""
    if world.cancel_url is None:
        booked = await world.book()
        world.cancel_url = f"/api/v1/appointments/{booked['id']}/cancel"
    return world.cancel_url


SURROGATE = "\ud800"


async def _count(db: Database, *models: type[m.Base]) -> list[int]:
    async with db.read() as session:
        return [int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
                for model in models]


STORED = (m.Appointment, m.Site, m.User, m.ClosureDay, m.BusyPeriod, m.AuditEntry)


async def test_a_lone_surrogate_is_refused_as_a_problem(
    db: Database, client: Client, subtests: pytest.Subtests
) -> None:
    """The JSON escape \\ud800 in an e-mail, password, name or reason is a 4xx problem."""
    world = await make_world(db, client)
    cancel_url = await _cancel_url(world)
    booking = {**world.agent, "Idempotency-Key": secrets.token_hex(8)}
    login = "/api/v1/auth/token"
    cases: dict[str, tuple[str, dict[str, str], dict[str, Any]]] = {
        "login e-mail": (login, {}, {"email": f"{SURROGATE}a@visio.test", "password": "x"}),
        "login password": (login, {}, {"email": "a@visio.test", "password": SURROGATE}),
        "usager first name": ("/api/v1/appointments", booking, world.booking(
            usager=usager(first_name=f"Jea{SURROGATE}nne"))),
        "usager last name": ("/api/v1/appointments", booking, world.booking(
            usager=usager(last_name=SURROGATE))),
        "cancel reason": (cancel_url, world.agent, {"reason": f"plus{SURROGATE}tard"}),
    }
    before = await _count(db, *STORED)
    for where, (url, headers, body) in cases.items():
        with subtests.test(where=where):
            data = raw_json(body)
            assert b"\\ud800" in data
            response = await client.post(
                url, data=data, headers={**headers, "Content-Type": "application/json"})
            await problem_of(response)
    assert await _count(db, *STORED) == before


# ---------------------------------------------------------------- invisible characters


FORBIDDEN = {"C0 escape": "\x1b", "NUL": "\x00", "line feed": "\n",
             "bidi override": "\u202e", "zero width space": "\u200b"}
Send = Callable[["World", str], Awaitable[Any]]


async def _send_usager(world: World, name: str, value: str) -> Any:
    return await world.client.post(
        "/api/v1/appointments", json=world.booking(usager=usager(**{name: value})),
        headers={**world.agent, "Idempotency-Key": secrets.token_hex(8)})


async def _send_first_name(world: World, value: str) -> Any:
    return await _send_usager(world, "first_name", value)


async def _send_last_name(world: World, value: str) -> Any:
    return await _send_usager(world, "last_name", value)


async def _send_reason(world: World, value: str) -> Any:
    return await world.client.post(await _cancel_url(world), json={"reason": value},
                                   headers=world.agent)


async def _send_site_name(world: World, value: str) -> Any:
    return await world.client.post("/api/v1/sites", json={
        "name": value, "kind": "fixed", "commune": "Bergues", "address": "Mairie"},
        headers=world.admin)


async def _send_closure_reason(world: World, value: str) -> Any:
    return await world.client.post("/api/v1/closures", json={
        "date": "2026-12-24", "site_id": world.site.id, "reason": value}, headers=world.admin)


async def _send_display_name(world: World, value: str) -> Any:
    return await world.client.post("/api/v1/users", json={
        "email": f"n-{secrets.token_hex(3)}@visio.test", "password": "a long passphrase",
        "role": "agent", "display_name": value, "site_ids": [world.site.id]},
        headers=world.admin)


async def _send_absence_reason(world: World, value: str) -> Any:
    return await world.client.put(
        f"/api/v1/staff/{world.op.staff[0].id}/availability", json={
            "rules": [], "absences": [{"start": "2026-12-01T08:00:00Z",
                                       "end": "2026-12-01T17:00:00Z", "reason": value}]},
        headers=world.admin)


# Where a person types text: how to send a value there, and the field named back.
TEXT_FIELDS: dict[str, tuple[Send, str]] = {
    "usager first name": (_send_first_name, "usager.first_name"),
    "usager last name": (_send_last_name, "usager.last_name"),
    "cancel reason": (_send_reason, "reason"),
    "site name": (_send_site_name, "name"),
    "closure reason": (_send_closure_reason, "reason"),
    "account display name": (_send_display_name, "display_name"),
    "absence reason": (_send_absence_reason, "absences[0].reason"),
}
REQUIRED = ("usager first name", "usager last name", "cancel reason", "site name",
            "account display name")


async def test_control_bidi_and_zero_width_characters_are_refused_naming_the_field(
    db: Database, client: Client, subtests: pytest.Subtests
) -> None:
    """A C0 control, U+202E or U+200B in a name or reason is a 400 naming the field."""
    world = await make_world(db, client)
    await _cancel_url(world)
    before = await _count(db, *STORED)
    for (where, (send, field)), (kind, char) in itertools.product(TEXT_FIELDS.items(),
                                                                  FORBIDDEN.items()):
        for value in (f"Jea{char}nne", f"{char}Jeanne", f"Jeanne{char}"):
            with subtests.test(where=where, kind=kind, value=value):
                body = await problem_of(await send(world, value), 400)
                assert body.get("field") == field, body
    assert await _count(db, *STORED) == before


async def test_empty_or_blank_text_where_a_value_is_required_is_a_400_naming_the_field(
    db: Database, client: Client, subtests: pytest.Subtests
) -> None:
    """An empty or blank required text is a 400 naming the field."""
    world = await make_world(db, client)
    await _cancel_url(world)
    before = await _count(db, *STORED)
    for where, value in itertools.product(REQUIRED, ("", "   ")):
        send, field = TEXT_FIELDS[where]
        with subtests.test(where=where, value=value):
            body = await problem_of(await send(world, value), 400)
            assert body.get("field") == field, body
    assert await _count(db, *STORED) == before


ODD_QUERIES: list[tuple[str, dict[str, str], str]] = [
    ("/api/v1/slots", {"to": ""}, "to"),
    ("/api/v1/appointments", {"to": ""}, "to"),
    ("/api/v1/appointments", {"site_id": ""}, "site_id"),
    ("/api/v1/appointments", {"limit": "\u0663"}, "limit"),  # ARABIC-INDIC DIGIT THREE
    ("/api/v1/appointments", {"limit": "\uff15"}, "limit"),  # FULLWIDTH DIGIT FIVE
    ("/api/v1/appointments", {"limit": "+5"}, "limit"),
    ("/api/v1/appointments", {"limit": "5_0"}, "limit"),
    ("/api/v1/appointments", {"limit": " 5"}, "limit"),
    ("/api/v1/services", {"theme": ""}, "theme"),
]


async def test_odd_query_values_are_a_400_naming_the_parameter(
    db: Database, client: Client, subtests: pytest.Subtests
) -> None:
    """Empty values, non-ASCII digits, signs and underscores in numbers are 400s."""
    world = await make_world(db, client)
    search = {"site_id": world.site.id, "theme": "famille", "from": "2026-11-30T00:00:00Z"}
    for url, params, field in ODD_QUERIES:
        with subtests.test(url=url, params=params):
            sent = {**search, **params} if url == "/api/v1/slots" else params
            response = await client.get(url, params=sent, headers=world.agent)
            assert (await problem_of(response, 400))["field"] == field


AVAILABILITY_HOLES: list[tuple[dict[str, Any], str]] = [
    ({"rules": None}, "rules"),
    ({"rules": [], "overrides": None}, "overrides"),
    ({"rules": [], "absences": None}, "absences"),
    ({"rules": [{"weekday": 0, "opens": "", "closes": "12:00"}]}, "rules[0].opens"),
    ({"rules": [{"weekday": 0, "opens": "09:00", "closes": None}]}, "rules[0].closes"),
    ({}, "rules"),
]


async def test_null_or_empty_where_availability_needs_a_value_is_a_400(
    db: Database, client: Client, subtests: pytest.Subtests
) -> None:
    """``rules: null`` and other holes in PUT availability are 400s naming the field."""
    world = await make_world(db, client)
    staff = world.op.staff[0]
    for body, field in AVAILABILITY_HOLES:
        with subtests.test(body=body):
            response = await client.put(f"/api/v1/staff/{staff.id}/availability", json=body,
                                        headers=world.admin)
            assert (await problem_of(response, 400))["field"] == field
    async with db.read() as session:
        rules = await session.scalar(sa.select(sa.func.count()).select_from(
            m.AvailabilityRule).where(m.AvailabilityRule.staff_id == staff.id))
    assert rules == 10  # the factory's weekly hours, untouched


# ---------------------------------------------------------------- tour stops


async def test_a_stop_only_cancelled_appointments_used_can_be_removed(
    db: Database, client: Client
) -> None:
    """Removing a stop only cancelled appointments used is a 204; they stay readable."""
    world = await make_world(db, client)
    bus = await make_site(db, kind="itinerant")
    async with db.write() as session:
        agent_id = await session.scalar(sa.select(m.UserSite.user_id).where(
            m.UserSite.site_id == world.site.id))
        session.add(m.UserSite(user_id=agent_id, site_id=bus.id))
    stop = await make_stop(db, bus, date(2026, 12, 1))
    booked = await world.book("2026-12-01T10:00:00+01:00", site_id=bus.id)
    assert booked["stop_id"] == stop.id
    cancelled = await client.post(f"/api/v1/appointments/{booked['id']}/cancel",
                                  json={"reason": "Tournée modifiée"}, headers=world.agent)
    assert cancelled.status == 200

    removed = await client.delete(f"/api/v1/sites/{bus.id}/stops/{stop.id}",
                                  headers=world.admin)
    assert removed.status == 204, await removed.text()
    _, read = await world.get(booked["id"])
    assert (read["status"], read["stop_id"], read["cancel_reason"]) == (
        "cancelled", None, "Tournée modifiée")
    async with db.read() as session:
        assert await session.get(m.TourStop, stop.id) is None


async def test_a_stop_a_booked_appointment_uses_cannot_be_removed(
    db: Database, client: Client
) -> None:
    """Removing a stop a booked appointment uses is a 409; stop and booking stay."""
    world = await make_world(db, client)
    bus = await make_site(db, kind="itinerant")
    async with db.write() as session:
        agent_id = await session.scalar(sa.select(m.UserSite.user_id).where(
            m.UserSite.site_id == world.site.id))
        session.add(m.UserSite(user_id=agent_id, site_id=bus.id))
    stop = await make_stop(db, bus, date(2026, 12, 1))
    booked = await world.book("2026-12-01T10:00:00+01:00", site_id=bus.id)
    response = await client.delete(f"/api/v1/sites/{bus.id}/stops/{stop.id}",
                                   headers=world.admin)
    await problem_of(response, 409)
    _, read = await world.get(booked["id"])
    assert (read["status"], read["stop_id"]) == ("booked", stop.id)
    async with db.read() as session:
        assert await session.get(m.TourStop, stop.id) is not None


# ---------------------------------------------------------------- lost updates


async def test_a_read_gives_the_version_as_etag_and_a_stale_if_match_changes_nothing(
    db: Database, client: Client
) -> None:
    """A change sent with the ETag of an older read is a 412 and changes nothing."""
    world = await make_world(db, client)
    booked = await world.book()
    url = f"/api/v1/appointments/{booked['id']}"
    etag, _ = await world.get(booked["id"])
    assert etag == '"v1"'
    moved = await client.post(f"{url}/reschedule", json={"start": "2026-11-30T10:00:00+01:00"},
                              headers={**world.agent, "If-Match": etag})
    assert moved.status == 200, await moved.text()
    assert moved.headers["ETag"] == '"v2"'

    stale = {**world.agent, "If-Match": '"v1"'}
    cancel = await client.post(f"{url}/cancel", json={"reason": "doublon"}, headers=stale)
    assert (await problem_of(cancel, 412))["reason"] == "stale_version"
    again = await client.post(f"{url}/reschedule",
                              json={"start": "2026-11-30T11:00:00+01:00"}, headers=stale)
    await problem_of(again, 412)
    etag, read = await world.get(booked["id"])
    assert (etag, read["status"], read["version"], read["start"]) == (
        '"v2"', "booked", 2, "2026-11-30T10:00:00+01:00")
    assert [e.action for e in await audit_trail(db, booked["id"])] == ["booked", "rescheduled"]


async def test_twenty_parallel_reschedules_from_one_read_give_one_change(
    db: Database, client: Client
) -> None:
    """Twenty reschedules sent with If-Match "v1" to twenty free starts: one wins."""
    world = await make_world(db, client)
    booked = await world.book()
    starts = [f"2026-11-30T{h}:00+01:00" for h in
              ("09:30", "10:00", "10:30", "11:00", "11:30",
               "14:00", "14:30", "15:00", "15:30", "16:00", "16:30")]
    starts += [f"2026-12-01T{h}:00+01:00" for h in
               ("09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "14:00", "14:30",
                "15:00")]
    assert len(set(starts)) == 20
    url = f"/api/v1/appointments/{booked['id']}/reschedule"

    async def move(start: str) -> tuple[int, dict[str, Any]]:
        response = await client.post(url, json={"start": start},
                                     headers={**world.agent, "If-Match": '"v1"'})
        return response.status, await response.json(content_type=None)

    results = await asyncio.gather(*(move(start) for start in starts))
    statuses = Counter(status for status, _ in results)
    assert statuses[200] == 1, results
    assert set(statuses) <= {200, 409, 412}, results
    [winner] = [body for status, body in results if status == 200]
    etag, read = await world.get(booked["id"])
    assert (etag, read["version"], read["start"]) == ('"v2"', 2, winner["start"])
    trail = await audit_trail(db, booked["id"])
    assert [(e.action, e.detail["version"]) for e in trail] == [
        ("booked", 1), ("rescheduled", 2)]


async def test_a_reschedule_to_the_same_start_changes_nothing(
    db: Database, client: Client
) -> None:
    """Rescheduling to the start it has answers 200 and keeps the version."""
    world = await make_world(db, client)
    booked = await world.book()
    response = await client.post(f"/api/v1/appointments/{booked['id']}/reschedule",
                                 json={"start": MONDAY_9},
                                 headers={**world.agent, "If-Match": '"v1"'})
    assert response.status == 200, await response.text()
    assert response.headers["ETag"] == '"v1"'
    assert (await response.json())["version"] == 1
    assert (await read_appointment(db, booked["id"])).version == 1
    assert [e.action for e in await audit_trail(db, booked["id"])] == ["booked"]


async def test_audit_entries_of_an_appointment_follow_its_versions(
    db: Database, client: Client
) -> None:
    """Audit entries ordered by time carry strictly increasing versions."""
    world = await make_world(db, client)
    booked = await world.book()
    url = f"/api/v1/appointments/{booked['id']}"
    for start in ("2026-11-30T10:00:00+01:00", "2026-11-30T11:00:00+01:00"):
        response = await client.post(f"{url}/reschedule", json={"start": start},
                                     headers=world.agent)
        assert response.status == 200
    response = await client.post(f"{url}/cancel", json={"reason": "fini"}, headers=world.agent)
    assert response.status == 200
    trail = await audit_trail(db, booked["id"])
    versions = [e.detail["version"] for e in trail]
    assert [e.action for e in trail] == ["booked", "rescheduled", "rescheduled", "cancelled"]
    assert versions == [1, 2, 3, 4]
    assert all(a.at < b.at for a, b in itertools.pairwise(trail))


async def test_an_if_match_that_is_none_of_our_etags_is_a_412(
    db: Database, client: Client
) -> None:
    """An If-Match naming no version we sent matches nothing: 412, and nothing changes."""
    world = await make_world(db, client)
    booked = await world.book()
    url = f"/api/v1/appointments/{booked['id']}"
    for header in ("v1", '"v0"', '"1"', "W/v1", '"v2"'):
        response = await client.post(f"{url}/cancel", json={"reason": "x"},
                                     headers={**world.agent, "If-Match": header})
        await problem_of(response, 412)
    star = await client.post(f"{url}/reschedule", json={"start": MONDAY_9},
                             headers={**world.agent, "If-Match": "*"})
    assert star.status == 200
    stored = await read_appointment(db, booked["id"])
    assert (stored.status, stored.version) == ("booked", 1)


# ---------------------------------------------------------------- closures


async def test_a_closure_on_a_day_with_bookings_is_refused_listing_them(
    db: Database, client: Client
) -> None:
    """Closing a site on a booked day is a 409 listing the bookings; nothing is stored."""
    world = await make_world(db, client, staff=2)
    first = await world.book()
    second = await world.book("2026-11-30T10:00:00+01:00")
    await world.book("2026-12-01T09:00:00+01:00")
    response = await client.post("/api/v1/closures", json={
        "date": "2026-11-30", "site_id": world.site.id, "reason": "Coupure"},
        headers=world.admin)
    body = await problem_of(response, 409)
    assert body["appointments"] == [first["id"], second["id"]]
    async with db.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(m.ClosureDay)) == 0
    for appointment in (first, second):
        stored = await read_appointment(db, appointment["id"])
        assert (stored.status, stored.version) == ("booked", 1)


async def test_a_closure_that_cancels_cancels_audits_and_lists_the_bookings(
    db: Database, client: Client
) -> None:
    """With cancel_appointments the closure is stored and that day's bookings cancelled."""
    world = await make_world(db, client)
    first = await world.book()
    second = await world.book("2026-11-30T10:00:00+01:00")
    other_day = await world.book("2026-12-01T09:00:00+01:00")
    response = await client.post("/api/v1/closures", json={
        "date": "2026-11-30", "site_id": world.site.id, "reason": "Coupure de courant",
        "cancel_appointments": True}, headers=world.admin)
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["cancelled_appointment_ids"] == [first["id"], second["id"]]
    for appointment in (first, second):
        _, read = await world.get(appointment["id"])
        assert (read["status"], read["cancel_reason"], read["version"]) == (
            "cancelled", "Coupure de courant", 2)
        trail = await audit_trail(db, appointment["id"])
        assert [(e.action, e.detail["version"]) for e in trail] == [
            ("booked", 1), ("cancelled", 2)]
    _, untouched = await world.get(other_day["id"])
    assert (untouched["status"], untouched["version"]) == ("booked", 1)
    slots = await client.get("/api/v1/slots", headers=world.agent, params={
        "site_id": world.site.id, "theme": "famille", "from": "2026-11-30T00:00:00+01:00",
        "to": "2026-12-01T00:00:00+01:00"})
    assert (await slots.json())["items"] == []


# ---------------------------------------------------------------- headers


async def test_tokens_and_appointments_are_never_cached(db: Database, client: Client) -> None:
    """POST /auth/token and GET /appointments/{id} answer Cache-Control: no-store."""
    world = await make_world(db, client)
    agent = await make_user(db, role="agent", sites=[world.site])
    login = await client.post("/api/v1/auth/token",
                              json={"email": agent.email, "password": PASSWORD})
    assert login.status == 200
    assert login.headers["Cache-Control"] == "no-store"
    appointment = await make_appointment(db, site=world.site, op=world.op, booked_by=agent,
                                         start=datetime.fromisoformat(MONDAY_9))
    read = await client.get(f"/api/v1/appointments/{appointment.id}", headers=world.agent)
    assert read.status == 200
    assert read.headers["Cache-Control"] == "no-store"
    missing = await client.get("/api/v1/appointments/nope", headers=world.agent)
    assert missing.status == 404
    assert missing.headers["Cache-Control"] == "no-store"


async def test_a_401_says_how_to_authenticate(db: Database, client: Client) -> None:
    """Every 401 carries WWW-Authenticate for the Bearer scheme."""
    answers = [
        await client.get("/api/v1/appointments"),
        await client.get("/api/v1/appointments", headers={"Authorization": "Bearer nope"}),
        await client.post("/api/v1/auth/token",
                          json={"email": "nobody@visio.test", "password": "wrong"}),
    ]
    for response in answers:
        await problem_of(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_the_server_header_carries_no_version(db: Database, client: Client) -> None:
    """Server names no version, on answers, refusals and errors alike."""
    world = await make_world(db, client)
    answers = [
        await client.get("/healthz"),
        await client.get("/api/v1/openapi.json"),
        await client.get("/api/v1/sites", headers=world.agent),
        await client.get("/api/v1/sites"),
        await client.get("/api/v1/nothing-here"),
        await client.post("/api/v1/auth/token", data=b"{"),
    ]
    for response in answers:
        server = response.headers.get("Server", "")
        assert server, response.url
        assert not any(c.isdigit() for c in server), server
