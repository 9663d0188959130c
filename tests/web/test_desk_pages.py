"""The agent's desk pages over HTTP: find, the file, correct, cancel, move, resend."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from tests.api.test_appointments import MONDAY_9, World, make_world
from tests.conftest import DEFAULT_NOW, Client
from tests.factories import (
    audit_trail,
    make_appointment,
    make_site,
    make_user,
    read_appointment,
    usager,
)
from tests.web.test_pages import csrf_of, log_in
from visio import models as m
from visio.db import Database
from visio.services import outbox


async def _booked(world: World, start: str = MONDAY_9, **person: str) -> str:
    status, body = await world.book(world.booking(start=start, usager=usager(**person)))
    assert status == 201, body
    return str(body["id"])


async def _page(client: Client, path: str, **params: str) -> str:
    response = await client.get(path, params=params)
    assert response.status == 200, await response.text()
    return await response.text()


def _found(html: str) -> list[str]:
    return re.findall(r'<tr data-appointment="([^"]+)"', html)


async def test_the_list_finds_usagers_by_name_or_phone_at_the_agents_sites(
        db: Database, client: Client) -> None:
    """Name without accents, phone as typed, status and dates; another site sees nothing."""
    world = await make_world(db, client)
    helene = await _booked(world, first_name="Hélène", last_name="Dupont",
                           phone="06 12 34 56 78")
    paul = await _booked(world, "2026-11-30T10:00:00+01:00", first_name="Paul",
                         last_name="Durand", phone="0698765432")
    await log_in(client, world.agent)
    page = await _page(client, "/agent/appointments", q="helene")
    assert _found(page) == [helene]
    assert "Hélène Dupont" in page
    assert "+33612345678" in page
    assert "lundi 30 novembre 2026 09:00" in page
    assert world.op.operator.name in page
    assert world.site.name in page
    assert _found(await _page(client, "/agent/appointments", q="06 98 76 54 32")) == [paul]
    assert _found(await _page(client, "/agent/appointments", q="+33698765432")) == [paul]
    both = await _page(client, "/agent/appointments", **{"from": "2026-11-30",
                                                        "to": "2026-11-30"})
    assert _found(both) == [helene, paul]
    assert _found(await _page(client, "/agent/appointments", status="cancelled")) == []
    assert _found(await _page(client, "/agent/appointments", operator_id=world.op.operator.id,
                              q="durand")) == [paul]
    stranger = await make_user(db, role="agent", sites=[await make_site(db)])
    await log_in(client, stranger)
    assert _found(await _page(client, "/agent/appointments", q="helene")) == []


async def test_the_list_is_paginated_and_refuses_bad_dates_in_words(
        db: Database, client: Client) -> None:
    """26 appointments: 25, then one behind "Next page"; a reversed range is a sentence."""
    world = await make_world(db, client, booths=30, staff=30)
    for i in range(26):
        await make_appointment(db, site=world.site, op=world.op, booked_by=world.agent,
                               start=DEFAULT_NOW + timedelta(days=2, minutes=30 * i),
                               staff=world.op.staff[i])
    await log_in(client, world.agent)
    first = await _page(client, "/agent/appointments", q="jeanne martin")
    assert len(_found(first)) == 25
    link = re.search(r'href="(/agent/appointments\?[^"]+)" id="next-page"', first)
    assert link
    second = await _page(client, link.group(1).replace("&amp;", "&"))
    assert len(_found(second)) == 1
    assert set(_found(second)).isdisjoint(_found(first))
    refused = await client.get("/agent/appointments", params={"from": "2026-12-02",
                                                             "to": "2026-12-01"})
    assert refused.status == 400
    html = await refused.text()
    assert 'id="form-errors"' in html
    assert 'aria-invalid="true"' in html
    assert "data-first-error" in html
    assert "Le dernier jour" in html


async def test_the_file_shows_messages_history_and_the_usagers_other_appointments(
        db: Database, client: Client) -> None:
    """Booked by the agent, cancelled by the usager's link: named; the cancellation seen."""
    world = await make_world(db, client)
    first = await _booked(world)
    second = await _booked(world, "2026-11-30T10:00:00+01:00")
    async with db.write() as session:
        # An entry from before actor_kind existed: who acted is read from the account.
        session.add(m.AuditEntry(at=DEFAULT_NOW, actor_id=None, action="cancelled",
                                 appointment_id=second, detail={"version": 2}))
        await session.execute(sa.update(m.Appointment).where(m.Appointment.id == second)
                              .values(status="cancelled", cancelled_by="usager",
                                      cancel_reason="usager"))
    await log_in(client, world.agent)
    listed = await _page(client, "/agent/appointments")
    assert "nouveau" in listed
    page = await _page(client, f"/agent/appointments/{first}")
    assert 'id="messages"' in page
    assert "Confirmation par SMS" in page
    history = page[page.index('id="history"'):page.index("</ol>")]
    assert "Réservé" in history
    assert "agent France Services" in history
    others = page[page.index('id="others"'):]
    assert f'href="/agent/appointments/{second}"' in others
    cancelled = await _page(client, f"/agent/appointments/{second}")
    assert "par son lien" in cancelled
    assert (await read_appointment(db, second)).cancel_seen_at == DEFAULT_NOW
    assert "nouveau" not in await _page(client, "/agent/appointments")


async def test_the_correction_form_saves_and_a_refusal_points_at_the_field(
        db: Database, client: Client) -> None:
    """A new name and note are saved (audited); a bad phone keeps everything, names it."""
    world = await make_world(db, client)
    booked = await _booked(world, first_name="Helen")
    await log_in(client, world.agent)
    page = await _page(client, f"/agent/appointments/{booked}")
    form = {"csrf": csrf_of(page), "version": "1", "first_name": "Hélène",
            "last_name": "Martin", "phone": "06 12 34 56 78", "email": "",
            "language": "fr", "consent": "yes", "note": "Réversion\nveuvage"}
    done = await client.post(f"/agent/appointments/{booked}/usager", data=form,
                             allow_redirects=False)
    assert done.status == 303, await done.text()
    stored = await read_appointment(db, booked)
    assert (stored.usager_first_name, stored.note, stored.version) == (
        "Hélène", "Réversion veuvage", 2)
    assert [e.action for e in await audit_trail(db, booked)] == ["booked", "corrected"]
    stale = await client.post(f"/agent/appointments/{booked}/usager",
                              data={**form, "first_name": "Anne"}, allow_redirects=False)
    assert stale.status == 412
    refused = await client.post(f"/agent/appointments/{booked}/usager",
                                data={**form, "version": "2", "phone": "12"},
                                allow_redirects=False)
    assert refused.status == 422
    html = await refused.text()
    assert re.search(r'id="phone"[^>]*aria-invalid="true"[^>]*data-first-error', html)
    assert (await read_appointment(db, booked)).version == 2


async def test_cancelling_asks_for_confirmation_then_cancels_with_the_reason(
        db: Database, client: Client) -> None:
    """No reason: refused; a reason: a question; confirmed: cancelled and said so."""
    world = await make_world(db, client)
    booked = await _booked(world)
    await log_in(client, world.agent)
    csrf = csrf_of(await _page(client, f"/agent/appointments/{booked}"))
    url = f"/agent/appointments/{booked}/cancel"
    empty = await client.post(url, data={"csrf": csrf, "reason": " "}, allow_redirects=False)
    assert empty.status == 400
    asked = await client.post(url, data={"csrf": csrf, "reason": "Rendez-vous en double"},
                              allow_redirects=False)
    assert asked.status == 200
    assert 'id="confirm-cancel"' in await asked.text()
    assert (await read_appointment(db, booked)).status == "booked"
    done = await client.post(url, data={"csrf": csrf, "reason": "Rendez-vous en double",
                                        "confirm": "yes", "version": "1"},
                             allow_redirects=False)
    assert done.status == 303
    stored = await read_appointment(db, booked)
    assert (stored.status, stored.cancel_reason) == ("cancelled", "Rendez-vous en double")
    page = await _page(client, done.headers["Location"])
    assert "Le rendez-vous est annulé." in page
    assert 'id="cancel"' not in page


async def test_moving_lists_the_days_slots_and_takes_one(db: Database, client: Client) -> None:
    """The form offers the chosen day's free slots; choosing one moves the appointment."""
    world = await make_world(db, client)
    booked = await _booked(world)
    await log_in(client, world.agent)
    page = await _page(client, f"/agent/appointments/{booked}/reschedule", day="2026-12-01")
    values = re.findall(r'name="slot" value="([^"]+)"', page)
    assert values
    assert all(v.startswith("2026-12-01") for v in values)
    done = await client.post(f"/agent/appointments/{booked}/reschedule", data={
        "csrf": csrf_of(page), "version": "1", "day": "2026-12-01", "slot": values[0]},
        allow_redirects=False)
    assert done.status == 303, await done.text()
    stored = await read_appointment(db, booked)
    assert stored.start.isoformat().startswith("2026-12-01")
    assert stored.version == 2
    refused = await client.post(f"/agent/appointments/{booked}/reschedule", data={
        "csrf": csrf_of(page), "day": "2026-12-01", "slot": ""}, allow_redirects=False)
    assert refused.status == 400
    assert "data-first-error" in await refused.text()


async def test_the_resend_button_sends_the_last_message_again(
        db: Database, client: Client) -> None:
    """Nothing sent yet: a sentence; once sent: one more message, said on the page."""
    world = await make_world(db, client)
    booked = await _booked(world)
    await log_in(client, world.agent)
    csrf = csrf_of(await _page(client, f"/agent/appointments/{booked}"))
    url = f"/agent/appointments/{booked}/resend"
    nothing = await client.post(url, data={"csrf": csrf}, allow_redirects=False)
    assert nothing.status == 409
    assert "Aucun message" in await nothing.text()
    for row in await outbox.claim(db=db, owner="t", now=DEFAULT_NOW,
                                  lease=timedelta(minutes=1), limit=50):
        await outbox.finish(db=db, owner=row.lease, row_id=row.id, status=outbox.SENT,
                            now=DEFAULT_NOW)
    done = await client.post(url, data={"csrf": csrf}, allow_redirects=False)
    assert done.status == 303
    assert "Le message est renvoyé." in await _page(client, done.headers["Location"])
    assert "resent" in [e.action for e in await audit_trail(db, booked)]


async def test_the_list_opens_on_what_is_coming_and_a_name_finds_the_past_too(
        db: Database, client: Client) -> None:
    """No search: from today on; a name: every date."""
    world = await make_world(db, client)
    past = await make_appointment(db, site=world.site, op=world.op, booked_by=world.agent,
                                  start=DEFAULT_NOW - timedelta(days=3))
    coming = await make_appointment(db, site=world.site, op=world.op, booked_by=world.agent,
                                    start=DEFAULT_NOW + timedelta(days=3))
    await log_in(client, world.agent)
    opened = await _page(client, "/agent/appointments")
    assert _found(opened) == [coming.id]
    assert 'value="2026-11-23"' in opened
    assert _found(await _page(client, "/agent/appointments", q="martin")) == [past.id,
                                                                              coming.id]


async def test_a_sentence_holding_markup_or_an_apostrophe_is_escaped_once(
        db: Database, client: Client) -> None:
    """« par l'agent France Services » in the history and « D'Hondt » in the question
    before cancelling read as written, not as « l&#39;agent »."""
    world = await make_world(db, client)
    booked = await _booked(world, first_name="Anne", last_name="D'Hondt")
    await log_in(client, world.agent)
    page = await _page(client, f"/agent/appointments/{booked}")
    assert "&amp;#39;" not in page
    history = page[page.index('id="history"'):page.index("</ol>")]
    assert "Réservé, par l&#39;agent France Services" in history
    asked = await client.post(f"/agent/appointments/{booked}/cancel", data={
        "csrf": csrf_of(page), "reason": "En double"}, allow_redirects=False)
    assert asked.status == 200
    question = await asked.text()
    assert "&amp;#39;" not in question
    assert "Annuler le rendez-vous de Anne D&#39;Hondt" in question
