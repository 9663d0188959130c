"""Notifications end to end: booked over the API, sent to a real SMTP server and SMS gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import icalendar

from tests.notify.conftest import Receivers
from tests.notify.receivers import duplicates
from tests.notify.world import MONDAY_9, World
from visio.i18n import catalogue


def _calendar(message: EmailMessage) -> icalendar.Calendar:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.walk()]
    assert message.get_content_type() == "multipart/alternative"
    return icalendar.Calendar.from_ical(parts[0].get_content())


async def test_booking_sends_confirmations_reminders_and_invitation(
        world: World, receivers: Receivers) -> None:
    """A Dutch usager gets SMS and e-mail in Dutch at each moment; the staff an invitation."""
    booked = await world.book(phone="+32470123456", email="jan@example.be", language="nl")
    assert await world.dispatch_at(world.clock.now) == 3
    usager_mail = next(m for m in receivers.smtp.messages if m["To"] == "jan@example.be")
    staff_mail = next(m for m in receivers.smtp.messages if m["To"] == world.staff_user.email)
    assert usager_mail["Content-Language"] == "nl"
    subject = str(usager_mail["Subject"]).strip()
    assert subject.startswith(catalogue("nl").gettext(
        "Your video appointment with {operator} on {when}").split("{")[0])
    assert "november" in subject.lower()  # Babel's Dutch month name
    assert usager_mail["Message-ID"] == f"<outbox.{usager_mail['X-Visio-Outbox-Id']}@127.0.0.1>"
    event = _calendar(staff_mail).walk("VEVENT")[0]
    assert _calendar(staff_mail)["METHOD"] == "REQUEST"
    assert event["UID"] == f"{booked['id']}@visio"
    assert int(event["SEQUENCE"]) == 1
    assert event.decoded("DTSTART") == MONDAY_9
    [sms] = receivers.sms.received
    assert sms["to"] == "+32470123456"
    assert "/u/" in sms["text"]
    # The 48 h reminders (Saturday 09:00), then the short SMS moved out of the night
    # before 07:00 to 19:30 the evening before.
    assert await world.dispatch_at(MONDAY_9 - timedelta(hours=48)) == 2
    assert await world.dispatch_at(datetime(2026, 11, 29, 18, 30, tzinfo=UTC)) == 1
    assert await world.dispatch_at(MONDAY_9 - timedelta(minutes=1)) == 0
    assert receivers.smtp.count() == 3
    assert len(receivers.sms.received) == 3
    assert duplicates(receivers.smtp.ids()) == 0
    statuses = {(r.kind, r.channel): r.status for r in await world.rows(booked["id"])}
    assert set(statuses.values()) == {"sent"}
    assert len(statuses) == 6


async def test_cancel_before_due_sends_no_reminder(world: World, receivers: Receivers) -> None:
    """Cancelled before its reminders: they are retired; the usager and staff hear of it."""
    booked = await world.book(email="jeanne@example.fr", phone=None)
    assert await world.dispatch_at(world.clock.now) == 2
    await world.cancel(booked["id"])
    assert await world.dispatch_at(world.clock.now + timedelta(seconds=1)) == 2
    for moment in (MONDAY_9 - timedelta(hours=48), MONDAY_9 - timedelta(hours=2)):
        assert await world.dispatch_at(moment) == 0
    kinds = sorted(str(m["Subject"]).split(" ")[0] for m in receivers.smtp.messages)
    assert len(kinds) == 4  # confirmation, invitation, cancellation, CANCEL
    cancels = [m for m in receivers.smtp.messages
               if m["To"] == world.staff_user.email and "CANCEL" in m.as_string()]
    assert _calendar(cancels[0])["METHOD"] == "CANCEL"
    rows = await world.rows(booked["id"])
    assert {r.kind for r in rows if r.status == "retired"} == {"reminder"}
    assert not [r for r in rows if r.status == "pending"]


async def test_reschedule_retires_old_reminders_and_sends_new_once(
        world: World, receivers: Receivers) -> None:
    """After a move, only the new time's reminders go, each once; the invitation is updated."""
    booked = await world.book(email="jeanne@example.fr", phone="+33612345678")
    await world.dispatch_at(world.clock.now)
    later = MONDAY_9 + timedelta(days=1, hours=5)  # Tuesday 14:00
    await world.reschedule(booked["id"], later)
    await world.dispatch_at(world.clock.now + timedelta(seconds=1))
    for moment in sorted({r.due_at for r in await world.rows(booked["id"])}):
        await world.dispatch_at(moment)
    rows = await world.rows(booked["id"])
    old = [r for r in rows if r.appointment_version == 1 and r.kind != "confirmation"
           and r.kind != "staff_request"]
    assert old
    assert {r.status for r in old} == {"retired"}
    new = [r for r in rows if r.appointment_version == 2]
    assert {r.status for r in new} == {"sent"}
    assert {r.kind for r in new} == {"rescheduled", "reminder", "short_reminder",
                                     "staff_request"}
    ids = receivers.smtp.ids() + [s["reference"] for s in receivers.sms.received]
    assert duplicates(ids) == 0
    assert sorted(ids) == sorted(r.id for r in rows if r.status == "sent")
    invitations = [m for m in receivers.smtp.messages if m["To"] == world.staff_user.email]
    assert [int(_calendar(m).walk("VEVENT")[0]["SEQUENCE"]) for m in invitations] == [1, 2]


async def test_smtp_outage_delays_but_loses_nothing(world: World, receivers: Receivers) -> None:
    """With the SMTP server down for a (simulated) minute, every e-mail arrives once after."""
    for day in range(3):
        await world.book(MONDAY_9 + timedelta(days=day), email=f"u{day}@example.fr",
                         phone=None)
    receivers.smtp.stop()
    for _ in range(60):  # one minute of the dispatcher's clock, one run per second
        await world.dispatcher.drain()
        world.clock.advance(1)
    rows = await world.rows()
    assert receivers.smtp.count() == 0
    assert {r.status for r in rows if r.kind == "confirmation"} == {"pending"}
    assert min(r.attempts for r in rows if r.kind == "confirmation") >= 3
    receivers.smtp.start()
    for _ in range(20):
        await world.dispatcher.drain()
        world.clock.advance(1)
    assert receivers.smtp.count() == 6  # 3 confirmations, 3 invitations
    assert duplicates(receivers.smtp.ids()) == 0


async def test_rejected_address_fails_at_once(world: World, receivers: Receivers) -> None:
    """A permanent refusal (550) is recorded as failed after one attempt, with the reason."""
    receivers.smtp.refuse.add("nobody@example.fr")
    booked = await world.book(email="nobody@example.fr", phone=None)
    await world.dispatch_at(world.clock.now)
    [row] = [r for r in await world.rows(booked["id"]) if r.kind == "confirmation"]
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error is not None
    assert "550" in row.last_error


async def test_sms_gateway_failover(world: World, receivers: Receivers) -> None:
    """When the first SMS gateway answers 5xx, the fallback gateway carries the SMS."""
    import dataclasses

    from tests.notify.receivers import SmsSink
    from visio.notify.dispatcher import Dispatcher

    backup = SmsSink(token="backup-token")
    await backup.start()
    receivers.sms.answer = 503
    dispatcher = Dispatcher(db=world.db, clock=world.clock, settings=dataclasses.replace(
        world.dispatcher.settings, sms_fallback_url=backup.url,
        sms_fallback_token=backup.token))
    try:
        await world.book(phone="+33612345678")
        await dispatcher.drain()
    finally:
        await dispatcher.close()
        await backup.stop()
    assert len(backup.received) == 1
    assert not receivers.sms.received


async def test_row_found_at_night_waits_for_the_morning(
        world: World, receivers: Receivers) -> None:
    """A 48 h reminder claimed at 23:00 (servers were down) is sent at 08:00, not at night."""
    booked = await world.book(email="jeanne@example.fr", phone=None)
    await world.dispatch_at(world.clock.now)
    night = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)  # Saturday 23:00 in Paris
    assert await world.dispatch_at(night) == 1
    assert receivers.smtp.count() == 2  # confirmation and invitation only
    [row] = [r for r in await world.rows(booked["id"]) if r.kind == "reminder"]
    assert (row.status, row.last_error) == ("pending", "quiet_hours")
    assert await world.dispatch_at(datetime(2026, 11, 29, 6, 59, tzinfo=UTC)) == 0
    assert await world.dispatch_at(datetime(2026, 11, 29, 7, 0, tzinfo=UTC)) == 1
    assert receivers.smtp.count() == 3


async def test_sms_gateway_refusal_is_permanent_and_5xx_is_retried(
        world: World, receivers: Receivers) -> None:
    """A 400 (invalid number) fails at once; a 503 leaves the SMS pending for a retry."""
    receivers.sms.invalid.add("+33612345678")
    refused = await world.book(phone="+33612345678")
    receivers.sms.answer = 503
    retried = await world.book(MONDAY_9 + timedelta(days=1), phone="+33698765432")
    await world.dispatch_at(world.clock.now)
    [failed] = [r for r in await world.rows(refused["id"]) if r.kind == "confirmation"]
    [pending] = [r for r in await world.rows(retried["id"]) if r.kind == "confirmation"]
    assert (failed.status, failed.attempts, failed.last_error) == \
        ("failed", 1, "sms gateway 400")
    assert (pending.status, pending.last_error) == ("pending", "sms gateway 503")
    receivers.sms.answer = 202
    await world.dispatch_at(world.clock.now + timedelta(seconds=2))
    assert [s["to"] for s in receivers.sms.received] == ["+33698765432"]
