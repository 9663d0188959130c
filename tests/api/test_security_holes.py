"""Regression tests for the security holes of issue 16: open redirects, forwarded
addresses that fail open, headers, sessions, request bodies and fair limits. They run on
SQLite and PostgreSQL like every API test."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from ipaddress import ip_network
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import (
    PASSWORD,
    auth_headers,
    make_appointment,
    make_operator,
    make_site,
    make_user,
    usager,
)
from visio import models as m
from visio.app import create_app
from visio.db import Database
from visio.keys import limits_key
from visio.observability import AccessLog
from visio.settings import Settings
from visio.usager_link import LinkKey
from visio.web import session

MONDAY_9 = "2026-11-30T09:00:00+01:00"

#: Values of ``next`` that a browser would turn into another site (tabs and line breaks
#: are dropped from a Location), or that name another site outright.
HOSTILE_NEXT = [
    "/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/\t/evil.example/phish",
    "/\r\n/evil.example/phish", "//evil.example", "/\\evil.example", "\\/evil.example",
    "https://evil.example/", "/ /evil.example", "/\x00/evil.example", "/\x7f/evil.example",
    "http:/evil.example", " /evil.example",
]


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def _next_field(page: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', page)
    assert found, "no next field on the login page"
    return html.unescape(found.group(1))


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_the_language_switch_never_leads_to_another_site(
    client: Client, target: str
) -> None:
    """/lang?next=/%09/evil.example (and every other spelling) goes home, not away."""
    response = await client.get(f"/lang?to=fr&next={quote(target, safe='')}",
                                allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/"


async def test_the_language_switch_still_comes_back_to_the_page(client: Client) -> None:
    """A path of this site, with its query, is kept."""
    response = await client.get(f"/lang?to=nl&next={quote('/staff/agenda?day=2026-11-30')}",
                                allow_redirects=False)
    assert response.headers["Location"] == "/staff/agenda?day=2026-11-30"


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_a_login_never_leads_to_another_site(
    db: Database, client: Client, target: str
) -> None:
    """The login form keeps no hostile next, and a posted one lands home after login."""
    user = await make_user(db, role="agent", sites=[await make_site(db)])
    page = await (await client.get(f"/login?next={quote(target, safe='')}")).text()
    assert _next_field(page) == "/"
    response = await client.post("/login", data={"email": user.email, "password": PASSWORD,
                                                  "csrf": _csrf(page), "next": target},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/"


# ---------------------------------------------------------------- forwarded addresses


@pytest.fixture
async def behind_proxy(settings: Settings) -> AsyncIterator[Client]:
    """The app behind a reverse proxy on the loopback (the test client's address), the
    loopback being allowed metrics and readiness."""
    app = create_app(replace(settings, trusted_proxies=(ip_network("127.0.0.0/8"),),
                             metrics_allowed=(ip_network("127.0.0.0/8"),)),
                     clock=lambda: DEFAULT_NOW)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize("hop", ["unknown", "_hidden", "not an address", "unknown, 127.0.0.1"])
async def test_an_unreadable_forwarded_hop_is_refused_metrics_and_readiness(
    behind_proxy: Client, hop: str
) -> None:
    """The proxy hides the client: it is nobody, not the (allowed) proxy itself."""
    for path in ("/metrics", "/readyz"):
        response = await behind_proxy.get(path, headers={"X-Forwarded-For": hop})
        assert response.status == 403, (path, hop)
        # The proxy asking for itself is still served.
        assert (await behind_proxy.get(path)).status == 200


async def test_clients_hidden_by_the_proxy_share_one_login_budget(
    db: Database, behind_proxy: Client
) -> None:
    """Login throttling counts every hidden client as the one address "unknown"."""
    user = await make_user(db, role="agent", sites=[await make_site(db)])
    statuses = []
    for hop in ("unknown", "_hidden", "unknown", "_x", "unknown", "_hidden"):
        response = await behind_proxy.post(
            "/api/v1/auth/token", json={"email": user.email, "password": "guess"},
            headers={"X-Forwarded-For": hop})
        statuses.append(response.status)
    assert statuses == [401] * 5 + [429]


# ---------------------------------------------------------------- nosniff


async def test_every_answer_forbids_type_sniffing(db: Database, client: Client) -> None:
    """X-Content-Type-Options: nosniff on the API, pages, static files, errors and 404s."""
    user = await make_user(db, role="admin")
    token = (await (await client.post("/api/v1/auth/token", json={
        "email": user.email, "password": PASSWORD})).json())["access_token"]
    answers = [
        await client.get("/healthz"),
        await client.get("/api/v1/openapi.json"),
        await client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"}),
        await client.get("/api/v1/sites"),
        await client.post("/api/v1/auth/token", data=b"{"),
        await client.get("/api/v1/nothing-here"),
        await client.get("/nothing-here"),
        await client.get("/login"),
        await client.get("/static/style.css"),
        await client.get("/static/nothing.js"),
        await client.get("/calendars/nothing.ics"),
        await client.get("/u/nothing"),
        await client.get("/lang?to=fr&next=/", allow_redirects=False),
    ]
    statuses = {response.status for response in answers}
    assert {200, 303, 400, 401, 404} <= statuses
    for response in answers:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", response.url


# ---------------------------------------------------------------- sessions


async def _page_login(client: Client, user: m.User) -> str:
    """Log in through the form; the session cookie's token it set."""
    page = await (await client.get("/login")).text()
    response = await client.post("/login", data={"email": user.email, "password": PASSWORD,
                                                  "csrf": _csrf(page)}, allow_redirects=False)
    assert response.status == 303, await response.text()
    return response.cookies[session.SESSION_COOKIE].value


async def test_logging_in_again_revokes_the_previous_session_of_the_browser(
    db: Database, client: Client
) -> None:
    """The old session cookie's token stops working at the new login; the new one works."""
    user = await make_user(db, role="admin")
    first = await _page_login(client, user)
    second = await _page_login(client, user)
    assert first != second
    old = await client.get("/api/v1/sites", headers={"Authorization": f"Bearer {first}"})
    assert old.status == 401
    new = await client.get("/api/v1/sites", headers={"Authorization": f"Bearer {second}"})
    assert new.status == 200


# ---------------------------------------------------------------- PATCH bodies


async def test_a_patch_without_a_body_is_a_400_and_changes_nothing(
    db: Database, client: Client
) -> None:
    """PATCH of an operator, a service or a site needs its JSON body (the document says
    so); an empty object is still a change of nothing."""
    admin = await make_user(db, role="admin")
    token = (await (await client.post("/api/v1/auth/token", json={
        "email": admin.email, "password": PASSWORD})).json())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
    site = await make_site(db)
    op = await make_operator(db)
    for path, read in ((f"/api/v1/operators/{op.operator.id}",) * 2,
                       (f"/api/v1/services/{op.service.id}", "/api/v1/services"),
                       (f"/api/v1/sites/{site.id}",) * 2):
        before = await (await client.get(read, headers=headers)).json()
        for sent in ({}, {"data": b""}, {"data": b"  \n"}):
            response = await client.patch(path, headers=headers, **sent)  # type: ignore[arg-type]
            assert response.status == 400, (path, await response.text())
            assert response.content_type == "application/problem+json"
            body = await response.json(content_type=None)
            assert "body is required" in body["detail"]
        assert await (await client.get(read, headers=headers)).json() == before
        assert (await client.patch(path, headers=headers, json={})).status == 200


# ---------------------------------------------------------------- access log


async def test_the_access_log_names_routes_never_tokens(
    db: Database, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Feed tokens and usager link tokens (and queries) stay out of the access log: its
    lines carry the route template, the status and the time."""
    site, op = await make_site(db), await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=datetime.fromisoformat(MONDAY_9))
    usager_token = LinkKey.from_secret(settings.secret_key).issue(
        appointment.id, appointment.end)
    feed_token = "f" + secrets.token_urlsafe(30)
    server = TestServer(create_app(settings, clock=lambda: DEFAULT_NOW))
    # The access logger ``visio serve`` runs with.
    await server.start_server(access_log_class=AccessLog)
    client: Client = TestClient(server)
    await client.start_server()
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    try:
        paths = [f"/u/{usager_token}", f"/u/{usager_token}/calendar.ics",
                 f"/calendars/{feed_token}.ics", f"/nowhere/{feed_token}",
                 f"/login?next=/u/{usager_token}"]
        for path in paths:
            await (await client.get(path)).read()
    finally:
        await client.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(lines) == len(paths), lines
    assert not [line for line in lines if usager_token in line or feed_token in line], lines
    assert '"GET /u/{token}" 200' in lines[0]
    assert '"GET /calendars/{name}" 404' in lines[2]


# ---------------------------------------------------------------- fair searches


async def test_one_agents_flood_of_searches_does_not_hold_up_another_agent(
    db: Database, settings: Settings
) -> None:
    """Agent A floods slot searches (one running long, five more waiting): agent B's one
    search gets the place A may not take, at once, while A's searches still wait."""
    app = create_app(replace(settings, search_concurrency=2, search_max_wait_seconds=60),
                     clock=lambda: DEFAULT_NOW)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    site = await make_site(db, departement="59")
    await make_operator(db, departements=["59"])
    flooder = await make_user(db, role="agent", sites=[site])
    other = await make_user(db, role="agent", sites=[site])
    params = {"site_id": site.id, "theme": "famille", "from": "2026-11-30T00:00:00+01:00",
              "to": "2026-12-05T00:00:00+01:00"}
    places = app[limits_key].places
    release = asyncio.Event()
    flood: list[asyncio.Task[int]] = []

    async def long_search() -> None:
        """One of A's searches, running until the test lets it end."""
        async with app[limits_key].expensive(flooder.id):
            await release.wait()

    async def search(headers: dict[str, str]) -> int:
        response = await client.get("/api/v1/slots", params=params, headers=headers)
        await response.read()
        return response.status

    try:
        a_headers = await auth_headers(client, flooder)
        b_headers = await auth_headers(client, other)
        running = asyncio.create_task(long_search())
        flood = [asyncio.create_task(search(a_headers)) for _ in range(5)]
        async with asyncio.timeout(10):
            while True:
                if places.waiting(flooder.id) == 5:
                    break
                await asyncio.sleep(0.01)
        assert await search(b_headers) == 200
        assert places.waiting(flooder.id) == 5
        assert not any(task.done() for task in flood)
        release.set()
        await running
        assert await asyncio.gather(*flood) == [200] * 5
    finally:
        release.set()
        for task in flood:
            task.cancel()
        await client.close()


# ---------------------------------------------------------------- staff choice


async def test_booking_without_a_staff_member_takes_the_one_who_can(
    db: Database, client: Client
) -> None:
    """A desk with a staff member who has no hours (and one who has): every slot the
    search offers is booked without naming anyone, never a 422."""
    site = await make_site(db, departement="59")
    op = await make_operator(db, departements=["59"])
    async with db.write() as session:
        idle = m.StaffMember(desk_id=op.desk.id, display_name="Idle", languages=["fr"],
                             active=True)
        session.add(idle)
    headers = await auth_headers(client, await make_user(db, role="agent", sites=[site]))
    response = await client.get("/api/v1/slots", headers=headers, params={
        "site_id": site.id, "theme": "famille", "from": "2026-11-30T00:00:00+01:00",
        "to": "2026-12-05T00:00:00+01:00"})
    assert response.status == 200, await response.text()
    slots = (await response.json())["items"]
    assert slots
    for slot in slots:
        booked = await client.post(
            "/api/v1/appointments",
            headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
            json={"site_id": site.id, "service_id": op.service.id, "start": slot["start"],
                  "usager": usager()})
        assert booked.status == 201, await booked.text()
        assert (await booked.json())["staff_id"] == op.staff[0].id


async def test_an_error_log_names_the_route_never_the_token(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A usager link or a feed opened while the database is down: the error's log line
    names the route template, and no line or traceback holds the token."""
    gone = replace(settings, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    server = TestServer(create_app(gone, clock=lambda: DEFAULT_NOW))
    await server.start_server(access_log_class=AccessLog)
    client: Client = TestClient(server)
    await client.start_server()
    usager_token = LinkKey.from_secret(settings.secret_key).issue(
        "5e1f5f1e-0000-4000-8000-000000000001", datetime.fromisoformat(MONDAY_9))
    feed_token = "f" + secrets.token_urlsafe(30)
    caplog.set_level(logging.INFO)
    try:
        for path in (f"/u/{usager_token}", f"/calendars/{feed_token}.ics"):
            response = await client.get(path)
            assert response.status >= 500, path
    finally:
        await client.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    # The database away is a 503 (h17): its line names the route and the error's type.
    assert "database unreachable on GET /u/{token} (ConnectionRefusedError)" in errors, errors
    assert "database unreachable on GET /calendars/{name} (ConnectionRefusedError)" \
        in errors, errors
    for record in caplog.records:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info)
                                      if record.exc_info else "")
        assert usager_token not in text
        assert feed_token not in text
