"""`visio serve`'s application runs the dispatcher on its scheduler when VISIO_DISPATCH is on."""

from __future__ import annotations

import dataclasses
import secrets

from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import auth_headers, make_operator, make_site, make_user, usager
from tests.notify.receivers import SmtpSink, wait_for
from visio.app import create_app
from visio.db import Database
from visio.settings import Settings


async def test_the_server_sends_what_it_books(db: Database, notify_settings: Settings,
                                              smtp_sink: SmtpSink) -> None:
    """Booked through the API of an app with the dispatcher on: the e-mails arrive."""
    settings = dataclasses.replace(notify_settings, dispatch=True,
                                   dispatch_interval_seconds=0.1)
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    await make_user(db, role="staff", staff=op.staff[0])
    # Daytime at the site: usager messages are not held back by quiet hours.
    client: Client = TestClient(TestServer(create_app(settings, clock=lambda: DEFAULT_NOW)))
    await client.start_server()
    try:
        headers = await auth_headers(client, agent)
        slots = await client.get("/api/v1/slots", headers=headers, params={
            "site_id": site.id, "theme": "famille", "from": "2026-12-07T00:00:00+01:00",
            "to": "2026-12-12T00:00:00+01:00"})
        start = (await slots.json())["items"][0]["start"]
        response = await client.post(
            "/api/v1/appointments", headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
            json={"site_id": site.id, "service_id": op.service.id, "start": start,
                  "usager": usager(email="jeanne@example.fr", phone=None)})
        assert response.status == 201, await response.text()
        await wait_for(lambda: smtp_sink.count() >= 2, within=30)
    finally:
        await client.close()
    assert sorted(str(m["To"]) for m in smtp_sink.messages)[0] == "jeanne@example.fr"
