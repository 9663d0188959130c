"""Agenda feeds: a secret address per staff member, desk or site, read by two parsers."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import sqlalchemy as sa

from tests.calendars import icaljs
from tests.conftest import Client
from tests.factories import auth_headers, make_appointment, make_operator, make_site, make_user
from visio import models as m
from visio.db import Database

MakeClient = Callable[..., Awaitable[Client]]
PARIS = ZoneInfo("Europe/Paris")
# Tuesday 20 October 2026, 09:00 in Paris: the window runs from 6 October to 15 December,
# across the change to winter time on 25 October.
NOW = datetime(2026, 10, 20, 7, 0, tzinfo=UTC)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)  # type: ignore[misc]


async def set_status(db: Database, appointment: m.Appointment, status: str) -> None:
    async with db.write() as session:
        await session.execute(sa.update(m.Appointment).where(
            m.Appointment.id == appointment.id).values(status=status, version=2))


async def test_staff_feed_lists_the_window_and_is_read_alike_by_both_parsers(
    db: Database, make_client: MakeClient,
) -> None:
    """Two weeks back, eight ahead; cancelled ones until past; right local times either side
    of the clock change; REFRESH-INTERVAL, X-PUBLISHED-TTL, ETag and 304."""
    client = await make_client(now=NOW)
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])

    async def appointment(start: datetime, status: str = "booked") -> m.Appointment:
        row = await make_appointment(db, site=site, op=op, start=start, booked_by=agent)
        if status != "booked":
            await set_status(db, row, status)
        return row

    summer = await appointment(paris(2026, 10, 19, 10, 0))        # CEST, yesterday
    winter = await appointment(paris(2026, 10, 26, 10, 0))        # CET, next Monday
    cancelled_ahead = await appointment(paris(2026, 10, 27, 11, 0), "cancelled")
    await appointment(paris(2026, 10, 13, 14, 0), "cancelled")    # cancelled and past
    await appointment(paris(2026, 10, 2, 10, 0))                  # before the window
    await appointment(paris(2026, 12, 21, 10, 0))                 # after the window

    headers = await auth_headers(client, staff)
    created = await client.post("/api/v1/calendar-feeds", headers=headers,
                                json={"scope": "staff", "id": op.staff[0].id})
    assert created.status == 201, await created.text()
    body = await created.json()
    assert set(body) == {"id", "scope", "target_id", "language", "created_at", "url"}
    path = "/" + body["url"].split("/", 3)[3]
    assert path.startswith("/calendars/")
    assert path.endswith(".ics")
    token = path.removeprefix("/calendars/").removesuffix(".ics")
    async with db.read() as session:
        stored = (await session.scalars(sa.select(m.CalendarFeed))).one()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored.token_hash

    answer = await client.get(path)
    assert answer.status == 200
    assert answer.content_type == "text/calendar"
    raw = await answer.read()
    calendar = icalendar.Calendar.from_ical(raw)
    assert str(calendar["refresh-interval"].to_ical().decode()) == "PT15M"
    assert calendar["refresh-interval"].params["VALUE"] == "DURATION"
    assert calendar["x-published-ttl"].to_ical().decode() == "PT15M"
    events = {str(e["uid"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {f"{a.id}@visio" for a in (summer, winter, cancelled_ahead)}
    assert events[f"{summer.id}@visio"].decoded("dtstart") == datetime(
        2026, 10, 19, 10, 0, tzinfo=PARIS)
    assert events[f"{winter.id}@visio"].decoded("dtstart") == datetime(
        2026, 10, 26, 10, 0, tzinfo=PARIS)
    assert events[f"{cancelled_ahead.id}@visio"]["status"] == "CANCELLED"
    assert events[f"{cancelled_ahead.id}@visio"]["sequence"] == 2

    js = await icaljs.parse(raw)
    assert js["props"]["refresh-interval"] == "PT15M"
    assert js["props"]["x-published-ttl"] == "PT15M"
    seen = {e["uid"]: e for e in js["events"]}
    assert seen[f"{summer.id}@visio"]["local_start"] == "2026-10-19T10:00:00"
    assert seen[f"{summer.id}@visio"]["start_utc"] == "2026-10-19T08:00:00.000Z"
    assert seen[f"{winter.id}@visio"]["local_start"] == "2026-10-26T10:00:00"
    assert seen[f"{winter.id}@visio"]["start_utc"] == "2026-10-26T09:00:00.000Z"
    assert seen[f"{cancelled_ahead.id}@visio"]["status"] == "CANCELLED"

    etag = answer.headers["ETag"]
    again = await client.get(path, headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    assert (await client.get(path, headers={"If-None-Match": '"other"'})).status == 200

    listed = await (await client.get("/api/v1/calendar-feeds", headers=headers)).json()
    assert [f["id"] for f in listed["items"]] == [body["id"]]
    assert "url" not in listed["items"][0]
    assert token not in str(listed)

    revoked = await client.delete(f"/api/v1/calendar-feeds/{body['id']}", headers=headers)
    assert revoked.status == 204
    gone = await client.get(path)
    assert gone.status == 404
    assert gone.content_type == "text/plain"
    assert await gone.text() == "Not Found"


async def test_unknown_tokens_are_a_bare_404(client: Client) -> None:
    """Unknown, malformed or other names under /calendars/ answer the same plain 404."""
    for path in ("/calendars/" + "a" * 43 + ".ics", "/calendars/x.ics", "/calendars/abc",
                 "/calendars/" + "a" * 43):
        answer = await client.get(path)
        assert answer.status == 404
        assert answer.content_type == "text/plain"
        assert await answer.text() == "Not Found"


async def test_who_may_subscribe_to_what(db: Database, client: Client) -> None:
    """Staff: themselves and their desk; agents: their sites; admins: anything."""
    site, other_site = await make_site(db), await make_site(db)
    op, other_op = await make_operator(db), await make_operator(db)
    staff = await make_headers(client, await make_user(db, role="staff", staff=op.staff[0]))
    agent = await make_headers(client, await make_user(db, role="agent", sites=[site]))
    admin = await make_headers(client, await make_user(db, role="admin"))
    cases = [
        (staff, "staff", op.staff[0].id, 201), (staff, "desk", op.desk.id, 201),
        (staff, "staff", other_op.staff[0].id, 403), (staff, "desk", other_op.desk.id, 403),
        (staff, "site", site.id, 403),
        (agent, "site", site.id, 201), (agent, "site", other_site.id, 403),
        (agent, "staff", op.staff[0].id, 403),
        (admin, "desk", other_op.desk.id, 201), (admin, "site", other_site.id, 201),
        (admin, "staff", "no-such-staff", 404),
    ]
    for headers, scope, target, expected in cases:
        answer = await client.post("/api/v1/calendar-feeds", headers=headers,
                                   json={"scope": scope, "id": target})
        assert answer.status == expected, (scope, target, await answer.text())
    bad = await client.post("/api/v1/calendar-feeds", headers=admin,
                            json={"scope": "operator", "id": op.operator.id})
    assert bad.status == 400


async def test_a_feed_stops_when_its_owner_loses_the_right(db: Database,
                                                         client: Client) -> None:
    """An agent's site feed answers 404 once the agent leaves the site."""
    site = await make_site(db)
    user = await make_user(db, role="agent", sites=[site])
    created = await client.post("/api/v1/calendar-feeds", headers=await make_headers(
        client, user), json={"scope": "site", "id": site.id})
    path = "/" + (await created.json())["url"].split("/", 3)[3]
    assert (await client.get(path)).status == 200
    async with db.write() as session:
        await session.execute(sa.delete(m.UserSite).where(m.UserSite.user_id == user.id))
    assert (await client.get(path)).status == 404


async def make_headers(client: Client, user: m.User) -> dict[str, str]:
    return await auth_headers(client, user)


def test_window_constants_are_two_weeks_back_and_eight_ahead() -> None:
    """The feed's window, as the issue states it."""
    from visio.services.feeds import AHEAD, PAST
    assert (timedelta(weeks=2), timedelta(weeks=8)) == (PAST, AHEAD)
