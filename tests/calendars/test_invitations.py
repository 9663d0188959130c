"""Invitations: REQUEST, update and CANCEL read alike by icalendar and by Mozilla's ical.js."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import icalendar
import pytest

from tests.calendars import icaljs
from tests.conftest import Client
from tests.factories import auth_headers, make_operator, make_site, make_user, usager
from visio.calendars.invitations import InvitationFacts, invitation_ics
from visio.db import Database

PARIS = ZoneInfo("Europe/Paris")
STAMP = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def facts(start: datetime, **overrides: Any) -> InvitationFacts:
    values: dict[str, Any] = dict(
        appointment_id="a-1", version=1, status="booked", start=start,
        end=start + timedelta(minutes=30), zone="Europe/Paris", theme_label="Famille",
        operator_name="CAF du Nord", place="Hondschoote, 1 place de la mairie",
        join_url="https://visio.test/call/a-1", bring="", usager_first_name="Jeanne",
        usager_last_initial="M", staff_email="paul@caf.test", staff_name="Paul Dupont",
        usager_email=None, theme_labels={"fr": "Famille", "nl": "Gezin"})
    values.update(overrides)
    return InvitationFacts(**values)


def only_event(raw: bytes) -> icalendar.Event:
    calendar = icalendar.Calendar.from_ical(raw)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, icalendar.Event)
    return event


@pytest.mark.parametrize(("local", "utc_hour"), [
    (datetime(2026, 1, 12, 9, 0, tzinfo=PARIS), 8),   # winter: UTC+1
    (datetime(2026, 7, 6, 9, 0, tzinfo=PARIS), 7),    # summer: UTC+2
])
@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
async def test_both_parsers_read_the_local_time_in_winter_and_summer(
    local: datetime, utc_hour: int, method: Literal["REQUEST", "CANCEL"],
) -> None:
    """icalendar and ical.js both place the event at 09:00 Paris time, whatever the season."""
    raw = invitation_ics(facts=facts(local.astimezone(UTC)), method=method, language="fr",
                         organizer="visio@visio.test", dtstamp=STAMP)
    event = only_event(raw)
    assert event.decoded("dtstart") == local
    assert event.decoded("dtstart").astimezone(UTC).hour == utc_hour
    assert event["dtstart"].params["TZID"] == "Europe/Paris"
    assert icalendar.Calendar.from_ical(raw)["method"] == method
    vtimezone = icalendar.Calendar.from_ical(raw).walk("VTIMEZONE")[0]
    assert "RDATE" not in vtimezone.to_ical().decode()
    assert [c.get("rrule") is not None for c in vtimezone.subcomponents] == [True, True]
    js = await icaljs.parse(raw)
    assert js["props"]["method"] == method
    (seen,) = js["events"]
    assert seen["tzid"] == "Europe/Paris"
    assert seen["local_start"] == local.replace(tzinfo=None).isoformat()
    assert seen["start_utc"] == local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert seen["uid"] == "a-1@visio"
    assert seen["status"] == ("CANCELLED" if method == "CANCEL" else "CONFIRMED")
    assert seen["organizer"] == "mailto:visio@visio.test"
    assert seen["attendees"] == ["mailto:paul@caf.test"]
    assert seen["alarms"] == ([] if method == "CANCEL" else ["-PT15M"])


@pytest.mark.parametrize(("language", "summary", "place"), [
    ("fr", "Rendez-vous vidéo : Famille avec CAF du Nord", "Lieu : "),
    ("nl", "Video-afspraak: Gezin met CAF du Nord", "Plaats: "),
    ("en", "Video appointment: Famille with CAF du Nord", "Place: "),
])
async def test_texts_are_in_the_recipients_language(language: str, summary: str,
                                                   place: str) -> None:
    """SUMMARY and DESCRIPTION come from the catalogue in the recipient's language."""
    raw = invitation_ics(facts=facts(datetime(2026, 3, 2, 8, tzinfo=UTC), bring="Avis d'impôt",
                                     usager_email="jeanne@example.test"),
                         method="REQUEST", language=language, organizer="visio@visio.test",
                         dtstamp=STAMP)
    event = only_event(raw)
    assert str(event["summary"]) == summary
    text = str(event["description"])
    assert place + "Hondschoote, 1 place de la mairie" in text
    assert "Jeanne M." in text
    assert "https://visio.test/call/a-1" in text
    assert "Avis d'impôt" in text
    assert event.decoded("dtstamp") == STAMP
    assert event["dtstamp"].to_ical().endswith(b"Z")
    attendees = [str(a) for a in event.get("attendee")]
    assert attendees == ["mailto:paul@caf.test", "mailto:jeanne@example.test"]
    js = await icaljs.parse(raw)
    assert js["events"][0]["summary"] == summary


async def test_invitation_follows_the_appointment_through_reschedule_and_cancel(
    db: Database, client: Client,
) -> None:
    """Same UID throughout, SEQUENCE = version; the cancellation is METHOD:CANCEL."""
    site = await make_site(db)
    op = await make_operator(db)
    staff_user = await make_user(db, role="staff", staff=op.staff[0])
    agent = await make_user(db, role="agent", sites=[site])
    headers = await auth_headers(client, agent)
    response = await client.post("/api/v1/appointments", headers={
        **headers, "Idempotency-Key": secrets.token_hex(8)}, json={
        "site_id": site.id, "service_id": op.service.id, "start": "2026-11-30T09:00:00+01:00",
        "usager": usager(email="jeanne@example.fr")})
    assert response.status == 201, await response.text()
    appointment = await response.json()
    url = f"/api/v1/appointments/{appointment['id']}/invite.ics"

    async def invite(who: dict[str, str], language: str = "fr") -> bytes:
        answer = await client.get(url, headers={**who, "Accept-Language": language})
        assert answer.status == 200, await answer.text()
        assert answer.content_type == "text/calendar"
        return await answer.read()

    first = only_event(await invite(headers))
    assert str(first["uid"]) == f"{appointment['id']}@visio"
    assert first["sequence"] == 1
    assert first.decoded("dtstart") == datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)
    assert [str(a) for a in first.get("attendee")] == [
        f"mailto:{staff_user.email}", "mailto:jeanne@example.fr"]
    assert "Martin" not in (await invite(headers)).decode()

    moved = await client.post(f"/api/v1/appointments/{appointment['id']}/reschedule",
                              json={"start": "2026-12-01T10:00:00+01:00"}, headers=headers)
    assert moved.status == 200, await moved.text()
    staff_headers = await auth_headers(client, staff_user)
    raw = await invite(staff_headers, "nl")
    second = only_event(raw)
    assert (str(second["uid"]), second["sequence"]) == (str(first["uid"]), 2)
    assert second.decoded("dtstart") == datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)
    assert str(second["summary"]).startswith("Video-afspraak")
    js = (await icaljs.parse(raw))["events"][0]
    assert (js["uid"], js["sequence"], js["local_start"]) == (
        str(first["uid"]), 2, "2026-12-01T10:00:00")

    cancelled = await client.post(f"/api/v1/appointments/{appointment['id']}/cancel",
                                  json={"reason": "empêchement"}, headers=headers)
    assert cancelled.status == 200
    raw = await invite(headers)
    calendar = icalendar.Calendar.from_ical(raw)
    third = only_event(raw)
    assert calendar["method"] == "CANCEL"
    assert (str(third["uid"]), third["sequence"], third["status"]) == (
        str(first["uid"]), 3, "CANCELLED")
    js_all = await icaljs.parse(raw)
    assert js_all["props"]["method"] == "CANCEL"
    assert (js_all["events"][0]["status"], js_all["events"][0]["sequence"]) == ("CANCELLED", 3)


async def test_invitation_is_404_outside_the_callers_scope(db: Database, client: Client) -> None:
    """An agent of another site gets a plain 404, as for the appointment itself."""
    site, other = await make_site(db), await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    stranger = await make_user(db, role="agent", sites=[other])
    response = await client.post("/api/v1/appointments", headers={
        **await auth_headers(client, agent), "Idempotency-Key": secrets.token_hex(8)}, json={
        "site_id": site.id, "service_id": op.service.id, "start": "2026-11-30T09:00:00+01:00",
        "usager": usager()})
    appointment = await response.json()
    answer = await client.get(f"/api/v1/appointments/{appointment['id']}/invite.ics",
                              headers=await auth_headers(client, stranger))
    assert answer.status == 404
    assert answer.content_type == "application/problem+json"
