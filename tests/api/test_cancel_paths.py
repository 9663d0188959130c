"""Every way to cancel is the same use case: messages, the staff CANCEL, the call closed.

The API, the agent's page and the usager's link all call ``changes.cancel``; whichever
way an appointment is cancelled, its live room gets ``room_closed``, a join afterwards is
refused, the usager's pending messages are retired, the staff member's CANCEL waits in
the outbox and the appointment records who cancelled.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.api.test_calls import ORIGIN, Call, join_grant
from tests.conftest import Client
from tests.factories import auth_headers, make_appointment, make_operator, make_site, make_user
from tests.signaling.sigpeer import SignalingSocket
from visio import models as m
from visio.clock import utcnow
from visio.db import Database
from visio.domain.reminders import Kind
from visio.notify.compose import load_facts, usager_url
from visio.services import outbox
from visio.settings import Settings
from visio.usager_link import LinkKey

MakeClient = Callable[..., Awaitable[Client]]


@dataclass
class Way:
    """One way to cancel, and whom it records as having cancelled."""

    cancel: Callable[[Client, Database, Settings, Call], Awaitable[None]]
    cancelled_by: str
    actor_is_user: bool


async def by_the_api(client: Client, db: Database, settings: Settings, call: Call) -> None:
    response = await client.post(f"/api/v1/appointments/{call.appointment.id}/cancel",
                                 json={"reason": "Usager absent"}, headers=call.agent_headers)
    assert response.status == 200, await response.text()


async def by_the_usager_link(client: Client, db: Database, settings: Settings,
                             call: Call) -> None:
    """Through the confirmation step, as the usager does."""
    facts = await load_facts(db=db, appointment_id=call.appointment.id)
    assert facts is not None
    path = usager_url(facts, key=LinkKey.from_secret(settings.secret_key),
                      base_url=settings.base_url).removeprefix(settings.base_url)
    confirm = await client.get(f"{path}/cancel")
    assert confirm.status == 200
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', await confirm.text())
    assert csrf is not None
    response = await client.post(f"{path}/cancel", data={"csrf": csrf.group(1)},
                                 allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == path


async def by_a_closure(client: Client, db: Database, settings: Settings, call: Call) -> None:
    """An administrator closes the site that day, cancelling its appointments."""
    admin = await make_user(db, role="admin")
    day = call.appointment.start.astimezone(ZoneInfo(call.site.timezone)).date()
    response = await client.post("/api/v1/closures", headers=await auth_headers(client, admin),
                                 json={"site_id": call.site.id, "date": day.isoformat(),
                                       "reason": "Travaux", "cancel_appointments": True})
    assert response.status == 201, await response.text()


WAYS = {
    "api": Way(by_the_api, "agent", actor_is_user=True),
    "usager_link": Way(by_the_usager_link, "usager", actor_is_user=False),
    "closure": Way(by_a_closure, "closure", actor_is_user=True),
}


@pytest.mark.parametrize("way", list(WAYS))
async def test_each_way_to_cancel_closes_the_call_and_tells_the_staff_member(
        db: Database, make_client: MakeClient, settings: Settings, way: str) -> None:
    """Cancelled before it starts, with the kiosk already in the room: the room closes,
    the staff member can no longer join, the usager's reminders are retired, the staff
    CANCEL is planned and ``cancelled_by`` names who cancelled (audited alike)."""
    client = await make_client(utcnow())
    site = await make_site(db)
    op = await make_operator(db, staff=2)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])
    # In the join window, before the start: the usager may still cancel from the link.
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=utcnow() + timedelta(minutes=10))
    async with db.write() as session:
        row = await session.get(m.Appointment, appointment.id)
        assert row is not None
        row.usager_phone = "+33612345678"
        await outbox.booked(session, row, zone=site.timezone, now=utcnow() - timedelta(days=2))
    call = Call(appointment=appointment, site=site, op=op,
                agent_headers=await auth_headers(client, agent),
                staff_headers=await auth_headers(client, staff))
    grant = await join_grant(client, call, call.agent_headers)
    sock = await SignalingSocket.open(str(client.make_url("/signaling/ws")), origin=ORIGIN)
    try:
        await sock.join(grant["token"])
        await WAYS[way].cancel(client, db, settings, call)
        assert (await sock.next("room_closed"))["reason"] == "cancelled"
    finally:
        await sock.close()

    refused = await client.post(f"/api/v1/appointments/{appointment.id}/join",
                                headers=call.staff_headers)
    assert refused.status == 422

    async with db.read() as session:
        stored = await session.get(m.Appointment, appointment.id)
        assert stored is not None
        rows = (await session.scalars(sa.select(m.OutboxRow).where(
            m.OutboxRow.appointment_id == appointment.id))).all()
        audit = (await session.scalars(sa.select(m.AuditEntry).where(
            m.AuditEntry.appointment_id == appointment.id,
            m.AuditEntry.action == "cancelled"))).one()
    assert stored.status == "cancelled"
    assert stored.cancelled_by == WAYS[way].cancelled_by
    assert stored.cancel_seen_at is None
    assert audit.actor_kind == WAYS[way].cancelled_by
    assert (audit.actor_id is not None) is WAYS[way].actor_is_user
    assert [r.status for r in rows if r.appointment_version == 1]
    assert {r.status for r in rows if r.appointment_version == 1} == {"retired"}
    [staff_cancel] = [r for r in rows if r.kind == Kind.STAFF_CANCEL]
    assert staff_cancel.status == "pending"
    assert staff_cancel.recipient == staff.email
    assert staff_cancel.appointment_version == stored.version
