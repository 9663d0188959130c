"""Busy time from staff members' own calendars: fixtures of real-world shapes served over
HTTP, recurrences across the clock change, failures that keep the last good data, SSRF."""

from __future__ import annotations

import dataclasses
import html
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from tests.calendars import served as fx
from tests.conftest import Client
from tests.factories import OperatorBundle, auth_headers, make_operator, make_site, make_user
from visio import models as m
from visio.app import create_app
from visio.calendars.fetch import TIMEOUT, FetchRefused, GuardedResolver, address_allowed, fetch
from visio.calendars.jobs import fetch_calendars, schedule_calendar_fetches
from visio.db import Database
from visio.keys import clock_key, database_key, settings_key
from visio.services import imported_calendars
from visio.settings import Settings

MakeClient = Callable[..., Awaitable[Client]]
PARIS = ZoneInfo("Europe/Paris")
# Monday 12 October 2026, 09:00 in Paris (summer time until Sunday 25 October).
NOW = datetime(2026, 10, 12, 7, 0, tzinfo=UTC)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)  # type: ignore[misc]


@dataclasses.dataclass
class World:
    client: Client
    db: Database
    op: OperatorBundle
    site: m.Site
    staff_headers: dict[str, str]
    agent_headers: dict[str, str]

    @property
    def staff_id(self) -> str:
        return self.op.staff[0].id

    async def register(self, url: str, *, expect: int = 201, **extra: Any) -> dict[str, Any]:
        answer = await self.client.post(f"/api/v1/staff/{self.staff_id}/calendars",
                                        headers=self.staff_headers, json={"url": url, **extra})
        assert answer.status == expect, await answer.text()
        result: dict[str, Any] = await answer.json()
        return result

    async def fetch(self, only: str | None = None) -> dict[str, str | None]:
        app = self.client.app
        return await imported_calendars.refresh_due(
            db=app[database_key], settings=app[settings_key], now=app[clock_key](), only=only)

    async def calendars(self) -> dict[str, dict[str, Any]]:
        answer = await self.client.get(f"/api/v1/staff/{self.staff_id}/calendars",
                                       headers=self.staff_headers)
        assert answer.status == 200
        return {c["id"]: c for c in (await answer.json())["items"]}

    async def busy(self, calendar_id: str | None = None) -> set[tuple[datetime, datetime]]:
        query = sa.select(m.BusyPeriod.start, m.BusyPeriod.end).where(
            m.BusyPeriod.staff_id == self.staff_id)
        if calendar_id is not None:
            query = query.where(m.BusyPeriod.source == f"cal:{calendar_id}")
        async with self.db.read() as session:
            return {(s, e) for s, e in (await session.execute(query)).all()}

    async def slots(self, day_from: str, day_to: str) -> set[str]:
        answer = await self.client.get("/api/v1/slots", headers=self.agent_headers, params={
            "site_id": self.site.id, "theme": self.op.service.theme,
            "from": f"{day_from}T00:00:00+02:00", "to": f"{day_to}T00:00:00+01:00"})
        assert answer.status == 200, await answer.text()
        return {s["start"] for s in (await answer.json())["items"]}


async def make_world(db: Database, client: Client) -> World:
    site = await make_site(db)
    op = await make_operator(db)
    staff = await make_user(db, role="staff", staff=op.staff[0])
    agent = await make_user(db, role="agent", sites=[site])
    return World(client=client, db=db, op=op, site=site,
                 staff_headers=await auth_headers(client, staff),
                 agent_headers=await auth_headers(client, agent))


async def test_fixtures_of_each_vendor_become_exactly_their_busy_time(
    db: Database, make_client: MakeClient, caplog: pytest.LogCaptureFixture,
) -> None:
    """Outlook (Windows zones, RRULE, EXDATE, moved occurrence), Google (UTC, a cancelled
    event), all-day and transparent events: only the busy time, at the right instants."""
    caplog.set_level(logging.DEBUG)
    world = await make_world(db, await make_client(now=NOW))
    async with fx.serve() as server:
        ids = {name: (await world.register(server.url(f"/{name}.ics"), **extra))["id"]
               for name, extra in [("outlook", {"username": "paul", "password": "s3cret-pw"}),
                                   ("google", {}), ("allday", {}), ("transparent", {})]}
        results = await world.fetch()
    assert results == dict.fromkeys(ids.values())
    assert await world.busy(ids["outlook"]) == {
        (paris(2026, 10, 20, 14), paris(2026, 10, 20, 15)),      # first Tuesday
        # 27 October: EXDATE. 3 November: moved to Wednesday 4 November 09:00.
        (paris(2026, 11, 4, 9), paris(2026, 11, 4, 10)),
        (paris(2026, 11, 10, 14), paris(2026, 11, 10, 15)),      # the last, after the change
        (paris(2026, 10, 22, 16), paris(2026, 10, 22, 16, 30)),  # "W. Europe Standard Time"
    }
    assert await world.busy(ids["google"]) == {
        (datetime(2026, 10, 21, 7, 30, tzinfo=UTC), datetime(2026, 10, 21, 8, 30, tzinfo=UTC))}
    assert await world.busy(ids["allday"]) == {(paris(2026, 10, 23, 0), paris(2026, 10, 24, 0))}
    assert await world.busy(ids["transparent"]) == set()
    shown = await world.calendars()
    assert {c["status"] for c in shown.values()} == {"ok"}
    assert [shown[ids[n]]["busy_periods"] for n in ("outlook", "google", "allday",
                                                     "transparent")] == [4, 1, 1, 0]
    assert shown[ids["outlook"]]["has_credentials"] is True
    assert shown[ids["outlook"]]["last_success_at"] is not None
    assert "s3cret-pw" not in str(shown)
    assert "password" not in shown[ids["outlook"]]
    async with db.read() as session:
        sealed = await session.scalar(sa.select(m.ImportedCalendar.credentials).where(
            m.ImportedCalendar.id == ids["outlook"]))
    assert sealed is not None
    assert "s3cret-pw" not in sealed
    assert "paul" not in sealed
    outlook_request = next(h for p, h in server.requests if p == "/outlook.ics")
    assert outlook_request["Authorization"].startswith("Basic ")
    assert "s3cret-pw" not in caplog.text


async def test_a_monday_meeting_across_the_clock_change_removes_exactly_its_slots(
    db: Database, make_client: MakeClient,
) -> None:
    """Mondays 10:00–11:00 for three weeks from 19 October: those slots go, nothing else;
    booking one of them is refused."""
    world = await make_world(db, await make_client(now=NOW))
    before = await world.slots("2026-10-19", "2026-11-10")
    async with fx.serve() as server:
        await world.register(server.url("/monday.ics"))
        assert set((await world.fetch()).values()) == {None}
    after = await world.slots("2026-10-19", "2026-11-10")
    assert before - after == {
        "2026-10-19T10:00:00+02:00", "2026-10-19T10:30:00+02:00",
        "2026-10-26T10:00:00+01:00", "2026-10-26T10:30:00+01:00",
        "2026-11-02T10:00:00+01:00", "2026-11-02T10:30:00+01:00",
    }
    assert after <= before
    assert "2026-11-09T10:00:00+01:00" in after
    booked = await world.client.post("/api/v1/appointments", headers={
        **world.agent_headers, "Idempotency-Key": "monday-26"}, json={
        "site_id": world.site.id, "service_id": world.op.service.id,
        "start": "2026-10-26T10:30:00+01:00",
        "usager": {"first_name": "Jeanne", "last_name": "Martin", "phone": None,
                   "email": None, "language": "fr", "consent": True}})
    assert booked.status in (409, 422), await booked.text()


async def test_failures_keep_the_last_good_busy_time_and_show_their_error(
    db: Database, make_client: MakeClient,
) -> None:
    """Broken, 6 MB (announced or streamed), not ICS, a 500, a redirect to the metadata
    address, an unreachable server: the busy time stays, the error code is shown."""
    world = await make_world(db, await make_client(now=NOW))
    async with fx.serve() as server:
        server.changing = fx.OUTLOOK
        calendar_id = (await world.register(server.url("/changing.ics")))["id"]
        assert await world.fetch(calendar_id) == {calendar_id: None}
        good = await world.busy(calendar_id)
        assert len(good) == 4

        async def fails_with(code: str) -> None:
            server.changing_etag = f'"{code}"'  # a new version each time, never a 304
            assert await world.fetch(calendar_id) == {calendar_id: code}
            assert await world.busy(calendar_id) == good
            shown = (await world.calendars())[calendar_id]
            assert (shown["status"], shown["last_error"], shown["busy_periods"]) == (
                "error", code, 4)

        server.changing = fx.BROKEN
        await fails_with("broken")
        server.changing = fx.six_megabytes()
        await fails_with("too_large")
        server.changing = fx.NOT_ICS
        await fails_with("not_ics")
        server.changing_status = 500
        await fails_with("http_500")
        server.changing_status, server.changing_redirect = 200, "http://169.254.169.254/"
        await fails_with("address_refused")
        streamed = (await world.register(server.url("/big-chunked.ics")))["id"]
        assert await world.fetch(streamed) == {streamed: "too_large"}
        assert len(fx.six_megabytes()) > 6 * 1024 * 1024 - 100
    # The server is gone: unreachable, and still the last good data.
    await fails_with("unreachable")


async def test_the_next_fetch_frees_what_the_feed_no_longer_holds(
    db: Database, make_client: MakeClient,
) -> None:
    """A changed feed replaces the busy time; an unchanged one answers 304 to If-None-Match
    and keeps it."""
    world = await make_world(db, await make_client(now=NOW))
    before = await world.slots("2026-10-19", "2026-11-10")
    async with fx.serve() as server:
        server.changing = fx.OUTLOOK
        calendar_id = (await world.register(server.url("/changing.ics")))["id"]
        await world.fetch(calendar_id)
        assert "2026-10-20T14:00:00+02:00" not in await world.slots("2026-10-19", "2026-11-10")
        server.changing, server.changing_etag = fx.MONDAY_MEETING, '"v2"'
        assert await world.fetch(calendar_id) == {calendar_id: None}
        assert await world.busy(calendar_id) == {
            (paris(2026, 10, 19, 10), paris(2026, 10, 19, 11)),
            (paris(2026, 10, 26, 10), paris(2026, 10, 26, 11)),
            (paris(2026, 11, 2, 10), paris(2026, 11, 2, 11))}
        after = await world.slots("2026-10-19", "2026-11-10")
        assert "2026-10-20T14:00:00+02:00" in after
        assert before - after == {s for s in before if s[11:16] in ("10:00", "10:30")
                                  and s[:10] in ("2026-10-19", "2026-10-26", "2026-11-02")}
        server.requests.clear()
        assert await world.fetch(calendar_id) == {calendar_id: None}
        assert server.requests[0][1]["If-None-Match"] == '"v2"'
        assert len(await world.busy(calendar_id)) == 3
        assert (await world.calendars())[calendar_id]["status"] == "ok"


async def test_redirects_are_followed_only_to_allowed_addresses(
    db: Database, make_client: MakeClient,
) -> None:
    """A redirect on the same server is followed; one to 169.254.169.254 is refused even with
    VISIO_CALENDAR_ALLOW_PRIVATE=1, and nothing of the target is stored."""
    world = await make_world(db, await make_client(now=NOW))
    async with fx.serve() as server:
        good = (await world.register(server.url("/to-outlook")))["id"]
        bad = (await world.register(server.url("/to-metadata")))["id"]
        assert await world.fetch() == {good: None, bad: "address_refused"}
    assert len(await world.busy(good)) == 4
    assert await world.busy(bad) == set()
    refused = await world.register("http://169.254.169.254/latest/meta-data/", expect=422)
    assert refused["reason"] == "address_refused"


async def test_without_the_test_setting_private_addresses_are_refused(
    db: Database, settings: Settings,
) -> None:
    """Registering loopback, private, link-local, unspecified or metadata addresses is a 422;
    a stored one is refused at fetch time too; credentials in the URL are refused."""
    strict = dataclasses.replace(settings, calendar_allow_private=False)
    assert Settings.from_env({}).calendar_allow_private is False
    client: Client = TestClient(TestServer(create_app(strict, clock=lambda: NOW)))
    await client.start_server()
    try:
        world = await make_world(db, client)
        async with fx.serve() as server:
            port = server.base.rsplit(":", 1)[1]
            for url in (server.url("/outlook.ics"), f"http://localhost:{port}/outlook.ics",
                        "http://[::1]/cal.ics", "http://10.1.2.3/cal.ics",
                        "http://192.168.1.20/cal.ics", "http://0.0.0.0/cal.ics",
                        "http://169.254.169.254/latest/meta-data/",
                        "http://[fd00:ec2::254]/", "http://[::ffff:127.0.0.1]/cal.ics",
                        "https://user:pw@calendar.example.org/cal.ics"):
                body = await world.register(url, expect=422)
                assert body["field"] == "url"
            assert (await world.register("ftp://calendar.example.org/x.ics",
                                         expect=400))["field"] == "url"
            async with db.write() as session:
                row = m.ImportedCalendar(staff_id=world.staff_id, url=server.url("/outlook.ics"),
                                         status="pending", busy_count=0)
                session.add(row)
            results = await imported_calendars.refresh_due(db=db, settings=strict, now=NOW)
        assert results == {row.id: "address_refused"}
        assert await world.busy() == set()
    finally:
        await client.close()


@pytest.mark.parametrize(("address", "private_allowed", "expected"), [
    ("93.184.215.14", False, True),
    ("2a00:1450:4007:80e::200e", False, True),
    ("127.0.0.1", False, False), ("127.0.0.1", True, True),
    ("10.0.0.5", False, False), ("10.0.0.5", True, True),
    ("172.16.3.4", False, False), ("192.168.0.1", False, False),
    ("::1", False, False), ("::1", True, True), ("fc00::1", False, False),
    ("169.254.169.254", False, False), ("169.254.169.254", True, False),
    ("169.254.1.1", True, False), ("fe80::1", True, False), ("fd00:ec2::254", True, False),
    ("100.100.100.200", True, False), ("0.0.0.0", True, False), ("::", True, False),
    ("::ffff:169.254.169.254", True, False), ("::ffff:127.0.0.1", False, False),
    ("224.0.0.1", True, False), ("not an address", True, False),
])
def test_address_policy(address: str, private_allowed: bool, expected: bool) -> None:
    """Public addresses pass; private ones only when allowed; metadata and link-local never."""
    assert address_allowed(address, allow_private=private_allowed) is expected


def _mapped(v4: int) -> int:
    return 0xFFFF << 32 | v4


def _local_nat64(v4: int) -> int:
    # RFC 6052 /48 layout (bits 48-63, then 72-87) and the /96 one at once.
    return (0x0064_FF9B_0001 << 80 | (v4 >> 16) << 64 | (v4 & 0xFFFF) << 40 | v4)


def _teredo(v4: int) -> int:
    # Server 65.54.227.120 (public), flags 0x8000, port, then the client inverted.
    return 0x2001_0000_4136_E378_8000_63BF << 32 | (~v4 & 0xFFFFFFFF)


EMBEDDINGS: dict[str, Callable[[int], int]] = {
    "IPv4-mapped ::ffff:0:0/96": _mapped,
    "IPv4-compatible ::/96": lambda v4: v4,
    "NAT64 64:ff9b::/96": lambda v4: 0x0064_FF9B << 96 | v4,
    "local NAT64 64:ff9b:1::/48": _local_nat64,
    "6to4 2002::/16": lambda v4: 0x2002 << 112 | v4 << 80 | 1,
    "Teredo 2001::/32": _teredo,
}


@pytest.mark.parametrize("form", list(EMBEDDINGS))
@pytest.mark.parametrize(("embedded", "private_allowed", "expected"), [
    ("127.0.0.1", False, False), ("10.1.2.3", False, False), ("192.168.4.5", False, False),
    ("169.254.169.254", True, False), ("169.254.10.1", True, False),
    ("100.100.100.200", True, False), ("0.0.0.7", True, False),
    ("93.184.215.14", False, True), ("93.184.215.14", True, True),
])
def test_ipv6_forms_embedding_ipv4_are_judged_by_the_embedded_address(
    form: str, embedded: str, private_allowed: bool, expected: bool,
) -> None:
    """6to4, Teredo, NAT64, IPv4-mapped and -compatible addresses lead to the IPv4 address
    they hold: loopback, private, link-local and metadata ones are refused, public ones
    pass."""
    v6 = ipaddress.IPv6Address(EMBEDDINGS[form](int(ipaddress.IPv4Address(embedded))))
    assert address_allowed(str(v6), allow_private=private_allowed) is expected, str(v6)


@pytest.mark.parametrize("address", ["fec0::1", "fec0:0:0:1::10", "feff:ffff::1"])
def test_deprecated_site_local_addresses_are_private(address: str) -> None:
    """fec0::/10 (site-local, deprecated by RFC 3879) is never a public calendar host."""
    assert address_allowed(address, allow_private=False) is False


def test_a_local_nat64_address_passes_only_when_both_layouts_lead_to_a_public_host() -> None:
    """64:ff9b:1::/48 may hold its IPv4 address in the /48 or the /96 layout: 127.0.0.1 in
    the first and a public address in the last 32 bits is still refused."""
    public = int(ipaddress.IPv4Address("93.184.215.14"))
    loopback_in_48 = (0x0064_FF9B_0001 << 80 | 0x7F00 << 64 | 0x0001 << 40 | public)
    assert address_allowed(str(ipaddress.IPv6Address(loopback_in_48)),
                           allow_private=False) is False


async def test_the_resolver_refuses_names_that_resolve_to_loopback() -> None:
    """A name is checked again at connection time (DNS rebinding)."""
    resolver = GuardedResolver(allow_private=False)
    try:
        with pytest.raises(FetchRefused):
            await resolver.resolve("localhost", 80, socket.AF_INET)
        allowed = GuardedResolver(allow_private=True)
        assert (await allowed.resolve("localhost", 80, socket.AF_INET))[0]["host"] == "127.0.0.1"
        await allowed.close()
    finally:
        await resolver.close()


async def test_who_manages_imported_calendars(db: Database, make_client: MakeClient) -> None:
    """The staff member or an admin; for an agent or a colleague they do not exist; removal
    frees the time."""
    client = await make_client(now=NOW)
    world = await make_world(db, client)
    colleague = await make_user(db, role="staff", staff=(await make_operator(db)).staff[0])
    admin = await auth_headers(client, await make_user(db, role="admin"))
    url = f"/api/v1/staff/{world.staff_id}/calendars"
    body = {"url": "https://calendar.example.org/never-fetched.ics"}
    for headers, expected in ((world.agent_headers, 404),
                              (await auth_headers(client, colleague), 404)):
        assert (await client.post(url, headers=headers, json=body)).status == expected
        assert (await client.get(url, headers=headers)).status == expected
    assert (await client.post("/api/v1/staff/nobody/calendars", headers=admin,
                              json=body)).status == 404
    async with fx.serve() as server:
        created = await client.post(url, headers=admin, json={"url": server.url("/google.ics")})
        assert created.status == 201
        calendar_id = (await created.json())["id"]
        await world.fetch(calendar_id)
    assert len(await world.busy(calendar_id)) == 1
    removed = await client.delete(f"{url}/{calendar_id}", headers=world.staff_headers)
    assert removed.status == 204
    assert await world.busy(calendar_id) == set()
    assert await world.calendars() == {}
    assert (await client.delete(f"{url}/{calendar_id}", headers=admin)).status == 404


def test_horizon_and_window_follow_the_services() -> None:
    """Expansion runs over the booking horizon; conditional fetches re-expand twice a day."""
    assert imported_calendars.DEFAULT_HORIZON_DAYS == 56
    assert timedelta(hours=12) == imported_calendars.REEXPAND_AFTER


async def test_a_server_that_never_answers_times_out() -> None:
    """The client's timeout ends a fetch that gets no answer."""
    async with fx.serve() as server, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=0.5)) as http:
        with pytest.raises(FetchRefused) as refused:
            await fetch(http, server.url("/hang"), allow_private=True)
    assert refused.value.code == "timeout"
    assert TIMEOUT.total == 30


async def test_the_background_job_fetches_the_calendars_due(
    db: Database, make_client: MakeClient,
) -> None:
    """The scheduled job fetches new and stale calendars, not fresh ones."""
    world = await make_world(db, await make_client(now=NOW))
    scheduler = AsyncIOScheduler()
    schedule_calendar_fetches(scheduler, world.client.app)
    assert [job.id for job in scheduler.get_jobs()] == ["visio.calendars.fetch"]
    async with fx.serve() as server:
        calendar_id = (await world.register(server.url("/google.ics")))["id"]
        assert await fetch_calendars(world.client.app) == {calendar_id: None}
        assert await fetch_calendars(world.client.app) == {}  # fetched at this instant
    assert len(await world.busy(calendar_id)) == 1


async def test_an_unparsable_address_or_a_lone_surrogate_is_a_400_naming_the_field(
    db: Database, make_client: MakeClient,
) -> None:
    """``htTp://X]"C<5c.X`` fits the address pattern but is no address, and a user name
    holding a lone surrogate cannot be stored: each a 400 naming its field, nothing
    registered."""
    world = await make_world(db, await make_client(now=NOW))
    url = f"/api/v1/staff/{world.staff_id}/calendars"
    for body, field in (({"url": 'htTp://X]"C<5c.X'}, "url"),
                        ({"url": "https://calendar.example.org/a.ics", "username": "\ud800"},
                         "username"),
                        # Both wrong: the first field read is named.
                        ({"url": 'htTp://X]"C<5c.X', "username": "\ud800"}, "url"),
                        ({"url": "https://calendar.example.org/a.ics", "username": "paul",
                          "password": "pw\udfff"}, "password")):
        answer = await world.client.post(url, headers={**world.staff_headers,
                                                       "Accept-Language": "en"}, json=body)
        assert answer.status == 400, await answer.text()
        problem = await answer.json()
        assert problem["field"] == field
        assert field in problem["detail"]
    assert await world.calendars() == {}


async def test_the_staff_page_shows_a_sentence_for_an_unparsable_address(
    db: Database, make_client: MakeClient,
) -> None:
    """The form on /staff/availability answers a 400 page with the catalogue's sentence,
    in the staff member's language, and registers nothing."""
    from tests.web.test_pages import csrf_of, log_in

    client = await make_client(now=NOW)
    op = await make_operator(db)
    staff = await make_user(db, role="staff", staff=op.staff[0])
    await log_in(client, staff)
    page = await client.get("/staff/availability")
    answer = await client.post("/staff/calendars", data={
        "url": 'htTp://X]"C<5c.X', "username": "", "password": "",
        "csrf": csrf_of(await page.text())}, allow_redirects=False)
    assert answer.status == 400
    shown = html.unescape(await answer.text())
    assert ("Ce n’est pas une adresse d’agenda : collez l’adresse https:// complète que "
            "donne votre logiciel d’agenda.") in shown
    assert "champ url" not in shown
    async with db.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(
            m.ImportedCalendar)) == 0
