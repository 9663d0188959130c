"""What the usager reads about a real booking: their calendar file (published, no staff,
no join link, alarms to plan the trip), and a bus booking named with its bus and stop on
every message, page and calendar file."""

from __future__ import annotations

import html
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
import sqlalchemy as sa

from tests.calendars import icaljs
from tests.calendars.test_invitations import facts
from tests.factories import auth_headers, make_site, make_user, usager
from tests.notify.conftest import Receivers
from tests.notify.receivers import SmsSink
from tests.notify.world import MONDAY_9, World
from tests.web.test_pages import log_in
from visio import models as m
from visio.calendars.invitations import usager_ics
from visio.notify.compose import load_facts, usager_url
from visio.usager_link import LinkKey

#: 18:00 in Paris on the Sunday before MONDAY_9 (winter time, UTC+1).
EVENING_BEFORE = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
BUS = "France Services itinérante du Cambrésis"
STOP_FR = "France Services itinérante du Cambrésis — arrêt : place de la Mairie, Solesmes"
STOP_NL = "France Services itinérante du Cambrésis — halte: place de la Mairie, Solesmes"


async def _link(world: World, appointment_id: str) -> str:
    facts = await load_facts(db=world.db, appointment_id=appointment_id)
    assert facts is not None
    settings = world.dispatcher.settings
    url = usager_url(facts, key=LinkKey.from_secret(settings.secret_key),
                     base_url=settings.base_url)
    return url.removeprefix(settings.base_url)


async def _set_phone(world: World, site_id: str, phone: str) -> None:
    async with world.db.write() as session:
        await session.execute(sa.update(m.Site).where(m.Site.id == site_id)
                              .values(phone=phone))


async def test_the_usagers_calendar_file_is_published_without_staff(world: World) -> None:
    """PUBLISH, no staff name or e-mail, no join link; alarms at 18:00 the day before and
    one hour before; both icalendar and ical.js read it so."""
    await _set_phone(world, world.site.id, "+33353480001")
    booked = await world.book(email="jeanne@example.fr")
    path = await _link(world, booked["id"])
    response = await world.client.get(f"{path}/calendar.ics")
    assert response.status == 200
    raw = await response.read()
    text = raw.decode()
    assert world.staff_user.email not in text
    assert world.op.staff[0].display_name not in text
    assert "/call" not in text  # neither /calls/ nor /call/: no join link
    calendar = icalendar.Calendar.from_ical(raw)
    assert calendar["METHOD"] == "PUBLISH"
    [event] = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == MONDAY_9
    assert "ATTENDEE" not in event
    assert "URL" not in event
    assert event["ORGANIZER"].params["CN"] == world.site.name
    assert "03 53 48 00 01" in str(event["DESCRIPTION"])
    triggers = sorted((a["TRIGGER"].dt for a in event.walk("VALARM")), key=str)
    assert triggers == sorted([EVENING_BEFORE, -timedelta(hours=1)], key=str)
    seen = await icaljs.parse(raw)
    assert seen["props"]["method"] == "PUBLISH"
    (js_event,) = seen["events"]
    assert js_event["attendees"] == []
    assert js_event["organizer"] == f"mailto:{world.dispatcher.settings.mail_from}"
    assert js_event["start_utc"] == "2026-11-30T08:00:00.000Z"
    assert sorted(js_event["alarms"]) == ["-PT1H", "2026-11-29T17:00:00Z"]


async def test_the_staff_invitation_stays_a_request(world: World,
                                                    receivers: Receivers) -> None:
    """The staff member's invitation is still an iTIP REQUEST naming them."""
    await world.book(email="jeanne@example.fr")
    await world.dispatch_at(world.clock.now)
    [staff] = [msg for msg in receivers.smtp.messages if msg["To"] == world.staff_user.email]
    [part] = [p for p in staff.walk() if p.get_content_type() == "text/calendar"]
    calendar = icalendar.Calendar.from_ical(part.get_content())
    assert calendar["METHOD"] == "REQUEST"
    [event] = calendar.walk("VEVENT")
    attendees = event["ATTENDEE"]
    assert f"mailto:{world.staff_user.email}" in [str(a) for a in attendees]


async def _book_the_bus(world: World, **who: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A bus of the Cambrésis stopping at Solesmes on MONDAY_9's day, booked by its agent."""
    bus = await make_site(world.db, kind="itinerant", name=BUS)
    await _set_phone(world, bus.id, "+33353480012")
    async with world.db.write() as session:
        session.add(m.TourStop(site_id=bus.id, day=date(2026, 11, 30), commune="Solesmes",
                               place="place de la Mairie", commune_insee="59571",
                               hours=[["09:30", "12:30"], ["13:30", "16:00"]]))
    agent = await make_user(world.db, role="agent", sites=[bus])
    headers = await auth_headers(world.client, agent)
    response = await world.client.post(
        "/api/v1/appointments", headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
        json={"site_id": bus.id, "service_id": world.op.service.id,
              "start": (MONDAY_9 + timedelta(hours=1)).isoformat(), "usager": usager(**who)})
    assert response.status == 201, await response.text()
    await log_in(world.client, agent)
    return dict(await response.json()), headers


def _sms_to(sink: SmsSink, number: str) -> list[str]:
    return [str(sms["text"]) for sms in sink.received if sms["to"] == number]


async def test_a_bus_booking_names_the_bus_and_its_stop_everywhere(
        world: World, receivers: Receivers) -> None:
    """SMS, e-mail, the usager's page and .ics, the convocation, the agent's confirmation
    and booking form: the bus, the stop with its commune once, the bus's phone."""
    booked, headers = await _book_the_bus(world, email="jeanne@example.fr",
                                          phone="+33612345678")
    await world.dispatch_at(world.clock.now)
    [sms] = _sms_to(receivers.sms, "+33612345678")
    assert sms.startswith("France Services itinérante du Cambrésis : RDV lun. 30/11 10:00. "
                          "Arret : place de la Mairie, Solesmes. Tél. 03 53 48 00 12 ")
    [mail] = [msg for msg in receivers.smtp.messages if msg["To"] == "jeanne@example.fr"]
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    mail_text = body.get_content()
    assert f"Où : {STOP_FR}" in mail_text
    assert "Merci de venir au bus" in mail_text
    assert "l'accueil France Services quelques minutes" not in mail_text
    assert "appelez l'accueil au 03 53 48 00 12" in mail_text

    path = await _link(world, booked["id"])
    page = html.unescape(await (await world.client.get(path)).text())
    assert STOP_FR in page
    assert page.count("Solesmes") == 2  # the place, and where to come
    assert "appelez l'accueil au 03 53 48 00 12" in page
    ics = icalendar.Calendar.from_ical(await (await world.client.get(f"{path}/calendar.ics"))
                                       .read())
    assert str(ics.walk("VEVENT")[0]["LOCATION"]) == STOP_FR

    convocation = html.unescape(await (await world.client.get(
        f"/api/v1/appointments/{booked['id']}/convocation", headers=headers)).text())
    assert STOP_FR in convocation
    assert ("Merci de venir au bus quelques minutes avant l'heure, à l'arrêt : "
            "place de la Mairie, Solesmes.") in convocation
    assert "03 53 48 00 12" in convocation

    confirmation = html.unescape(await (await world.client.get(
        f"/agent/appointments/{booked['id']}")).text())
    assert f'<dd id="place">{STOP_FR}</dd>' in confirmation

    booking = html.unescape(await (await world.client.get(
        f"/agent/book?site_id={booked['site_id']}&theme=famille&day=2026-11-30")).text())
    assert "Arrêt du bus ce jour-là : place de la Mairie, Solesmes." in booking


async def test_a_dutch_bus_booking_reads_in_dutch(world: World,
                                                   receivers: Receivers) -> None:
    """The stop's word is translated: « halte », and the Dutch sentence to come."""
    booked, _headers = await _book_the_bus(world, language="nl", email="jan@example.be",
                                           phone=None)
    await world.dispatch_at(world.clock.now)
    [mail] = [msg for msg in receivers.smtp.messages if msg["To"] == "jan@example.be"]
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert f"Waar: {STOP_NL}" in text
    assert ("Kom enkele minuten voor het afgesproken uur naar de bus, aan de halte: "
            "place de la Mairie, Solesmes.") in text
    assert "Kunt u niet komen? Bel dan het onthaal op 03 53 48 00 12." in text
    path = await _link(world, booked["id"])
    ics = icalendar.Calendar.from_ical(await (await world.client.get(f"{path}/calendar.ics"))
                                       .read())
    assert str(ics.walk("VEVENT")[0]["LOCATION"]) == STOP_NL


def test_booked_after_the_evening_before_the_file_has_only_the_hour_alarm() -> None:
    """An appointment booked the same day: no alarm for an evening already past."""
    same_day = usager_ics(facts=facts(MONDAY_9), language="fr", organizer="rdv@visio.test",
                          dtstamp=MONDAY_9 - timedelta(hours=3))
    [event] = icalendar.Calendar.from_ical(same_day).walk("VEVENT")
    assert [a["TRIGGER"].dt for a in event.walk("VALARM")] == [-timedelta(hours=1)]
    ahead = usager_ics(facts=facts(MONDAY_9), language="fr", organizer="rdv@visio.test",
                       dtstamp=MONDAY_9 - timedelta(days=3))
    [event] = icalendar.Calendar.from_ical(ahead).walk("VEVENT")
    assert [a["TRIGGER"].dt for a in event.walk("VALARM")] == [EVENING_BEFORE,
                                                               -timedelta(hours=1)]
