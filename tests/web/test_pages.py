"""The pages over HTTP: sessions, CSRF, logout, language, agenda, presence, phone check."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from signaling import CallEvent
from tests.conftest import DEFAULT_NOW, Client
from tests.factories import (
    PASSWORD,
    auth_headers,
    make_appointment,
    make_operator,
    make_site,
    make_user,
)
from visio import models as m
from visio.db import Database
from visio.services import calls
from visio.settings import Settings
from visio.web import session


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def log_in(client: Client, user: m.User) -> str:
    """Through the form; returns the page it lands on."""
    csrf = csrf_of(await (await client.get("/login")).text())
    response = await client.post("/login", data={"email": user.email, "password": PASSWORD,
                                                 "csrf": csrf}, allow_redirects=False)
    assert response.status == 303, await response.text()
    return str(response.headers["Location"])


async def test_login_opens_an_httponly_lax_session(client: Client, db: Database) -> None:
    """The session cookie is HttpOnly and SameSite=Lax; the agent lands on booking."""
    site = await make_site(db)
    agent = await make_user(db, role="agent", sites=[site])
    csrf = csrf_of(await (await client.get("/login")).text())
    response = await client.post("/login", data={"email": agent.email, "password": PASSWORD,
                                                 "csrf": csrf}, allow_redirects=False)
    assert response.status == 303
    cookie = response.cookies[session.SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]
    home = await client.get("/", allow_redirects=False)
    assert home.headers["Location"] == "/agent/book"


async def test_session_cookie_is_secure_over_https(
        settings: Settings, db: Database) -> None:
    """With an https base URL the cookies are Secure."""
    site = await make_site(db)
    agent = await make_user(db, role="agent", sites=[site])
    from aiohttp.test_utils import TestClient, TestServer

    from visio.app import create_app

    app = create_app(replace(settings, base_url="https://visio.example"),
                     clock=lambda: DEFAULT_NOW)
    async with TestClient(TestServer(app)) as https_client:
        page = await https_client.get("/login")
        csrf = csrf_of(await page.text())
        assert page.cookies[session.CSRF_COOKIE]["secure"] is True
        # The test client, on http, would not send a Secure cookie back by itself.
        response = await https_client.post(
            "/login", data={"email": agent.email, "password": PASSWORD, "csrf": csrf},
            cookies={session.CSRF_COOKIE: page.cookies[session.CSRF_COOKIE].value},
            allow_redirects=False)
        assert response.status == 303
        assert response.cookies[session.SESSION_COOKIE]["secure"] is True


async def test_forms_without_the_token_or_from_elsewhere_are_refused(
        client: Client, db: Database) -> None:
    """No CSRF token, a wrong one, or another Origin: 403, no session."""
    site = await make_site(db)
    agent = await make_user(db, role="agent", sites=[site])
    csrf = csrf_of(await (await client.get("/login")).text())
    form = {"email": agent.email, "password": PASSWORD}
    for data, headers in (
        (form, {}),
        ({**form, "csrf": "0" * 64}, {}),
        ({**form, "csrf": csrf}, {"Origin": "https://evil.example"}),
    ):
        response = await client.post("/login", data=data, headers=headers,
                                     allow_redirects=False)
        assert response.status == 403
        assert session.SESSION_COOKIE not in response.cookies


async def test_logout_ends_the_session_on_the_server(client: Client, db: Database) -> None:
    """After logout the session's token is revoked: replaying the old cookie gets nothing."""
    site = await make_site(db)
    agent = await make_user(db, role="agent", sites=[site])
    await log_in(client, agent)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[
        session.SESSION_COOKIE].value
    page = await client.get("/agent/today")
    response = await client.post("/logout", data={"csrf": csrf_of(await page.text())},
                                 allow_redirects=False)
    assert response.status == 303
    replay = await client.get("/agent/today", cookies={session.SESSION_COOKIE: token},
                              allow_redirects=False)
    assert replay.status == 303
    assert replay.headers["Location"].startswith("/login")
    api = await client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"})
    assert api.status == 401


async def test_language_is_french_by_default_and_remembered(client: Client) -> None:
    """lang="fr" first; the switch to Dutch is kept in a cookie for the next pages."""
    first = await client.get("/login")
    assert '<html lang="fr">' in await first.text()
    assert "Se connecter" in await first.text()
    switch = await client.get("/lang?to=nl&next=/login", allow_redirects=False)
    assert switch.headers["Location"] == "/login"
    assert switch.cookies[session.LANG_COOKIE].value == "nl"
    page = await client.get("/login")
    assert '<html lang="nl">' in await page.text()
    assert "Aanmelden" in await page.text()
    elsewhere = await client.get("/lang?to=nl&next=//evil.example", allow_redirects=False)
    assert elsewhere.headers["Location"] == "/"


async def test_agenda_shows_the_day_and_presence_follows_the_kiosk(
        make_client: Callable[..., Awaitable[Client]], db: Database) -> None:
    """Staff see first name, theme and site; the kiosk's join and leave drive "arrived"."""
    site = await make_site(db)
    op = await make_operator(db)
    other = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])
    stranger = await make_user(db, role="staff", staff=other.staff[0])
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    appointment = await make_appointment(db, site=site, op=op, start=start, booked_by=agent)
    client = await make_client(now=start - timedelta(minutes=10))
    await log_in(client, staff)
    page = await (await client.get("/staff/agenda?date=2026-11-24")).text()
    assert f'data-appointment="{appointment.id}"' in page
    assert "Jeanne" in page
    assert site.name in page
    assert 'aria-disabled="true"' not in page  # Join is open 10 minutes before

    async def present() -> list[str]:
        response = await client.get(f"/web/presence?ids={appointment.id}")
        return list((await response.json())["present"])

    assert await present() == []
    await calls.record_event(db=db, appointment_id=appointment.id, event=CallEvent(
        at=start - timedelta(minutes=9), kind="join", peer_id=f"kiosk-{site.id}", role="kiosk",
        detail={}))
    assert await present() == [appointment.id]
    await calls.record_event(db=db, appointment_id=appointment.id, event=CallEvent(
        at=start - timedelta(minutes=8), kind="leave", peer_id=f"kiosk-{site.id}",
        role="kiosk", detail={"close_code": 1006}))
    assert await present() == []

    outsider = await make_client(now=start)
    await log_in(outsider, stranger)
    assert "Jeanne" not in await (await outsider.get("/staff/agenda?date=2026-11-24")).text()
    response = await outsider.get(f"/web/presence?ids={appointment.id}")
    assert (await response.json())["present"] == []


@pytest.mark.parametrize(("number", "ok"), [("06 12 34 56 78", True), ("+32 470 12 34 56", True),
                                            ("06 12", False), ("+1 202 555 0100", False)])
async def test_phone_is_checked_as_typed(client: Client, db: Database, number: str,
                                         ok: bool) -> None:
    """The booking page asks the server's rule: French and Belgian numbers only."""
    site = await make_site(db)
    agent = await make_user(db, role="agent", sites=[site])
    await log_in(client, agent)
    response = await client.get("/web/phone", params={"number": number})
    body = await response.json()
    assert body["ok"] is ok
    assert body["message"]


async def test_script_posts_need_the_page_token(client: Client, db: Database) -> None:
    """A join grant asked without the page's CSRF header is refused."""
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=DEFAULT_NOW + timedelta(minutes=5))
    await log_in(client, agent)
    refused = await client.post(f"/web/appointments/{appointment.id}/join")
    assert refused.status == 403
    page = await (await client.get(f"/call/{appointment.id}")).text()
    granted = await client.post(f"/web/appointments/{appointment.id}/join",
                                headers={session.CSRF_HEADER: csrf_of(page)})
    assert granted.status == 200
    assert (await granted.json())["role"] == "kiosk"


async def test_today_opens_join_15_minutes_before(
        make_client: Callable[..., Awaitable[Client]], db: Database) -> None:
    """The day's list: Join is open from 15 minutes before the start; before, it says from
    when in words (its call page waits until then)."""
    site = await make_site(db)
    op = await make_operator(db, staff=2)
    agent = await make_user(db, role="agent", sites=[site])
    soon = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    later = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    first = await make_appointment(db, site=site, op=op, start=soon, booked_by=agent)
    second = await make_appointment(db, site=site, op=op, start=later, booked_by=agent,
                                    staff=op.staff[1])
    client = await make_client(now=soon - timedelta(minutes=14))
    await log_in(client, agent)
    page = await (await client.get("/agent/today?date=2026-11-24")).text()
    assert f'href="/call/{first.id}"' in page
    assert f'class="button primary" href="/call/{second.id}"' not in page
    assert "Possible à partir de 14:45" in page
    assert page.count("disabled") == 0


async def test_agent_prints_the_convocation_with_the_session(
        client: Client, db: Database, make_client: Callable[..., Awaitable[Client]]) -> None:
    """The confirmation's convocation link answers with the session (no bearer header):
    the same page as the API's, with the same access check."""
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=DEFAULT_NOW + timedelta(days=1))
    await log_in(client, agent)
    page = await (await client.get(f"/agent/appointments/{appointment.id}")).text()
    response = await client.get(f"/agent/appointments/{appointment.id}/convocation")
    assert f'href="/agent/appointments/{appointment.id}/convocation"' in page
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "Jeanne" in await response.text()
    api = await client.get(f"/api/v1/appointments/{appointment.id}/convocation",
                           headers=await auth_headers(client, agent))
    assert await api.text() == await response.text()
    stranger = await make_user(db, role="agent", sites=[await make_site(db)])
    other = await make_client()
    await log_in(other, stranger)
    refused = await other.get(f"/agent/appointments/{appointment.id}/convocation")
    assert refused.status == 404


async def test_today_lists_the_outbox_messages(client: Client, db: Database) -> None:
    """Each appointment of the day says which messages go to the usager, and their state."""
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    start = DEFAULT_NOW + timedelta(hours=3)
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent, start=start)
    async with db.write() as session:
        session.add(m.OutboxRow(
            appointment_id=appointment.id, appointment_version=appointment.version,
            kind="confirmation", channel="sms", audience="usager", recipient="+33612345678",
            language="fr", due_at=DEFAULT_NOW, status="sent"))
        session.add(m.OutboxRow(
            appointment_id=appointment.id, appointment_version=appointment.version + 5,
            kind="reminder", channel="email", audience="usager", recipient="x@example.org",
            language="fr", due_at=DEFAULT_NOW, status="pending"))
    await log_in(client, agent)
    page = await (await client.get("/agent/today")).text()
    cell = page[page.index(f'data-notifications="{appointment.id}"'):]
    cell = cell[:cell.index("</td>")]
    assert "Confirmation par SMS" in cell
    assert "envoyé" in cell
    assert "Rappel" not in cell  # another version's row


async def test_booking_form_filters_by_country_and_explains_a_422(
        client: Client, db: Database) -> None:
    """Belgium shows the cross-border operators only; a bad phone is a sentence, no booking."""
    site = await make_site(db)
    french = await make_operator(db, country="FR")
    belgian = await make_operator(db, country="BE", languages=("fr", "nl"))
    agent = await make_user(db, role="agent", sites=[site])
    await log_in(client, agent)
    page = await (await client.get(
        "/agent/book", params={"theme": "famille", "country": "BE", "day": "2026-11-24"})).text()
    assert belgian.operator.name in page
    assert french.operator.name not in page
    slot = re.search(r'name="slot" value="([^"]+)"', page)
    assert slot, "no slot offered"
    idem = re.search(r'name="idem" value="([^"]+)"', page)
    assert idem
    response = await client.post("/agent/book", data={
        "csrf": csrf_of(page), "idem": idem.group(1), "site_id": site.id, "theme": "famille",
        "country": "BE", "day": "2026-11-24", "slot": slot.group(1), "first_name": "Jan",
        "last_name": "Peeters", "phone": "12", "language": "nl"}, allow_redirects=False)
    assert response.status == 422
    text = await response.text()
    assert 'id="refusal"' in text
    assert "numéro de téléphone" in text
    async with db.read() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(m.Appointment))
    assert count == 0


async def test_usager_link_page_has_the_pages_look_and_switch(
        client: Client, db: Database, settings: Settings) -> None:
    """/u/{token}: the pages' layout and style sheet, the usager's language until the
    switch picks another (remembered), the .ics, the cancel form bound to the token."""
    from visio.notify.compose import load_facts, usager_url
    from visio.usager_link import LinkKey

    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=DEFAULT_NOW + timedelta(days=1))
    async with db.write() as tx:
        row = await tx.get(m.Appointment, appointment.id)
        assert row is not None
        row.usager_language = "nl"
    facts = await load_facts(db=db, appointment_id=appointment.id)
    assert facts is not None
    key = LinkKey.from_secret(settings.secret_key)
    path = usager_url(facts, key=key, base_url=settings.base_url).removeprefix(
        settings.base_url)
    token = path.removeprefix("/u/")

    response = await client.get(path)
    page = await response.text()
    assert response.status == 200
    assert '<html lang="nl">' in page
    assert '<link rel="stylesheet" href="/static/style.css">' in page
    assert 'class="skip" href="#main"' in page
    assert "<style>" not in page  # no inline style any more: the shared style sheet
    assert f'href="/lang?to=fr&amp;next=/u/{token}"' in page
    assert 'aria-current="true">Nederlands' in page
    assert f'href="/u/{token}/calendar.ics"' in page
    assert f'href="/u/{token}/cancel"' in page
    confirm = await (await client.get(f"{path}/cancel")).text()
    assert f'name="csrf" value="{key.csrf(token)}"' in confirm
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Robots-Tag"] == "noindex"
    assert "no-store" in response.headers["Cache-Control"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]

    # The switch: French from now on, on this page and the others.
    switch = await client.get(f"/lang?to=fr&next=/u/{token}", allow_redirects=False)
    assert switch.headers["Location"] == f"/u/{token}"
    page = await (await client.get(path)).text()
    assert '<html lang="fr">' in page
    assert "Votre rendez-vous vidéo" in page
    assert '<html lang="fr">' in await (await client.get("/login")).text()

    # A forged form is a plain explanation in the same look; nothing changes.
    refused = await client.post(f"{path}/cancel", data={"csrf": "forged"})
    assert refused.status == 403
    text = await refused.text()
    assert '<link rel="stylesheet" href="/static/style.css">' in text
    assert 'id="problem"' in text
    assert "<form" not in text

    # A wrong link: the same look, the explanation and nothing else, in the chosen language.
    broken = await client.get("/u/" + "A" * 50)
    assert broken.status == 404
    text = await broken.text()
    assert '<html lang="fr">' in text
    assert 'id="problem"' in text
    assert site.name not in text
    assert "<form" not in text

    cancelled = await client.post(f"{path}/cancel", data={"csrf": key.csrf(token)},
                                  allow_redirects=False)
    assert cancelled.status == 303
    page = await (await client.get(path)).text()
    assert 'id="cancelled"' in page
    assert "<form" not in page
    assert "calendar.ics" not in page
