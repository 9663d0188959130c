"""The booking page books through the same use case as the API: once per form."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests.conftest import Client
from tests.factories import PASSWORD, make_operator, make_site, make_user
from visio import models as m
from visio.db import Database


async def test_a_second_click_on_the_booking_form_shows_the_same_booking(
        client: Client, db: Database) -> None:
    """The same form sent twice (its idem key) leads to one appointment and one
    confirmation; the audit names the agent who booked."""
    site = await make_site(db)
    await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    login = await (await client.get("/login")).text()
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', login)
    assert csrf is not None
    await client.post("/login", data={"email": agent.email, "password": PASSWORD,
                                      "csrf": csrf.group(1)}, allow_redirects=False)
    page = await (await client.get(
        "/agent/book", params={"theme": "famille", "day": "2026-11-24"})).text()
    slot = re.search(r'name="slot" value="([^"]+)"', page)
    idem = re.search(r'name="idem" value="([^"]+)"', page)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert slot is not None
    assert idem is not None
    assert csrf is not None
    form = {"csrf": csrf.group(1), "idem": idem.group(1), "site_id": site.id,
            "theme": "famille", "day": "2026-11-24", "slot": slot.group(1),
            "first_name": "Paul", "last_name": "Durand", "phone": "06 12 34 56 78",
            "language": "fr", "consent": "yes"}
    first = await client.post("/agent/book", data=form, allow_redirects=False)
    assert first.status == 303, await first.text()
    second = await client.post("/agent/book", data=form, allow_redirects=False)
    assert second.status == 303
    assert second.headers["Location"] == first.headers["Location"]
    async with db.read() as session:
        appointments = (await session.scalars(sa.select(m.Appointment))).all()
        audit = (await session.scalars(sa.select(m.AuditEntry).where(
            m.AuditEntry.action == "booked"))).all()
    assert [f"/agent/appointments/{a.id}" for a in appointments] == [
        first.headers["Location"]]
    assert [(e.actor_id, e.actor_kind) for e in audit] == [(agent.id, "agent")]
