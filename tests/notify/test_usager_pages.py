"""The usager's link page, its cancel form, the convocation and the notifications list."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import icalendar

from tests.notify.conftest import Receivers
from tests.notify.world import MONDAY_9, World
from visio.i18n import catalogue
from visio.notify.compose import load_facts, usager_url
from visio.usager_link import LinkKey


async def _link(world: World, appointment_id: str) -> str:
    facts = await load_facts(db=world.db, appointment_id=appointment_id)
    assert facts is not None
    settings = world.dispatcher.settings
    url = usager_url(facts, key=LinkKey.from_secret(settings.secret_key),
                     base_url=settings.base_url)
    return url.removeprefix(settings.base_url)


async def test_usager_page_in_their_language_with_calendar(world: World) -> None:
    """The page speaks Dutch for a Dutch usager, names the place, offers an .ics."""
    booked = await world.book(language="nl", email="jan@example.be")
    path = await _link(world, booked["id"])
    response = await world.client.get(path)
    text = await response.text()
    assert response.status == 200
    assert '<html lang="nl">' in text
    assert catalogue("nl").gettext("Your video appointment") in text
    assert "1 place de la mairie" in text
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response.headers["Cache-Control"]
    ics = await world.client.get(f"{path}/calendar.ics")
    calendar = icalendar.Calendar.from_ical(await ics.read())
    assert calendar.walk("VEVENT")[0].decoded("DTSTART") == MONDAY_9


async def test_wrong_or_expired_link_explains_and_shows_nothing(world: World) -> None:
    """A changed token or one past the appointment's end: 404 with an explanation only."""
    booked = await world.book()
    path = await _link(world, booked["id"])
    broken = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    for attempt in (broken, "/u/nonsense"):
        response = await world.client.get(attempt)
        text = await response.text()
        assert response.status == 404
        assert "Hondschoote" not in text
        assert "<form" not in text
    world.clock.now = MONDAY_9 + timedelta(hours=1)
    response = await world.client.get(path)
    assert response.status == 404


async def test_usager_cancels_from_the_link_and_staff_is_told(
        world: World, receivers: Receivers) -> None:
    """The form (with its CSRF field) cancels; without the field nothing changes."""
    booked = await world.book(email="jeanne@example.fr", phone=None)
    await world.dispatch_at(world.clock.now)
    path = await _link(world, booked["id"])
    refused = await world.client.post(f"{path}/cancel", data={"csrf": "forged"})
    assert refused.status == 403
    page = await (await world.client.get(f"{path}/cancel")).text()
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match is not None
    response = await world.client.post(f"{path}/cancel", data={"csrf": match.group(1)},
                                       allow_redirects=False)
    assert response.status == 303
    after = await (await world.client.get(path)).text()
    assert catalogue("fr").gettext("This video appointment is cancelled.") in after
    assert "<form" not in after
    await world.dispatch_at(world.clock.now + timedelta(seconds=1))
    staff = [m for m in receivers.smtp.messages if m["To"] == world.staff_user.email]
    [part] = [p for p in staff[-1].walk() if p.get_content_type() == "text/calendar"]
    assert icalendar.Calendar.from_ical(part.get_content())["METHOD"] == "CANCEL"
    # The slot is free again: the same start can be booked.
    await world.book()


async def test_convocation_prints_in_the_usager_language(world: World) -> None:
    """No phone, no e-mail: the agent prints a convocation in the usager's language."""
    booked = await world.book(language="nl", phone=None, email=None)
    response = await world.client.get(f"/api/v1/appointments/{booked['id']}/convocation",
                                      headers=world.headers)
    text = await response.text()
    assert response.status == 200
    assert response.content_type == "text/html"
    assert '<html lang="nl">' in text
    assert "@media print" in text
    assert catalogue("nl").gettext("What to bring") in text
    assert "maandag 30 november 2026" in text


async def test_notifications_list_every_outcome(world: World, receivers: Receivers) -> None:
    """The agent sees each message: sent, failed with its reason, pending."""
    receivers.smtp.refuse.add("wrong@example.fr")
    booked = await world.book(email="wrong@example.fr", phone="+33612345678")
    await world.dispatch_at(world.clock.now)
    response = await world.client.get(f"/api/v1/appointments/{booked['id']}/notifications",
                                      headers=world.headers)
    assert response.status == 200
    items = (await response.json())["items"]
    outcomes = {(i["kind"], i["channel"]): (i["status"], i["last_error"]) for i in items}
    assert outcomes[("confirmation", "sms")] == ("sent", None)
    assert outcomes[("confirmation", "email")][0] == "failed"
    assert "550" in outcomes[("confirmation", "email")][1]
    assert outcomes[("reminder", "sms")] == ("pending", None)


async def test_site_phone_is_set_by_admin_and_printed(world: World) -> None:
    """An admin gives the site a number (normalised); the convocation prints it the way
    the site's country dials it, in a sentence telling the usager to call."""
    from tests.factories import auth_headers, make_user

    admin = await make_user(world.db, role="admin")
    headers = await auth_headers(world.client, admin)
    bad = await world.client.patch(f"/api/v1/sites/{world.site.id}", headers=headers,
                                   json={"phone": "12"})
    assert bad.status == 422
    response = await world.client.patch(f"/api/v1/sites/{world.site.id}", headers=headers,
                                        json={"phone": "03 28 68 00 00"})
    assert response.status == 200, await response.text()
    assert (await response.json())["phone"] == "+33328680000"
    booked = await world.book(phone=None, email=None)
    page = await world.client.get(f"/api/v1/appointments/{booked['id']}/convocation",
                                  headers=world.headers)
    text = html.unescape(await page.text())
    assert "Si vous ne pouvez pas venir, appelez l'accueil au 03 28 68 00 00." in text
    assert "Téléphone de l'accueil" in text
