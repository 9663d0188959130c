"""Outcomes from real call logs (aiortc peers through signaling), and corrections."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.api.test_calls import Call, MakeClient, join_grant, make_call, peer
from tests.conftest import Client
from tests.factories import audit_trail, auth_headers, make_operator, make_user, read_appointment
from visio import models as m
from visio.clock import utcnow
from visio.db import Database
from visio.signaling_host import settle_now


async def _outcome(db: Database, appointment_id: str) -> m.CallOutcome | None:
    async with db.read() as session:
        return await session.get(m.CallOutcome, appointment_id)


async def _users(db: Database, call: Call) -> tuple[m.User, m.User]:
    """The call's agent (who booked it) and its staff member's account."""
    async with db.read() as session:
        agent = await session.get(m.User, call.appointment.booked_by)
        staff = (await session.scalars(sa.select(m.User).where(
            m.User.staff_id == call.appointment.staff_id))).one()
    assert agent is not None
    return agent, staff


async def _settle_after(make_client: MakeClient, call: Call) -> Client:
    """The app a little after the outcome delay (10 minutes by default), settled once."""
    later = await make_client(call.appointment.end + timedelta(minutes=11))
    await settle_now(later.app)
    return later


async def test_a_connected_call_is_done_with_its_time_to_connect_and_duration(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(utcnow())
    call = await make_call(db, client)
    kiosk = await peer(client, (await join_grant(client, call, call.agent_headers))["token"])
    staff = await peer(client, (await join_grant(client, call, call.staff_headers))["token"])
    try:
        await kiosk.sock.send({"type": "connection", "state": "connected"})
        await staff.sock.send({"type": "connection", "state": "connected"})
        await staff.sock.send({"type": "media", "audio": True, "video": False})
        for side in (kiosk, staff):
            await side.sock.send({"type": "ping"})
            await side.sock.next("pong")
    finally:
        await kiosk.close()
        await staff.close()
    await _settle_after(make_client, call)
    assert (await read_appointment(db, call.appointment.id)).status == "done"
    outcome = await _outcome(db, call.appointment.id)
    assert outcome is not None
    assert (outcome.attempted, outcome.connected, outcome.kiosk_joined,
            outcome.operator_joined, outcome.audio_only, outcome.ended_by_failure) == (
        True, True, True, True, True, False)
    assert outcome.seconds_to_connect is not None
    assert outcome.seconds_to_connect >= 0
    assert outcome.duration_seconds is not None
    assert outcome.duration_seconds >= 0
    entries = await audit_trail(db, call.appointment.id)
    assert [(e.action, e.actor_kind) for e in entries][-1] == ("done", "system")


async def test_a_kiosk_that_never_joined_is_a_no_show(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(utcnow())
    call = await make_call(db, client)
    staff = await peer(client, (await join_grant(client, call, call.staff_headers))["token"])
    await staff.sock.send({"type": "ping"})
    await staff.sock.next("pong")
    await staff.close()
    await _settle_after(make_client, call)
    assert (await read_appointment(db, call.appointment.id)).status == "no_show"
    outcome = await _outcome(db, call.appointment.id)
    assert outcome is not None
    assert (outcome.attempted, outcome.connected, outcome.kiosk_joined,
            outcome.operator_joined) == (True, False, False, True)
    assert outcome.seconds_to_connect is None


async def test_a_staff_member_who_never_joined_leaves_the_outcome_to_people(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(utcnow())
    call = await make_call(db, client)
    kiosk = await peer(client, (await join_grant(client, call, call.agent_headers))["token"])
    await kiosk.sock.send({"type": "ping"})
    await kiosk.sock.next("pong")
    await kiosk.close()
    later = await _settle_after(make_client, call)
    assert (await read_appointment(db, call.appointment.id)).status == "booked"
    outcome = await _outcome(db, call.appointment.id)
    assert outcome is not None
    assert (outcome.kiosk_joined, outcome.operator_joined, outcome.connected) == (
        True, False, False)
    # The agent says what happened: the usager came, the call was held by phone.
    response = await later.post(f"/api/v1/appointments/{call.appointment.id}/outcome",
                                json={"outcome": "done", "reason": "Rappel par téléphone"},
                                headers=call.agent_headers)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["status"] == "done"
    assert response.headers["ETag"] == f'"v{body["version"]}"'
    entry = (await audit_trail(db, call.appointment.id))[-1]
    assert entry.action == "outcome_corrected"
    assert entry.detail["from"] == "booked"
    assert entry.detail["to"] == "done"
    assert "Rappel" not in str(entry.detail)


async def test_corrections_within_seven_days_by_the_agent_and_the_staff_member(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(utcnow())
    call = await make_call(db, client)
    url = f"/api/v1/appointments/{call.appointment.id}/outcome"
    early = await client.post(url, json={"outcome": "no_show", "reason": "x"},
                              headers=call.agent_headers)
    # The call began a minute ago: an outcome may be set from its start.
    assert early.status == 200
    in_time = await make_client(call.appointment.end + timedelta(days=6))
    agent_user, staff_user = await _users(db, call)
    agent = await auth_headers(in_time, agent_user)
    staff = await in_time.post(url, json={"outcome": "done", "reason": "Venu en retard"},
                               headers=await auth_headers(in_time, staff_user))
    assert staff.status == 200, await staff.text()
    stale = await in_time.post(url, json={"outcome": "no_show", "reason": "x"},
                               headers={**agent, "If-Match": '"v1"'})
    assert stale.status == 412
    empty = await in_time.post(url, json={"outcome": "no_show", "reason": "  "},
                               headers=agent)
    assert empty.status in (400, 422)
    other = await make_operator(db)
    outsider = await make_user(db, role="staff", staff=other.staff[0])
    hidden = await in_time.post(url, json={"outcome": "no_show", "reason": "x"},
                                headers=await auth_headers(in_time, outsider))
    assert hidden.status == 404
    too_late = await make_client(call.appointment.end + timedelta(days=7, minutes=1))
    late = await too_late.post(url, json={"outcome": "no_show", "reason": "x"},
                               headers=await auth_headers(too_late, agent_user))
    assert late.status == 409
    assert (await late.json())["reason"] == "too_late"
    stored = await read_appointment(db, call.appointment.id)
    assert (stored.status, stored.outcome_reason) == ("done", "Venu en retard")
    async with db.read() as session:
        actions = (await session.scalars(sa.select(m.AuditEntry.actor_kind).where(
            m.AuditEntry.appointment_id == call.appointment.id,
            m.AuditEntry.action == "outcome_corrected").order_by(m.AuditEntry.at))).all()
    assert list(actions) == ["agent", "staff"]


@pytest.mark.parametrize("outcome", ["cancelled", "booked"])
async def test_only_done_and_no_show_are_outcomes(
    db: Database, make_client: MakeClient, outcome: str
) -> None:
    client = await make_client(utcnow())
    call = await make_call(db, client)
    response = await client.post(f"/api/v1/appointments/{call.appointment.id}/outcome",
                                 json={"outcome": outcome, "reason": "x"},
                                 headers=call.agent_headers)
    assert response.status in (400, 422)
