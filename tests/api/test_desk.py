"""The agent's desk over the API: find an usager, correct their details, resend a message."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from tests.api.test_appointments import MONDAY_9, World, make_world
from tests.api.test_privacy import debug_logging  # noqa: F401  (a fixture)
from tests.conftest import DEFAULT_NOW, Client
from tests.factories import auth_headers, make_site, make_user, read_appointment, usager
from visio import models as m
from visio.app import create_app
from visio.db import Database
from visio.services import outbox
from visio.settings import Settings


async def book(world: World, start: str = MONDAY_9, **person: Any) -> dict[str, Any]:
    status, body = await world.book(world.booking(start=start, usager=usager(**person)))
    assert status == 201, body
    return body


async def found(world: World, **params: str) -> list[str]:
    response = await world.client.get("/api/v1/appointments", headers=world.headers,
                                      params=params)
    assert response.status == 200, await response.text()
    return [a["id"] for a in (await response.json())["items"]]


async def usager_rows(db: Database, appointment_id: str) -> list[m.OutboxRow]:
    async with db.read() as session:
        return list((await session.scalars(
            sa.select(m.OutboxRow).where(m.OutboxRow.appointment_id == appointment_id,
                                         m.OutboxRow.audience == "usager")
            .order_by(m.OutboxRow.created_at, m.OutboxRow.due_at, m.OutboxRow.id))).all())


async def test_usagers_are_found_by_name_without_case_or_accents_and_by_any_phone(
        db: Database, client: Client) -> None:
    """"helene", "LENE", "Hélène Dupont" find Hélène; three ways of writing her phone too."""
    world = await make_world(db, client)
    helene = await book(world, first_name="Hélène", last_name="Dupont-Lefèvre",
                        phone="06 12 34 56 78")
    paul = await book(world, "2026-11-30T10:00:00+01:00", first_name="Paul",
                      last_name="Durand", phone="+32 470 12 34 56")
    for q in ("helene", "LENE", "Hélène dupont", "lefevre", "DUPONT-LEFÈVRE"):
        assert await found(world, q=q) == [helene["id"]], q
    for q in ("06 12 34 56 78", "+33612345678", "0612345678", "0033 6 12 34 56 78",
              "06.12.34"):
        assert await found(world, q=q) == [helene["id"]], q
    for q in ("0470 12 34 56", "+32470123456", "paul durand"):
        assert await found(world, q=q) == [paul["id"]], q
    assert await found(world, q="martine") == []
    assert sorted(await found(world, q="d")) == sorted([helene["id"], paul["id"]])


async def test_search_keeps_the_callers_scope_and_the_other_filters(
        db: Database, client: Client) -> None:
    """Another site's agent finds nothing; status, dates and pages narrow the search."""
    world = await make_world(db, client)
    first = await book(world, first_name="Hélène", last_name="Martin")
    second = await book(world, "2026-11-30T10:00:00+01:00", first_name="Hélène",
                        last_name="Martin")
    other_site = await make_site(db)
    stranger = await make_user(db, role="agent", sites=[other_site])
    response = await client.get("/api/v1/appointments", params={"q": "helene"},
                                headers=await auth_headers(client, stranger))
    assert (await response.json())["items"] == []
    cancel = await client.post(f"/api/v1/appointments/{first['id']}/cancel",
                               json={"reason": "Erreur"}, headers=world.headers)
    assert cancel.status == 200
    assert await found(world, q="helene", status="booked") == [second["id"]]
    assert await found(world, q="helene", status="cancelled") == [first["id"]]
    assert await found(world, q="helene", **{"from": "2026-11-30T09:30:00+01:00"}) == [
        second["id"]]
    page = await client.get("/api/v1/appointments", headers=world.headers,
                            params={"q": "helene", "limit": "1"})
    body = await page.json()
    assert [a["id"] for a in body["items"]] == [first["id"]]
    rest = await found(world, q="helene", limit="1", cursor=body["next_cursor"])
    assert rest == [second["id"]]
    bad = await client.get("/api/v1/appointments", headers=world.headers,
                           params={"q": "x" * 101})
    assert bad.status == 400
    assert (await bad.json())["field"] == "q"


async def test_correcting_the_usager_is_one_version_and_audited(
        db: Database, client: Client) -> None:
    """New names and a note: version + 1, ETag, audited as corrected, found by new name."""
    world = await make_world(db, client)
    booked = await book(world, first_name="Helen", last_name="Dupond")
    url = f"/api/v1/appointments/{booked['id']}/usager"
    response = await client.patch(url, headers={**world.headers, "If-Match": '"v1"'},
                                  json={"first_name": "Hélène", "last_name": "Dupont",
                                        "note": "Dossier de pension de réversion"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert response.headers["ETag"] == '"v2"'
    assert body["usager"]["first_name"] == "Hélène"
    assert body["usager"]["phone"] == "+33612345678"
    stored = await read_appointment(db, booked["id"])
    assert stored.note == "Dossier de pension de réversion"
    assert stored.usager_search.startswith("helene dupont")
    assert await found(world, q="helene") == [booked["id"]]
    async with db.read() as session:
        entry = await session.scalar(sa.select(m.AuditEntry).where(
            m.AuditEntry.appointment_id == booked["id"], m.AuditEntry.action == "corrected"))
    assert entry is not None
    assert entry.actor_kind == "agent"
    assert entry.detail == {"fields": ["first_name", "last_name", "note"], "version": 2}
    assert "Hélène" not in str(entry.detail)
    stale = await client.patch(url, headers={**world.headers, "If-Match": '"v1"'},
                               json={"first_name": "Anne"})
    assert stale.status == 412
    assert (await read_appointment(db, booked["id"])).usager_first_name == "Hélène"
    same = await client.patch(url, headers=world.headers, json={"first_name": "Hélène"})
    assert same.headers["ETag"] == '"v2"'


async def test_a_new_phone_gets_the_confirmation_and_the_old_one_nothing_more(
        db: Database, client: Client) -> None:
    """Pending SMS to the old number are retired; the e-mail's messages still go."""
    world = await make_world(db, client)
    booked = await book(world, phone="06 12 34 56 78", email="jeanne@example.org")
    before = await usager_rows(db, booked["id"])
    assert {(r.channel, r.kind) for r in before} >= {("sms", "confirmation"),
                                                     ("email", "confirmation")}
    response = await client.patch(f"/api/v1/appointments/{booked['id']}/usager",
                                  headers=world.headers, json={"phone": "06 98 76 54 32"})
    assert response.status == 200, await response.text()
    rows = await usager_rows(db, booked["id"])
    old = [r for r in rows if r.recipient == "+33612345678"]
    assert old
    assert all(r.status == "retired" for r in old)
    new = [r for r in rows if r.recipient == "+33698765432"]
    assert ("confirmation", "pending", 2) in {(r.kind, r.status, r.appointment_version)
                                              for r in new}
    mails = [r for r in rows if r.channel == "email"]
    assert [r.kind for r in mails if r.kind == "confirmation"] == ["confirmation"]
    assert all(r.status == "pending" and r.appointment_version == 2 for r in mails)
    wrong = await client.patch(f"/api/v1/appointments/{booked['id']}/usager",
                               headers=world.headers, json={"phone": "12"})
    assert wrong.status == 422
    assert (await wrong.json())["field"] == "usager.phone"
    removed = await client.patch(f"/api/v1/appointments/{booked['id']}/usager",
                                 headers=world.headers, json={"phone": None})
    assert (await removed.json())["usager"]["phone"] is None


async def test_operator_staff_cannot_correct_and_bad_bodies_change_nothing(
        db: Database, client: Client) -> None:
    """403 for staff; unknown fields, a blank name or a too long note are 400."""
    world = await make_world(db, client)
    booked = await book(world)
    staff = await make_user(db, role="staff", staff=world.op.staff[0])
    url = f"/api/v1/appointments/{booked['id']}/usager"
    refused = await client.patch(url, json={"first_name": "Anne"},
                                 headers=await auth_headers(client, staff))
    assert refused.status == 403
    for body in ({"first_name": " "}, {"note": "x" * 1001}, {"nickname": "Jo"}):
        response = await client.patch(url, headers=world.headers, json=body)
        assert response.status == 400, body
    assert (await read_appointment(db, booked["id"])).version == 1


async def _deliver(db: Database, now: datetime) -> None:
    """What the dispatcher does once a message went: claimed, then marked sent."""
    for row in await outbox.claim(db=db, owner="test", now=now, lease=timedelta(minutes=1),
                                  limit=50):
        await outbox.finish(db=db, owner=row.lease, row_id=row.id, status=outbox.SENT, now=now)


async def test_the_last_message_is_sent_again_three_times_a_day_at_most(
        db: Database, client: Client) -> None:
    """Nothing sent yet: 409; then 202 three times, the fourth is 429 with Retry-After."""
    world = await make_world(db, client)
    booked = await book(world)
    url = f"/api/v1/appointments/{booked['id']}/resend"
    nothing = await client.post(url, headers=world.headers)
    assert nothing.status == 409
    await _deliver(db, DEFAULT_NOW)
    for _ in range(3):
        response = await client.post(url, headers=world.headers)
        assert response.status == 202, await response.text()
        body = await response.json()
        assert (body["kind"], body["channel"], body["status"]) == (
            "confirmation", "sms", "pending")
        assert body["recipient"] == "+33612345678"
    fourth = await client.post(url, headers={**world.headers, "Accept-Language": "fr"})
    assert fourth.status == 429
    assert int(fourth.headers["Retry-After"]) > 0
    assert "3" in (await fourth.json())["detail"]
    async with db.read() as session:
        resent = await session.scalar(sa.select(sa.func.count()).where(
            m.AuditEntry.appointment_id == booked["id"], m.AuditEntry.action == "resent"))
    assert resent == 3


async def test_resending_stops_at_the_daily_cap_of_the_address(
        db: Database, settings: Settings) -> None:
    """An address that already got the day's cap of messages: 429, nothing written."""
    app = create_app(replace(settings, notify_daily_cap=1), clock=lambda: DEFAULT_NOW)
    async with TestClient(TestServer(app)) as capped:
        world = await make_world(db, capped)
        booked = await book(world)
        await _deliver(db, DEFAULT_NOW)
        before = len(await usager_rows(db, booked["id"]))
        response = await capped.post(f"/api/v1/appointments/{booked['id']}/resend",
                                     headers=world.headers)
        assert response.status == 429
        assert int(response.headers["Retry-After"]) > 0
        assert len(await usager_rows(db, booked["id"])) == before


async def test_other_sites_cannot_resend_nor_correct(db: Database, client: Client) -> None:
    """Out of scope reads as absent: 404."""
    world = await make_world(db, client)
    booked = await book(world)
    stranger = await make_user(db, role="agent", sites=[await make_site(db)])
    headers = await auth_headers(client, stranger)
    assert (await client.post(f"/api/v1/appointments/{booked['id']}/resend",
                              headers=headers)).status == 404
    assert (await client.patch(f"/api/v1/appointments/{booked['id']}/usager",
                               headers=headers, json={"first_name": "X"})).status == 404


@pytest.mark.usefixtures("debug_logging")
async def test_the_note_reaches_no_message_calendar_convocation_nor_log(
        db: Database, client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """The note is for the operator's eyes: not in the invitation, the convocation, the
    outbox or any log line (the application's logging at DEBUG)."""
    world = await make_world(db, client)
    booked = await book(world, email="jeanne@example.org")
    note = "Dossier de réversion, numéro fiscal 1234567890123"
    response = await client.patch(f"/api/v1/appointments/{booked['id']}/usager",
                                  headers=world.headers,
                                  json={"note": note, "email": "j.martin@example.org"})
    assert response.status == 200
    assert (await read_appointment(db, booked["id"])).note == note
    for path in ("invite.ics", "convocation"):
        answer = await client.get(f"/api/v1/appointments/{booked['id']}/{path}",
                                  headers=world.headers)
        assert answer.status in (200, 404), path
        assert "1234567890123" not in await answer.text()
    async with db.read() as session:
        texts = [str(r.__dict__) for r in (await session.scalars(sa.select(m.OutboxRow)))]
    assert not [t for t in texts if "1234567890123" in t]
    assert "1234567890123" not in caplog.text
    assert "j.martin@example.org" not in caplog.text


async def test_a_new_language_relabels_what_is_still_to_go_and_a_cancelled_one_stays(
        db: Database, client: Client) -> None:
    """Dutch from now on for the pending messages; a cancelled appointment is 409."""
    world = await make_world(db, client)
    booked = await book(world)
    url = f"/api/v1/appointments/{booked['id']}/usager"
    response = await client.patch(url, headers=world.headers, json={"language": "nl"})
    assert response.status == 200
    pending = [r for r in await usager_rows(db, booked["id"]) if r.status == "pending"]
    assert pending
    assert {(r.language, r.appointment_version) for r in pending} == {("nl", 2)}
    cancel = await client.post(f"/api/v1/appointments/{booked['id']}/cancel",
                               headers=world.headers, json={"reason": "Erreur"})
    assert cancel.status == 200
    refused = await client.patch(url, headers=world.headers, json={"first_name": "Anne"})
    assert refused.status == 409
    assert (await read_appointment(db, booked["id"])).usager_first_name == "Jeanne"
