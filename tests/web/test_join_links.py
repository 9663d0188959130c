"""The join link of invitations and feeds leads a staff member to the call page."""

from __future__ import annotations

import re
from datetime import timedelta

import icalendar
from yarl import URL

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import (
    PASSWORD,
    auth_headers,
    make_appointment,
    make_operator,
    make_site,
    make_user,
)
from visio.db import Database
from visio.settings import Settings


def _path_of(link: str, settings: Settings) -> str:
    assert link.startswith(settings.base_url + "/"), link
    return link.removeprefix(settings.base_url)


async def test_invitation_and_feed_link_to_the_call_page_through_the_login(
        client: Client, db: Database, settings: Settings) -> None:
    """The URL of the invitation and of the feed is the call page; logged out, the staff
    member logs in with the form and lands on that call, not on a JSON 404."""
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=DEFAULT_NOW + timedelta(hours=3))
    headers = await auth_headers(client, staff)

    invite = await client.get(f"/api/v1/appointments/{appointment.id}/invite.ics",
                              headers=headers)
    assert invite.status == 200, await invite.text()
    [event] = icalendar.Calendar.from_ical(await invite.read()).walk("VEVENT")
    link = str(event["URL"])
    assert link in str(event["DESCRIPTION"]).replace("\n", "")

    created = await client.post("/api/v1/calendar-feeds", headers=headers,
                                json={"scope": "staff", "id": op.staff[0].id})
    assert created.status == 201, await created.text()
    feed = await client.get("/" + (await created.json())["url"].split("/", 3)[3])
    [fed] = icalendar.Calendar.from_ical(await feed.read()).walk("VEVENT")
    assert str(fed["URL"]) == link

    path = _path_of(link, settings)
    assert path == f"/call/{appointment.id}"
    # Logged out (the API token is no page session): the login, then back to the call.
    to_login = await client.get(path)
    assert to_login.status == 200
    assert to_login.url.path == "/login"
    page = await to_login.text()
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    target = re.search(r'name="next" value="([^"]+)"', page)
    assert csrf is not None
    assert target is not None
    assert target.group(1) == path
    landed = await client.post("/login", data={
        "email": staff.email, "password": PASSWORD, "csrf": csrf.group(1),
        "next": target.group(1)})
    assert landed.status == 200, await landed.text()
    assert URL(str(landed.url)).path == path
    assert landed.content_type == "text/html"
    assert appointment.id in await landed.text()
