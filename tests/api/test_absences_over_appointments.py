"""Absences and closed days over booked appointments: listed, confirmed, flagged, never
cancelled; every refusal a sentence naming the row and the day."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import (
    auth_headers,
    make_appointment,
    make_operator,
    make_site,
    make_user,
    read_appointment,
)
from visio.db import Database

# Tuesday 24 November 2026, 10:00 in Paris.
BOOKED_AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
WEEK = [{"weekday": d, "opens": "09:00", "closes": "17:00"} for d in range(5)]


async def _world(db: Database, make_client: Callable[..., Awaitable[Client]]) -> Any:
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])
    appointment = await make_appointment(db, site=site, op=op, start=BOOKED_AT, booked_by=agent)
    client = await make_client(DEFAULT_NOW)
    return client, op.staff[0].id, appointment, await auth_headers(client, staff), \
        await auth_headers(client, agent)


async def _put(client: Client, staff_id: str, headers: dict[str, str],
               **body: Any) -> Any:
    response = await client.put(f"/api/v1/staff/{staff_id}/availability",
                                headers={**headers, "Accept-Language": "fr"},
                                json={"rules": WEEK, **body})
    return response.status, await response.json()


@pytest.mark.parametrize("body", [
    {"absences": [{"start": "2026-11-24T08:00:00+01:00", "end": "2026-11-24T12:00:00+01:00"}]},
    {"overrides": [{"date": "2026-11-24", "ranges": []}]},
], ids=["absence", "closed-day"])
async def test_an_absence_over_a_booked_appointment_is_listed_and_saved_only_once_confirmed(
        db: Database, make_client: Callable[..., Awaitable[Client]],
        body: dict[str, Any]) -> None:
    """Without confirmation nothing is saved and the appointment is listed; confirmed, it
    is saved, the appointment stays booked and is flagged to rebook for the agent."""
    client, staff_id, appointment, staff, agent = await _world(db, make_client)
    status, problem = await _put(client, staff_id, staff, **body)
    assert status == 409
    assert problem["reason"] == "appointments_affected"
    assert [a["id"] for a in problem["appointments"]] == [appointment.id]
    assert problem["appointments"][0]["first_name"] == "Jeanne"
    assert "agent" in problem["detail"]
    saved = await (await client.get(f"/api/v1/staff/{staff_id}/availability",
                                    headers=staff)).json()
    assert saved["absences"] == []
    assert saved["overrides"] == []
    assert (await read_appointment(db, appointment.id)).to_rebook_since is None

    status, _saved = await _put(client, staff_id, staff, confirm=True, **body)
    assert status == 200
    row = await read_appointment(db, appointment.id)
    assert row.status == "booked"
    assert row.to_rebook_since == DEFAULT_NOW
    seen = await (await client.get(f"/api/v1/appointments/{appointment.id}",
                                   headers=agent)).json()
    assert seen["status"] == "booked"
    assert seen["to_rebook_since"] is not None

    # Saving the same absence again asks nothing more: the appointment is flagged already.
    status, _saved = await _put(client, staff_id, staff, **body)
    assert status == 200


async def test_removing_the_absence_or_moving_the_appointment_clears_the_flag(
        db: Database, make_client: Callable[..., Awaitable[Client]]) -> None:
    """The flag lasts while the absence covers the appointment and until an agent moves it."""
    client, staff_id, appointment, staff, agent = await _world(db, make_client)
    absence = {"absences": [{"start": "2026-11-24T09:30:00+01:00",
                             "end": "2026-11-24T11:00:00+01:00"}]}
    assert (await _put(client, staff_id, staff, confirm=True, **absence))[0] == 200
    assert (await read_appointment(db, appointment.id)).to_rebook_since is not None
    assert (await _put(client, staff_id, staff))[0] == 200
    assert (await read_appointment(db, appointment.id)).to_rebook_since is None

    assert (await _put(client, staff_id, staff, confirm=True, **absence))[0] == 200
    moved = await client.post(f"/api/v1/appointments/{appointment.id}/reschedule",
                              headers=agent,
                              json={"start": (BOOKED_AT + timedelta(days=1)).isoformat()})
    assert moved.status == 200, await moved.text()
    assert (await read_appointment(db, appointment.id)).to_rebook_since is None


async def test_an_absence_elsewhere_asks_nothing(
        db: Database, make_client: Callable[..., Awaitable[Client]]) -> None:
    """Back-to-back with the appointment, or on another day: saved at once."""
    client, staff_id, appointment, staff, _agent = await _world(db, make_client)
    status, _saved = await _put(client, staff_id, staff, absences=[
        {"start": "2026-11-24T10:30:00+01:00", "end": "2026-11-24T12:00:00+01:00"}],
        overrides=[{"date": "2026-11-25", "ranges": []}])
    assert status == 200
    assert (await read_appointment(db, appointment.id)).to_rebook_since is None


@pytest.mark.parametrize(("body", "sentence"), [
    ({"rules": [WEEK[0], {"weekday": 1, "opens": "14:00", "closes": "12:00"}]},
     "Ligne 2 (Mardi) : les heures doivent commencer avant de finir (14:00 n’est pas avant "
     "12:00)."),
    ({"rules": WEEK, "overrides": [{"date": "2026-12-24",
                                    "ranges": [{"opens": "12:00", "closes": "09:00"}]}]},
     "24 décembre 2026, plage 1 : les heures doivent commencer avant de finir (12:00 "
     "n’est pas avant 09:00)."),
], ids=["rule", "override"])
async def test_an_error_names_the_row_and_the_day_never_a_field_path(
        db: Database, make_client: Callable[..., Awaitable[Client]],
        body: dict[str, Any], sentence: str) -> None:
    """The sentence a person reads says where, as the editor shows it."""
    client, staff_id, _appointment, staff, _agent = await _world(db, make_client)
    response = await client.put(f"/api/v1/staff/{staff_id}/availability",
                                headers={**staff, "Accept-Language": "fr"}, json=body)
    assert response.status == 422
    problem = await response.json()
    assert problem["detail"] == sentence
    assert "[" not in problem["detail"]


async def test_the_agent_sees_to_rebook_on_today_and_the_appointment_pages(
        db: Database, make_client: Callable[..., Awaitable[Client]]) -> None:
    """Once confirmed, the agent's Today, the list and the appointment page say "to rebook"."""
    from tests.web.test_pages import log_in

    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])
    appointment = await make_appointment(db, site=site, op=op, start=BOOKED_AT, booked_by=agent)
    client = await make_client(DEFAULT_NOW)
    status, _saved = await _put(client, op.staff[0].id, await auth_headers(client, staff),
                                confirm=True,
                                overrides=[{"date": "2026-11-24", "ranges": []}])
    assert status == 200
    await log_in(client, agent)
    flag = "À déplacer : l’opérateur est absent à ce moment"
    for path in ("/agent/today?date=2026-11-24", "/agent/appointments",
                 f"/agent/appointments/{appointment.id}"):
        page = await client.get(path, headers={"Accept-Language": "fr"})
        assert page.status == 200, path
        assert flag in await page.text(), path
