"""The usager's link cancels in two steps and then says how to book again."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import make_appointment, make_operator, make_site, make_user
from visio import models as m
from visio.db import Database
from visio.i18n import catalogue
from visio.notify.compose import load_facts, usager_url
from visio.settings import Settings
from visio.usager_link import LinkKey


async def _link(db: Database, settings: Settings, appointment_id: str) -> str:
    facts = await load_facts(db=db, appointment_id=appointment_id)
    assert facts is not None
    return usager_url(facts, key=LinkKey.from_secret(settings.secret_key),
                      base_url=settings.base_url).removeprefix(settings.base_url)


@pytest.mark.parametrize("phone", ["+33328680000", None])
async def test_cancel_asks_first_then_says_how_to_book_again(
        client: Client, db: Database, settings: Settings, phone: str | None) -> None:
    """Looking at the confirmation step changes nothing; confirming cancels; the page
    then tells the usager, once, to contact their France Services desk, with the site's
    phone when it has one and no number when it has none."""
    site = await make_site(db)
    async with db.write() as session:
        row = await session.get(m.Site, site.id)
        assert row is not None
        row.phone = phone
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=DEFAULT_NOW + timedelta(days=1))
    path = await _link(db, settings, appointment.id)
    fr = catalogue("fr")

    page = await (await client.get(path)).text()
    assert f'href="{path}/cancel"' in page
    assert "<form" not in page  # one click on the link page cancels nothing
    confirm = await client.get(f"{path}/cancel")
    assert confirm.status == 200
    text = await confirm.text()
    assert fr.gettext("Do you really want to cancel this appointment?") in text
    assert f'href="{path}"' in text
    async with db.read() as session:
        untouched = await session.get(m.Appointment, appointment.id)
    assert untouched is not None
    assert untouched.status == "booked"

    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', text)
    assert csrf is not None
    done = await client.post(f"{path}/cancel", data={"csrf": csrf.group(1)})
    assert done.status == 200
    assert done.url.path == path
    after = await done.text()
    assert 'id="cancelled"' in after
    rebook = re.search(r'<p id="rebook">(.*?)</p>', after)
    assert rebook is not None
    if phone is None:
        assert rebook.group(1) == fr.gettext(
            "To book another appointment, contact your France Services desk.")
    else:
        assert rebook.group(1) == fr.gettext(
            "To book another appointment, contact your France Services desk on {phone}."
        ).format(phone="03 28 68 00 00")  # as the site's country dials it
    # Said once: the advice under the details does not repeat it in other words.
    assert after.count("Pour prendre un autre rendez-vous") == 1
    # The step is gone once cancelled: back to the page, which says it is cancelled.
    again = await client.get(f"{path}/cancel", allow_redirects=False)
    assert again.status == 303
    assert again.headers["Location"] == path


async def test_a_begun_appointment_is_not_cancelled_from_the_link(
        make_client: Callable[..., Awaitable[Client]], db: Database,
        settings: Settings) -> None:
    """Once the appointment has begun the link offers no cancel, and an old form sent
    anyway changes nothing."""
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=DEFAULT_NOW)
    client = await make_client(DEFAULT_NOW + timedelta(minutes=5))
    path = await _link(db, settings, appointment.id)
    page = await (await client.get(path)).text()
    assert f'href="{path}/cancel"' not in page
    step = await client.get(f"{path}/cancel", allow_redirects=False)
    assert step.status == 303
    token = path.removeprefix("/u/")
    sent = await client.post(f"{path}/cancel", allow_redirects=False, data={
        "csrf": LinkKey.from_secret(settings.secret_key).csrf(token)})
    assert sent.status == 303
    async with db.read() as session:
        kept = await session.get(m.Appointment, appointment.id)
    assert kept is not None
    assert kept.status == "booked"
    assert kept.cancelled_by is None
