"""The agent's booking page and Today over HTTP, on SQLite and PostgreSQL.

Bus tours, the operator table and the search's filters, the duplicate warning, the note
and the phone's country on the booking form; Today's days, names, cancellations and the
"seen" button. The browser side is in test_booking_page.py.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import (
    PASSWORD,
    make_appointment,
    make_operator,
    make_site,
    make_stop,
    make_user,
    read_appointment,
)
from visio import models as m
from visio.app import create_app
from visio.clock import utcnow
from visio.db import Database
from visio.seed import DEMO_PASSWORD, demo_id, seed_demo
from visio.settings import Settings

PARIS = ZoneInfo("Europe/Paris")
#: Tuesday 24 November 2026, the day after DEFAULT_NOW (the page's default day).
TUESDAY = date(2026, 11, 24)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def field_of(page: str, name: str) -> str:
    found = re.search(rf'name="{name}"[^>]* value="([^"]*)"', page)
    assert found, f"no {name} field on the page"
    return html.unescape(found.group(1))


def slots_of(page: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(r'name="slot" value="([^"]+)"', page)]


def operators_of(page: str) -> set[str]:
    return set(re.findall(r'<tr data-operator="([^"]+)"', page))


def selected(page: str, select_id: str) -> str:
    block = page.split(f'<select id="{select_id}"', 1)[1].split("</select>", 1)[0]
    found = re.search(r'<option value="([^"]*)" selected', block)
    return found.group(1) if found else ""


async def log_in(client: Client, email: str, password: str = PASSWORD) -> None:
    """Through the login form."""
    csrf = csrf_of(await (await client.get("/login")).text())
    response = await client.post("/login", data={"email": email, "password": password,
                                                 "csrf": csrf}, allow_redirects=False)
    assert response.status == 303, await response.text()


async def booking_form(client: Client, query: str) -> tuple[str, dict[str, str]]:
    """The booking page and what its form posts with the first slot and a usager."""
    page = await (await client.get(f"/agent/book?{query}")).text()
    slots = slots_of(page)
    assert slots, "no slot offered"
    form = {name: field_of(page, name) for name in
            ("csrf", "idem", "site_id", "theme", "country", "day")}
    form |= {"slot": slots[0], "first_name": "Jeanne", "last_name": "Martin",
             "phone": "06 12 34 56 78", "phone_country": "FR", "language": "fr",
             "consent": "yes"}
    return page, form


async def count_appointments(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(sa.select(sa.func.count(m.Appointment.id))) or 0)


# ---------------------------------------------------------------- 1. bus tours


async def test_bus_page_lists_the_coming_stops_and_a_stop_sets_the_day(
        client: Client, db: Database) -> None:
    """Date, commune, place and hours of each coming stop; its link searches that day."""
    bus = await make_site(db, kind="itinerant")
    past = await make_stop(db, bus, date(2026, 11, 20))
    stops = [await make_stop(db, bus, day) for day in
             (date(2026, 11, 24), date(2026, 11, 26), date(2026, 12, 1))]
    await make_operator(db)
    agent = await make_user(db, role="agent", sites=[bus])
    await log_in(client, agent.email)
    page = await (await client.get("/agent/book?theme=famille")).text()
    tour = page.split('id="tour"', 1)[1].split("</section>", 1)[0]
    for stop in stops:
        assert stop.commune in tour
        assert f'data-day="{stop.day.isoformat()}"' in tour
    assert past.commune not in tour
    assert "Place du marché, 09:30–12:30, 13:30–16:00" in tour
    link = html.unescape(re.findall(r'<a href="([^"]+)" data-day="2026-11-26"', tour)[0])
    assert "theme=famille" in link
    chosen = await (await client.get(link)).text()
    assert 'id="day" name="day" type="date" value="2026-11-26"' in chosen
    assert 'data-day="2026-11-26" aria-current="date"' in chosen
    assert stops[1].commune in chosen.split('id="booking"', 1)[1]
    assert slots_of(chosen)
    assert all(s.split("|")[2].startswith("2026-11-26") for s in slots_of(chosen))


# ---------------------------------------------------------------- 2. operators, filters


# One backend: both answers come from the same stored demo through the same search, and
# every theme at every site is ~180 requests (90 s on PostgreSQL under CI's load).
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_operator_table_is_what_the_search_offers_at_every_demo_site(
        settings: Settings) -> None:
    """For each demo site and theme: the table's operators are the operators of the
    search's slots over the coming week, territory included (no CAF de l'Aisne or du
    Pas-de-Calais for a Nord bus)."""
    await seed_demo(settings)
    app = create_app(replace(settings, search_rate_per_minute=1_000_000), clock=utcnow)
    async with TestClient(TestServer(app)) as client, \
            TestClient(TestServer(create_app(settings, clock=utcnow))) as bus_agent:
        await _every_site_and_theme(client)
        await log_in(bus_agent, "agent.de-l-avesnois@visio.test", DEMO_PASSWORD)
        page = await (await bus_agent.get("/agent/book?theme=famille")).text()
    table = page.split('id="operators-title"', 1)[1].split("</table>", 1)[0]
    assert "CAF du Nord" in table
    assert "CAF de l&#39;Aisne" not in table
    assert "CAF du Pas-de-Calais" not in table
    assert operators_of(page) == {demo_id("operator", code)
                                  for code in ("CAF59", "MSA-NPDC", "FAMIWAL-TF")}


async def _every_site_and_theme(client: Client) -> None:
    await log_in(client, "admin@visio.test", DEMO_PASSWORD)
    token = await client.post("/api/v1/auth/token", json={"email": "admin@visio.test",
                                                          "password": DEMO_PASSWORD})
    headers = {"Authorization": f"Bearer {(await token.json())['access_token']}"}
    sites = (await (await client.get("/api/v1/sites", headers=headers,
                                     params={"limit": "100"})).json())["items"]
    themes = [t["code"] for t in
              (await (await client.get("/api/v1/themes", headers=headers)).json())["items"]]
    assert len(sites) == 13
    tomorrow = (utcnow().astimezone(PARIS) + timedelta(days=1)).date()
    start = datetime.combine(tomorrow, time(0), PARIS)
    for site in sites:
        for theme in themes:
            page = await (await client.get(
                f"/agent/book?site_id={site['id']}&theme={theme}")).text()
            response = await client.get("/api/v1/slots", headers=headers, params={
                "site_id": site["id"], "theme": theme, "from": start.isoformat(),
                "to": (start + timedelta(days=7)).isoformat()})
            assert response.status == 200, await response.text()
            offered = {s["operator_id"] for s in (await response.json())["items"]}
            assert operators_of(page) == offered, (site["name"], theme)


async def test_operator_and_language_filters_narrow_the_slots_and_dutch_is_proposed(
        client: Client, db: Database) -> None:
    """Filtering by operator or by the language spoken keeps their slots only; an
    operator speaking Dutch and not French preselects Dutch for the messages."""
    site = await make_site(db)
    french = await make_operator(db, languages=("fr",))
    flemish = await make_operator(db, country="BE", languages=("nl",))
    agent = await make_user(db, role="agent", sites=[site])
    await log_in(client, agent.email)

    def services(page: str) -> set[str]:
        return {s.split("|")[0] for s in slots_of(page)}

    every = await (await client.get("/agent/book?theme=famille")).text()
    assert services(every) == {french.service.id, flemish.service.id}
    assert operators_of(every) == {french.operator.id, flemish.operator.id}
    assert selected(every, "language") == "fr"
    one = await (await client.get(
        f"/agent/book?theme=famille&operator_id={flemish.operator.id}")).text()
    assert services(one) == {flemish.service.id}
    assert selected(one, "operator_id") == flemish.operator.id
    assert selected(one, "language") == "nl"
    assert operators_of(one) == operators_of(every)  # the table stays whole
    dutch = await (await client.get("/agent/book?theme=famille&speaks=nl")).text()
    assert services(dutch) == {flemish.service.id}
    assert selected(dutch, "speaks") == "nl"
    assert selected(dutch, "language") == "nl"
    french_only = await (await client.get(
        f"/agent/book?theme=famille&operator_id={french.operator.id}")).text()
    assert services(french_only) == {french.service.id}
    assert selected(french_only, "language") == "fr"


# ---------------------------------------------------------------- 3. duplicates


async def test_same_phone_on_the_same_theme_asks_the_agent_before_booking(
        client: Client, db: Database) -> None:
    """The same number (written another way) on the same theme: the form comes back with
    the warning and nothing is booked until "book anyway"; the first form sent twice
    shows its booking."""
    site = await make_site(db, booths=2)
    await make_operator(db, themes=("famille",))
    await make_operator(db, themes=("retraite",))
    agent = await make_user(db, role="agent", sites=[site])
    await log_in(client, agent.email)
    _, form = await booking_form(client, "theme=famille")
    first = await client.post("/agent/book", data=form, allow_redirects=False)
    assert first.status == 303, await first.text()
    first_id = first.headers["Location"].rsplit("/", 1)[1]
    replayed = await client.post("/agent/book", data=form, allow_redirects=False)
    assert replayed.status == 303  # the same form again is its booking, not a double
    assert replayed.headers["Location"] == first.headers["Location"]

    _, again = await booking_form(client, "theme=famille")
    again["phone"] = "+33 6 12 34 56 78"
    warned = await client.post("/agent/book", data=again, allow_redirects=False)
    assert warned.status == 409
    body = await warned.text()
    assert 'id="duplicate"' in body
    assert f'href="/agent/appointments/{first_id}"' in body
    assert 'name="duplicate_ok" value="yes"' in body
    assert field_of(body, "first_name") == "Jeanne"
    assert await count_appointments(db) == 1

    other_theme = (await booking_form(client, "theme=retraite"))[1]
    elsewhere = await client.post("/agent/book", data=other_theme, allow_redirects=False)
    assert elsewhere.status == 303  # another theme is no double
    assert await count_appointments(db) == 2

    confirmed = await client.post("/agent/book", data={**again, "duplicate_ok": "yes",
                                                       "csrf": csrf_of(body)},
                                  allow_redirects=False)
    assert confirmed.status == 303, await confirmed.text()
    assert await count_appointments(db) == 3


# ---------------------------------------------------------------- 4, 5. note, phone country


async def test_note_and_a_belgian_number_are_taken_from_the_form(
        client: Client, db: Database) -> None:
    """The question for the operator is stored on one line; a number typed the Belgian way
    with Belgium chosen is stored in E.164; the country defaults to the site's."""
    site = await make_site(db)
    await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    await log_in(client, agent.email)
    page, form = await booking_form(client, "theme=famille")
    assert selected(page, "phone_country") == "FR"
    assert 'maxlength="1000"' in page.split('id="note"', 1)[1].split(">", 1)[0]
    form |= {"note": "Allocations de rentrée\r\n  pour deux enfants ?",
             "phone": "0470 12 34 56", "phone_country": "BE"}
    response = await client.post("/agent/book", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    stored = await read_appointment(db, response.headers["Location"].rsplit("/", 1)[1])
    assert stored.note == "Allocations de rentrée pour deux enfants ?"
    assert stored.usager_phone == "+32470123456"


async def test_a_refused_form_names_the_field_and_books_nothing(
        client: Client, db: Database) -> None:
    """A note over 1,000 characters: 400, the sentence, the note marked invalid and kept."""
    site = await make_site(db)
    await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    await log_in(client, agent.email)
    _, form = await booking_form(client, "theme=famille")
    response = await client.post("/agent/book", data={**form, "note": "x" * 1001},
                                 allow_redirects=False)
    assert response.status == 400
    page = await response.text()
    assert 'id="refusal"' in page
    textarea = page.split('<textarea id="note"', 1)[1].split("</textarea>", 1)[0]
    assert 'aria-invalid="true"' in textarea
    assert "x" * 1001 in textarea
    assert await count_appointments(db) == 0


# ---------------------------------------------------------------- 6. Today


async def test_today_moves_by_day_names_the_usager_and_links_the_appointment(
        make_client: Callable[..., Awaitable[Client]], db: Database) -> None:
    """Previous, next and a date field; the full name links to the appointment page;
    "today" is the site's day (00:30 in Paris is already Tuesday)."""
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    tuesday_9 = datetime.combine(TUESDAY, time(9), PARIS)
    booked = await make_appointment(db, site=site, op=op, start=tuesday_9, booked_by=agent)
    client = await make_client(now=datetime(2026, 11, 23, 23, 30, tzinfo=UTC))
    await log_in(client, agent.email)
    page = await (await client.get("/agent/today")).text()
    assert 'id="date" name="date" type="date" value="2026-11-24"' in page
    assert 'href="/agent/today?date=2026-11-23" id="previous-day"' in page
    assert 'href="/agent/today?date=2026-11-25" id="next-day"' in page
    assert f'<a href="/agent/appointments/{booked.id}">Jeanne Martin</a>' in page
    monday = await (await client.get("/agent/today?date=2026-11-23")).text()
    assert booked.id not in monday
    assert 'id="this-day"' in monday


async def test_cancelled_appointments_stay_struck_through_with_who_cancelled(
        client: Client, db: Database) -> None:
    """Each cancellation says who made it; the usager's is new until an agent marks it
    seen (the button sets cancel_seen_at once)."""
    site = await make_site(db)
    op = await make_operator(db, staff=5)
    agent = await make_user(db, role="agent", sites=[site])
    stranger = await make_user(db, role="agent", sites=[await make_site(db)])
    made = {}
    for hour, who in enumerate(("usager", "agent", "staff", "closure", None)):
        a = await make_appointment(db, site=site, op=op, booked_by=agent,
                                   start=datetime.combine(TUESDAY, time(9 + hour), PARIS),
                                   staff=op.staff[hour])
        async with db.write() as session:
            await session.execute(sa.update(m.Appointment).where(m.Appointment.id == a.id)
                                  .values(status="cancelled", cancelled_by=who))
        made[who] = a.id
    await log_in(client, agent.email)
    page = await (await client.get("/agent/today?date=2026-11-24")).text()

    def row(appointment_id: str) -> str:
        return html.unescape(
            page.split(f'data-appointment="{appointment_id}"', 1)[1].split("</tr>", 1)[0])

    assert 'class="cancelled" data-cancelled-by="usager"' in page
    assert "<s>Jeanne Martin</s>" in row(made["usager"])
    assert "Annulé par l'usager" in row(made["usager"])
    assert "Nouveau" in row(made["usager"])
    assert f'action="/agent/appointments/{made["usager"]}/seen"' in row(made["usager"])
    for who in ("agent", "staff", "closure", None):
        assert "/seen" not in row(made[who])
        assert "<s>" in row(made[who])
    assert len({row(made[w]).split("cancel-note\">", 1)[1].split("<", 1)[0]
                for w in made}) == 5  # five different sentences

    seen = await client.post(f"/agent/appointments/{made['usager']}/seen",
                                 data={"csrf": csrf_of(page), "date": "2026-11-24"},
                                 allow_redirects=False)
    assert seen.status == 303
    assert (await read_appointment(db, made["usager"])).cancel_seen_at == DEFAULT_NOW
    after = await (await client.get(seen.headers["Location"])).text()
    assert "/seen" not in after
    assert "<s>Jeanne Martin</s>" in after

    await client.post("/logout", data={"csrf": csrf_of(after)})
    await log_in(client, stranger.email)
    page = await (await client.get("/agent/today")).text()
    refused = await client.post(f"/agent/appointments/{made['agent']}/seen",
                                data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert refused.status == 404
    assert (await read_appointment(db, made["agent"])).cancel_seen_at is None


async def test_the_booking_keeps_the_first_slot_the_search_offered(
        client: Client, db: Database) -> None:
    """The figures' delay to the first free slot: the page sends the first slot it showed,
    the booking of a later one stores it."""
    from datetime import datetime

    site = await make_site(db)
    await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    await log_in(client, agent.email)
    page, form = await booking_form(client, "theme=famille")
    slots = slots_of(page)
    assert len(slots) >= 2
    first = datetime.fromisoformat(slots[0].split("|")[2])
    assert field_of(page, "first_offered") == slots[0].split("|")[2]
    form |= {"slot": slots[1], "first_offered": field_of(page, "first_offered")}
    response = await client.post("/agent/book", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    stored = await read_appointment(db, response.headers["Location"].rsplit("/", 1)[1])
    assert stored.first_offered_start == first
    assert stored.start > first
