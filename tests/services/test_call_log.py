"""The call log as a service: pages by (at, id), opaque cursors, the per-call budget."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from signaling import CallEvent
from tests.conftest import DEFAULT_NOW, Client
from tests.factories import auth_headers, make_appointment, make_operator, make_site, make_user
from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.errors import NotFound, Unprocessable
from visio.services import accounts, calls

START = DEFAULT_NOW - timedelta(minutes=5)
BAD_CURSOR = "The cursor is not valid; start again from the first page."


@dataclass
class Setting:
    appointment: m.Appointment
    agent: Principal
    outsider: Principal


async def _principal(db: Database, client: Client, user: m.User) -> Principal:
    token = (await auth_headers(client, user))["Authorization"].removeprefix("Bearer ")
    return await accounts.authenticate(db=db, token=token, now=DEFAULT_NOW)


@pytest.fixture
async def setting(db: Database, client: Client) -> Setting:
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    outsider = await make_user(db, role="agent", sites=[await make_site(db)])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent, start=START)
    return Setting(appointment=appointment, agent=await _principal(db, client, agent),
                   outsider=await _principal(db, client, outsider))


def _event(kind: str, at: datetime, role: str = "kiosk", **detail: object) -> CallEvent:
    return CallEvent(kind=kind, peer_id=f"{role}-1", role=role, at=at, detail=detail)


async def _record(db: Database, appointment_id: str, event: CallEvent) -> None:
    await calls.record_event(db=db, appointment_id=appointment_id, event=event)


async def test_pages_follow_time_then_id_and_the_summary_covers_every_page(
    db: Database, setting: Setting
) -> None:
    """Seven events (three at the same instant) read in pages of three, none lost or twice."""
    apt = setting.appointment.id
    same = START + timedelta(seconds=10)
    for at in (same, same, same, START + timedelta(seconds=20), START + timedelta(seconds=30)):
        await _record(db, apt, _event("stats", at, rtt_ms=5))
    await _record(db, apt, _event("join", START + timedelta(seconds=40)))
    await _record(db, apt, _event("join", START + timedelta(seconds=41), role="operator"))

    pages: list[calls.CallLog] = []
    cursor = None
    while True:
        page = await calls.call_log(db=db, principal=setting.agent, appointment_id=apt,
                                    cursor=cursor, limit=3)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p.items) for p in pages] == [3, 3, 1]
    items = [e for p in pages for e in p.items]
    assert [(e.at, e.id) for e in items] == sorted((e.at, e.id) for e in items)
    assert len({e.id for e in items}) == 7
    assert [e.kind for e in items][-2:] == ["join", "join"]
    assert items[0].detail == {"rtt_ms": 5}
    assert items[0].at.tzinfo is not None
    # The joins are on the last page, the summary says so from the first.
    expected = calls.CallSummary(kiosk_joined=True, operator_joined=True, connected=False)
    assert all(p.summary == expected for p in pages)
    assert all(p.appointment_id == apt for p in pages)


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


BAD_CURSORS = {
    "garbage": "garbage",
    "not-base64": "!!!",
    "empty": "",
    "year-9999-overflowing": _cursor(["9999-12-31T23:59:59-14:00", "x"]),
    "year-9999": _cursor(["9999-01-01T00:00:00+00:00", "x"]),
    "year-1": _cursor(["0001-01-01T00:00:00+00:00", "x"]),
    "naive": _cursor(["2026-11-23T07:00:00", "x"]),
    "nul-in-id": _cursor(["2026-11-23T07:00:00+00:00", "x\x00y"]),
    "number-id": _cursor(["2026-11-23T07:00:00+00:00", 7]),
    "one-item": _cursor(["2026-11-23T07:00:00+00:00"]),
    "object": _cursor({"at": "2026-11-23T07:00:00+00:00"}),
    "nested": _cursor([[[[[]]]]]),
    "huge": "A" * 5000,
}


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
async def test_a_bad_cursor_is_invalid_input(
    db: Database, setting: Setting, cursor: str
) -> None:
    """Garbage, far dates and forged ids are refused (422 naming the cursor), never a 500."""
    with pytest.raises(Unprocessable) as info:
        await calls.call_log(db=db, principal=setting.agent,
                             appointment_id=setting.appointment.id, cursor=cursor, limit=10)
    assert info.value.detail.english() == BAD_CURSOR
    assert info.value.extra == {"field": "cursor"}


async def test_a_cursor_before_every_event_reads_them_all(
    db: Database, setting: Setting
) -> None:
    """A valid cursor naming no stored event still pages from that point."""
    apt = setting.appointment.id
    await _record(db, apt, _event("join", START))
    cursor = calls.encode_log_cursor(START - timedelta(days=1), "0")
    page = await calls.call_log(db=db, principal=setting.agent, appointment_id=apt,
                                cursor=cursor, limit=10)
    assert [e.kind for e in page.items] == ["join"]
    assert page.next_cursor is None


async def test_limits_outside_one_to_five_hundred_are_refused(
    db: Database, setting: Setting
) -> None:
    for limit in (0, 501):
        with pytest.raises(Unprocessable):
            await calls.call_log(db=db, principal=setting.agent,
                                 appointment_id=setting.appointment.id, cursor=None,
                                 limit=limit)


async def test_an_agent_of_another_site_sees_no_call_log(
    db: Database, setting: Setting
) -> None:
    with pytest.raises(NotFound):
        await calls.call_log(db=db, principal=setting.outsider,
                             appointment_id=setting.appointment.id, cursor=None, limit=10)


async def test_the_budget_keeps_joins_and_leaves_and_says_once_that_events_were_dropped(
    db: Database, setting: Setting
) -> None:
    """Past MAX_EVENTS_PER_CALL events, stats go, joins and leaves stay, one marker tells."""
    apt = setting.appointment.id
    cap = calls.MAX_EVENTS_PER_CALL
    async with db.write() as session:  # the budget all but spent, in one go
        session.add_all(m.CallEventRow(
            appointment_id=apt, at=START + timedelta(milliseconds=i), kind="stats",
            peer_id="kiosk-1", role="kiosk", detail={}) for i in range(cap - 1))
    later = START + timedelta(minutes=1)
    await _record(db, apt, _event("stats", later))  # the last one within the budget
    for _ in range(3):
        await _record(db, apt, _event("connection_state", later, state="connected"))
    await _record(db, apt, _event("join", later, role="operator"))
    await _record(db, apt, _event("leave", later, role="operator", close_code=1000))
    async with db.read() as session:
        kinds = (await session.execute(
            sa.select(m.CallEventRow.kind, sa.func.count())
            .where(m.CallEventRow.appointment_id == apt)
            .group_by(m.CallEventRow.kind))).all()
        marker = await session.scalar(sa.select(m.CallEventRow.detail).where(
            m.CallEventRow.appointment_id == apt,
            m.CallEventRow.kind == calls.EVENTS_DROPPED))
    assert dict(kinds) == {"stats": cap, calls.EVENTS_DROPPED: 1, "join": 1, "leave": 1}
    assert marker == {"max_events": cap}


async def test_events_at_far_apart_instants_page_in_order(
    db: Database, setting: Setting
) -> None:
    """Instants in other offsets are compared as instants (stored in UTC)."""
    apt = setting.appointment.id
    paris = datetime(2026, 11, 23, 8, 0, 1, tzinfo=UTC).astimezone()
    await _record(db, apt, _event("join", paris))
    await _record(db, apt, _event("leave", paris + timedelta(seconds=1)))
    first = await calls.call_log(db=db, principal=setting.agent, appointment_id=apt,
                                 cursor=None, limit=1)
    assert first.next_cursor is not None
    second = await calls.call_log(db=db, principal=setting.agent, appointment_id=apt,
                                  cursor=first.next_cursor, limit=1)
    assert [e.kind for e in first.items + second.items] == ["join", "leave"]
