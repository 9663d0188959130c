"""The call page and its join endpoint over HTTP: the join window said in words, the
fallback number of each seat, and the note for the operator."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import Client
from tests.factories import make_appointment, make_operator, make_site, make_user
from tests.web.test_pages import csrf_of, log_in
from visio import models as m
from visio.db import Database
from visio.web import session

# Tuesday 24 November 2026, 10:00 in Paris (UTC+1): the call opens at 09:45.
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SITE_PHONE = "+33 1 99 00 00 42"
DESK_PHONE = "+33 1 99 00 00 59"
NOTE = "Où en est <b>mon</b> dossier ?\nDepuis mars."


async def _call_fixture(db: Database) -> tuple[m.User, m.User, m.Appointment]:
    """An agent, a staff member and their appointment at START, with numbers and a note."""
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])
    appointment = await make_appointment(db, site=site, op=op, start=START, booked_by=agent)
    async with db.write() as s:
        await s.execute(sa.update(m.Site).where(m.Site.id == site.id).values(phone=SITE_PHONE))
        await s.execute(sa.update(m.Desk).where(m.Desk.id == op.desk.id)
                        .values(fallback_phone=DESK_PHONE))
        await s.execute(sa.update(m.Appointment).where(m.Appointment.id == appointment.id)
                        .values(note=NOTE))
    return agent, staff, appointment


async def test_each_seat_sees_the_number_it_should_call_and_the_note(
        make_client: Callable[..., Awaitable[Client]], db: Database,
        caplog: pytest.LogCaptureFixture) -> None:
    """The kiosk is given the operator desk's number, the staff member the site's number
    (where the usager sits); both read the agent's note, escaped, and it is never logged."""
    agent, staff, appointment = await _call_fixture(db)
    caplog.set_level(logging.DEBUG)
    kiosk = await make_client(now=START - timedelta(minutes=5))
    await log_in(kiosk, agent)
    page = await (await kiosk.get(f"/call/{appointment.id}")).text()
    assert DESK_PHONE in page
    assert SITE_PHONE not in page
    assert "Question pour l&#39;opérateur" in page
    assert "Où en est &lt;b&gt;mon&lt;/b&gt; dossier ?" in page
    assert "<b>mon</b>" not in page

    operator = await make_client(now=START - timedelta(minutes=5))
    await log_in(operator, staff)
    page = await (await operator.get(f"/call/{appointment.id}")).text()
    assert SITE_PHONE in page
    assert DESK_PHONE not in page
    assert "Pour joindre l&#39;usager, appelez" in page
    assert "Où en est &lt;b&gt;mon&lt;/b&gt; dossier ?" in page
    assert "dossier" not in caplog.text


async def test_join_before_the_window_says_when_it_opens(
        make_client: Callable[..., Awaitable[Client]], db: Database) -> None:
    """Twenty minutes early the page waits, saying from when; the join endpoint refuses
    with that time and when to ask again, then grants once the window has opened."""
    agent, _staff, appointment = await _call_fixture(db)
    early = await make_client(now=START - timedelta(minutes=20))
    await log_in(early, agent)
    page = await (await early.get(f"/call/{appointment.id}")).text()
    assert 'data-call-state="early"' in page
    assert "L&#39;appel est possible à partir de 09:45" in page
    refused = await early.post(f"/web/appointments/{appointment.id}/join",
                               headers={session.CSRF_HEADER: csrf_of(page),
                                        "Accept-Language": "nl"})
    assert refused.status == 409
    problem = await refused.json()
    assert problem["type"].endswith("/call-not-open-yet")
    assert "09:45" in problem["detail"]
    assert refused.headers["Retry-After"] == "300"
    assert problem["opens_at"].startswith("2026-11-24T08:45:00")

    opened = await make_client(now=START - timedelta(minutes=14))
    await log_in(opened, agent)
    page = await (await opened.get(f"/call/{appointment.id}")).text()
    assert 'data-call-state="waiting"' in page
    granted = await opened.post(f"/web/appointments/{appointment.id}/join",
                                headers={session.CSRF_HEADER: csrf_of(page)})
    assert granted.status == 200


async def test_today_and_agenda_say_in_words_when_join_opens(
        make_client: Callable[..., Awaitable[Client]], db: Database) -> None:
    """Before the window, Join on the agent's day and the staff agenda reads
    "possible from 09:45" beside it (not a tooltip); once open, no such words."""
    agent, staff, appointment = await _call_fixture(db)
    early = await make_client(now=START - timedelta(minutes=20))
    await log_in(early, agent)
    today = await (await early.get("/agent/today?date=2026-11-24")).text()
    assert f'data-join-opens="{appointment.id}"' in today
    assert "Possible à partir de 09:45" in today
    assert f'href="/call/{appointment.id}"' in today  # the call page waits by itself
    staff_client = await make_client(now=START - timedelta(minutes=20))
    await log_in(staff_client, staff)
    agenda = await (await staff_client.get("/staff/agenda?date=2026-11-24")).text()
    assert "Possible à partir de 09:45" in agenda
    assert f'aria-describedby="opens-{appointment.id}"' in agenda

    opened = await make_client(now=START - timedelta(minutes=10))
    await log_in(opened, staff)
    agenda = await (await opened.get("/staff/agenda?date=2026-11-24")).text()
    assert "Possible à partir de" not in agenda
    assert f'data-join="{appointment.id}"' in agenda
