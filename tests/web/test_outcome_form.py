"""The appointment page's outcome form: held or usager absent, with a reason, in the
7 days after the appointment; the history says so."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import make_appointment, make_operator, make_site, make_user
from tests.web.test_pages import csrf_of, log_in
from visio.db import Database

MakeClient = Callable[..., Awaitable[Client]]


async def test_the_agent_marks_an_absent_usager_with_a_reason(
    db: Database, make_client: MakeClient
) -> None:
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    start = DEFAULT_NOW - timedelta(days=2)
    appointment = await make_appointment(db, site=site, op=op, start=start, booked_by=agent)
    client = await make_client()
    await log_in(client, agent)
    page = await (await client.get(f"/agent/appointments/{appointment.id}")).text()
    assert 'id="outcome"' in page
    form = {"csrf": csrf_of(page), "version": "1", "outcome": "no_show", "reason": ""}
    refused = await client.post(f"/agent/appointments/{appointment.id}/outcome", data=form)
    assert refused.status == 422
    assert "Indiquez pourquoi" in await refused.text()
    sent = await client.post(f"/agent/appointments/{appointment.id}/outcome",
                             data={**form, "reason": "Pas venue, prévenue par téléphone"},
                             allow_redirects=False)
    assert sent.status == 303
    done = await (await client.get(str(sent.headers["Location"]))).text()
    assert 'id="status">manqué' in done
    assert "Résultat corrigé" in done
    # Eight days after, the form is gone.
    later = await make_client(start + timedelta(days=8))
    await log_in(later, agent)
    page = await (await later.get(f"/agent/appointments/{appointment.id}")).text()
    assert 'id="outcome"' not in page
