"""The note for the operator: read by agents and staff, never sent to the usager or logged."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest

from tests.factories import auth_headers, read_appointment, usager
from tests.notify.conftest import Receivers
from tests.notify.world import MONDAY_9, World
from visio.logs import configure_logging
from visio.notify.compose import load_facts, usager_url
from visio.usager_link import LinkKey

QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg")


@pytest.fixture
def app_logging(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The application's own logging set-up at DEBUG (as in production, drivers quiet)."""
    names = ("", *QUIET_LOGGERS)
    before = {name: logging.getLogger(name).level for name in names}
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def _booking(world: World, note: str | None) -> dict[str, object]:
    body: dict[str, object] = {
        "site_id": world.site.id, "service_id": world.op.service.id,
        "start": MONDAY_9.isoformat(),
        "usager": usager(phone="+33612345678", email="jeanne@example.fr")}
    if note is not None:
        body["note"] = note
    return body


async def test_note_reaches_staff_and_agents_but_no_message_to_the_usager(
        world: World, receivers: Receivers, caplog: pytest.LogCaptureFixture,
        app_logging: None) -> None:
    """Booked with a note: the Appointment carries it; SMS, e-mails, invitations, the
    staff member's agenda feed, the usager's page and .ics, the convocation and logs do
    not."""
    marker = f"note-{secrets.token_hex(6)}"
    note = f"  Question sur la pension de réversion {marker}  "
    response = await world.client.post(
        "/api/v1/appointments", json=_booking(world, note),
        headers={**world.headers, "Idempotency-Key": secrets.token_hex(8)})
    assert response.status == 201, await response.text()
    booked = await response.json()
    assert booked["note"] == note.strip()
    assert (await read_appointment(world.db, booked["id"])).note == note.strip()

    staff_headers = await auth_headers(world.client, world.staff_user)
    for headers in (world.headers, staff_headers):
        read = await world.client.get(f"/api/v1/appointments/{booked['id']}", headers=headers)
        assert (await read.json())["note"] == note.strip()

    assert await world.dispatch_at(world.clock.now) == 3  # SMS, e-mail, staff invitation
    assert receivers.sms.received
    assert receivers.smtp.messages
    for sms in receivers.sms.received:
        assert marker not in sms["text"]
    for message in receivers.smtp.messages:
        for part in message.walk():
            if not part.is_multipart():
                assert marker not in str(part.get_content())
    invitation = await world.client.get(f"/api/v1/appointments/{booked['id']}/invite.ics",
                                        headers=staff_headers)
    assert invitation.status == 200
    assert marker not in await invitation.text()
    feed = await world.client.post("/api/v1/calendar-feeds", headers=staff_headers,
                                   json={"scope": "staff", "id": booked["staff_id"]})
    assert feed.status == 201, await feed.text()
    served = await world.client.get("/" + (await feed.json())["url"].split("/", 3)[3])
    assert served.status == 200
    assert booked["id"] in await served.text()
    assert marker not in await served.text()
    settings = world.dispatcher.settings
    facts = await load_facts(db=world.db, appointment_id=booked["id"])
    assert facts is not None
    link = usager_url(facts, key=LinkKey.from_secret(settings.secret_key),
                      base_url=settings.base_url).removeprefix(settings.base_url)
    for path in (link, f"{link}/calendar.ics"):  # the usager's page and their .ics
        answer = await world.client.get(path)
        assert answer.status == 200
        assert marker not in await answer.text()
    convocation = await world.client.get(
        f"/api/v1/appointments/{booked['id']}/convocation", headers=world.headers)
    assert convocation.status == 200
    assert marker not in await convocation.text()
    assert caplog.records
    assert not [r for r in caplog.records if marker in f"{r.getMessage()} {vars(r)!r}"]


async def test_a_note_over_1000_characters_is_refused_and_nothing_is_booked(
        world: World) -> None:
    """A 400 names the note; no appointment is written."""
    response = await world.client.post(
        "/api/v1/appointments", json=_booking(world, "x" * 1001),
        headers={**world.headers, "Idempotency-Key": secrets.token_hex(8)})
    assert response.status == 400, await response.text()
    assert "note" in (await response.json())["detail"]
    assert await world.rows() == []
    listed = await world.client.get("/api/v1/appointments", headers=world.headers)
    assert (await listed.json())["items"] == []
