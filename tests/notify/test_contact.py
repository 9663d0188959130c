"""The usager's contact data: what the API takes is what the dispatcher can send, one row's
trouble stays with that row, the cap counts mailboxes, SMS go to mobiles only, Belgian
numbers stay Belgian, and without consent nothing goes to the usager."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

import icalendar
import pytest
import sqlalchemy as sa

from tests.notify.conftest import Receivers
from tests.notify.world import MONDAY_9, World
from tests.web.test_pages import log_in
from visio import models as m
from visio.notify.dispatcher import Dispatcher

POISONED = ["g:;@example.org", 'x"><y@example.org']


async def _rows(world: World, appointment_id: str, recipients: list[str], *,
                audience: str = "usager", channel: str = "email") -> list[str]:
    """Outbox rows written directly, as rows older than today's checks would be."""
    async with world.db.write() as session:
        rows = [m.OutboxRow(
            appointment_id=appointment_id, appointment_version=1, kind="confirmation"
            if audience == "usager" else "staff_request", channel=channel,
            audience=audience, recipient=recipient, language="fr",
            due_at=world.clock.now, status="pending", attempts=0,
            created_at=world.clock.now) for recipient in recipients]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def _refused(world: World, who: dict[str, Any]) -> dict[str, Any]:
    """The problem the API answers to a booking for ``who``: 400 where the document's
    pattern refuses it, 422 where only a mail system's (or a name's) rules do."""
    response = await world.client.post(
        "/api/v1/appointments", headers={**world.headers, "Accept-Language": "fr",
                                         "Idempotency-Key": secrets.token_hex(8)},
        json={"site_id": world.site.id, "service_id": world.op.service.id,
              "start": "2026-11-30T09:00:00+01:00", "usager": who})
    assert response.status in (400, 422), await response.text()
    return dict(await response.json())


def booked_start(booked: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(booked["start"])


async def _row(world: World, row_id: str) -> m.OutboxRow:
    async with world.db.read() as session:
        row = await session.get(m.OutboxRow, row_id)
        assert row is not None
        return row


@pytest.mark.parametrize("audience", ["usager", "staff"])
@pytest.mark.parametrize("poisoned", POISONED)
async def test_one_poisoned_address_stops_no_other_message(
        world: World, receivers: Receivers, caplog: pytest.LogCaptureFixture,
        poisoned: str, audience: str) -> None:
    """In a batch of 50, the row whose address no mail system takes fails once, with a
    reason; the 49 others go on that same run; the log never holds the address."""
    caplog.set_level(logging.INFO)
    booked = await world.book(phone=None, email=None)
    await world.dispatch_at(world.clock.now)  # the staff invitation
    before = receivers.smtp.count()
    good = [f"usager{n}@example.org" for n in range(49)]
    ids = await _rows(world, booked["id"], good[:25])
    [bad] = await _rows(world, booked["id"], [poisoned], audience=audience)
    ids += await _rows(world, booked["id"], good[25:])
    assert await world.dispatcher.run_once() == 50
    assert receivers.smtp.count() - before == 49
    assert {str(msg["To"]) for msg in receivers.smtp.messages[before:]} == set(good)
    row = await _row(world, bad)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error
    assert poisoned not in row.last_error
    assert {(await _row(world, i)).status for i in ids} == {"sent"}
    assert await world.dispatcher.drain() == 0
    if row.last_error.startswith("internal_error"):
        # The exception was logged, bare: the row and the type only.
        assert f"outbox {bad}: " in caplog.text
    assert poisoned not in caplog.text
    assert poisoned.split("@")[0] + "@" not in caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("address", [
    *POISONED, "victim@example.org(1)", "jean<dupont@example.org", "a,b@c.d",
    "Jean Dupont <jean@example.org>", '"a b"@example.org'])
async def test_an_address_mail_cannot_carry_is_refused(world: World, address: str) -> None:
    """An address that is not exactly one mailbox is a 400 naming the field, in words;
    nothing is booked."""
    problem = await _refused(world, {"first_name": "Jeanne", "last_name": "Martin",
                                     "email": address, "language": "fr", "consent": True})
    assert problem["field"] == "usager.email"
    assert "usager.email" in problem["detail"] or "adresse e-mail" in problem["detail"]
    assert address not in problem["detail"]
    assert await world.rows() == []


async def test_the_address_is_kept_normalised(world: World) -> None:
    """The domain is stored lower-cased, as the validator writes the mailbox."""
    booked = await world.book(email="Jeanne.Martin@Example.FR", phone=None)
    assert booked["usager"]["email"] == "Jeanne.Martin@example.fr"


@pytest.mark.parametrize(("field", "value"), [
    ("first_name", "Jeanne www.impots-remboursement.fr"),
    ("last_name", "Martin https://bit.ly/x"),
    ("last_name", "Martin ecrivez a fraude@example.org"),
    ("first_name", "Jeanne impots.gouv-fr.info/remboursement"),
    ("first_name", "J" * 51),
])
async def test_names_carry_no_link_and_stay_short(world: World, field: str,
                                                  value: str) -> None:
    """A name with a link or an address, or longer than 50 characters, is a 400 naming
    it: no message can be made to carry someone's phishing text."""
    who: dict[str, Any] = {"first_name": "Jeanne", "last_name": "Martin", "language": "fr",
                           "email": "jeanne@example.fr", field: value}
    problem = await _refused(world, who)
    assert field in problem["field"]
    assert problem["detail"]
    assert await world.rows() == []


async def test_the_daily_cap_counts_mailboxes_and_numbers(
        world: World, receivers: Receivers) -> None:
    """One mailbox written several ways, or one number written nationally and in E.164,
    gets at most the cap; what no mail system takes is refused, not counted."""
    booked = await world.book(phone=None, email=None)
    await world.dispatch_at(world.clock.now)
    dispatcher = Dispatcher(db=world.db, clock=world.clock,
                            settings=dataclasses.replace(world.dispatcher.settings,
                                                         notify_daily_cap=2))
    try:
        mails = await _rows(world, booked["id"], [
            "victim@example.org", "victim@EXAMPLE.ORG", "Victim@Example.org",
            "victim@example.org(1)", "victim@example.org(2)"])
        numbers = await _rows(world, booked["id"], [
            "+33612345678", "0612345678", "06 12 34 56 78"], channel="sms")
        await dispatcher.drain()
        world.clock.advance(60)
        await dispatcher.drain()
    finally:
        await dispatcher.close()
    mail_rows = [await _row(world, i) for i in mails]
    assert sorted(str(r.status) for r in mail_rows) == [
        "failed", "failed", "sent", "sent", "skipped"]
    assert {r.last_error for r in mail_rows if r.status == "skipped"} == {"daily_cap"}
    assert {r.last_error for r in mail_rows if r.status == "failed"} == {"invalid_email"}
    sms_rows = [await _row(world, i) for i in numbers]
    assert sorted(str(r.status) for r in sms_rows) == ["sent", "sent", "skipped"]
    assert [s["to"] for s in receivers.sms.received] == ["+33612345678"] * 2


async def test_a_landline_is_kept_but_gets_no_sms(world: World, receivers: Receivers) -> None:
    """A fixed line is a contact number, not an SMS recipient: no SMS row, the answer
    says what it is, and the e-mail still goes."""
    booked = await world.book(phone="03 20 12 34 56", email="jeanne@example.fr")
    assert booked["usager"]["phone"] == "+33320123456"
    assert booked["usager"]["phone_type"] == "fixed"
    await world.dispatch_at(world.clock.now)
    rows = await world.rows(booked["id"])
    assert {r.channel for r in rows} == {"email"}
    assert receivers.sms.received == []
    assert any(str(msg["To"]) == "jeanne@example.fr" for msg in receivers.smtp.messages)


async def test_the_confirmation_promises_no_sms_to_a_landline(world: World) -> None:
    """With only a landline, the confirmation page says no message will go and offers
    the printed convocation, instead of promising an SMS."""
    booked = await world.book(phone="03 20 12 34 56", email=None)
    await log_in(world.client, world.agent)
    page = await (await world.client.get(f"/agent/appointments/{booked['id']}",
                                         headers={"Accept-Language": "fr"})).text()
    messages = page[page.index('id="messages"'):].split("</ul>")[0]
    assert "Aucun message ne sera envoyé" in messages
    assert "SMS" not in messages
    assert f'href="/agent/appointments/{booked["id"]}/convocation"' in page


@pytest.mark.parametrize("number", ["+33320123456", "+33800123456", "+33899123456"])
async def test_an_old_sms_row_to_a_non_mobile_is_skipped(
        world: World, receivers: Receivers, number: str) -> None:
    """A row written before the check (landline, freephone, premium rate) is skipped as
    ``not_mobile`` and never reaches the gateway."""
    booked = await world.book(phone=None, email=None)
    [row_id] = await _rows(world, booked["id"], [number], channel="sms")
    await world.dispatch_at(world.clock.now)
    row = await _row(world, row_id)
    assert (row.status, row.last_error) == ("skipped", "not_mobile")
    assert receivers.sms.received == []


async def test_a_belgian_number_stays_belgian(world: World, receivers: Receivers) -> None:
    """``0470 12 34 56`` with phone_country BE is +32470123456 and gets its SMS there;
    without it, the French site reads it as French (a landline)."""
    booked = await world.book(phone="0470 12 34 56", phone_country="BE")
    assert booked["usager"]["phone"] == "+32470123456"
    assert booked["usager"]["phone_type"] == "mobile"
    await world.dispatch_at(world.clock.now)
    assert [s["to"] for s in receivers.sms.received] == ["+32470123456"]
    french = await world.book(MONDAY_9 + timedelta(days=1), phone="0470 12 34 56")
    assert french["usager"]["phone"] == "+33470123456"


async def test_a_belgian_site_reads_national_numbers_as_belgian(world: World) -> None:
    """Without phone_country, a national number is read as the site's country's."""
    async with world.db.write() as session:
        await session.execute(sa.update(m.Site).where(m.Site.id == world.site.id)
                              .values(country="BE"))
    booked = await world.book(phone="0470 12 34 56")
    assert booked["usager"]["phone"] == "+32470123456"


async def test_the_live_check_reads_the_country_and_says_landline(world: World) -> None:
    """As the agent types: BE reads a Belgian mobile; a landline is valid but said to
    get no SMS."""
    await log_in(world.client, world.agent)
    headers = {"Accept-Language": "fr"}
    belgian = await (await world.client.get(
        "/web/phone", params={"number": "0470 12 34 56", "country": "BE"},
        headers=headers)).json()
    assert (belgian["ok"], belgian["normalised"], belgian["sms"]) == (
        True, "+32470123456", True)
    french = await (await world.client.get(
        "/web/phone", params={"number": "0470 12 34 56"}, headers=headers)).json()
    assert (french["normalised"], french["type"], french["sms"]) == (
        "+33470123456", "fixed", False)
    assert "fixe" in french["message"]
    assert "SMS" in french["message"]


async def test_without_consent_nothing_goes_to_the_usager(
        world: World, receivers: Receivers) -> None:
    """No consent: the usager's rows are skipped ``no_consent`` (no SMS, no e-mail, no
    reminder); the staff invitation still goes; the confirmation page says so and offers
    the convocation."""
    booked = await world.book(phone="+33612345678", email="jeanne@example.fr",
                              consent=False)
    for moment in (world.clock.now, booked_start(booked) - timedelta(hours=48),
                   booked_start(booked) - timedelta(hours=1)):
        await world.dispatch_at(moment)
    rows = await world.rows(booked["id"])
    usager_rows = [r for r in rows if r.audience == "usager"]
    assert usager_rows
    assert {(r.status, r.last_error) for r in usager_rows} == {("skipped", "no_consent")}
    assert receivers.sms.received == []
    [staff_mail] = receivers.smtp.messages
    assert str(staff_mail["To"]) == world.staff_user.email
    # Nor is the usager an attendee of the staff's invitation (calendars mail attendees).
    [calendar] = [p.get_content() for p in staff_mail.walk()
                  if p.get_content_type() == "text/calendar"]
    attendee = icalendar.Calendar.from_ical(calendar).walk("VEVENT")[0].get("attendee")
    # One attendee is a single value; several are a list.
    assert not isinstance(attendee, list)
    assert str(attendee) == f"mailto:{world.staff_user.email}"
    await log_in(world.client, world.agent)
    page = await (await world.client.get(f"/agent/appointments/{booked['id']}",
                                         headers={"Accept-Language": "fr"})).text()
    assert 'id="no-consent"' in page
    assert "consent" in page[page.index('id="no-consent"'):].split("</p>")[0]
    assert f'href="/agent/appointments/{booked["id"]}/convocation"' in page
