"""Regression tests for the security holes of issue 16: open redirects, forwarded
addresses that fail open, headers, sessions, request bodies and fair limits. They run on
SQLite and PostgreSQL like every API test."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from tests.conftest import Client
from tests.factories import PASSWORD, make_site, make_user
from visio.db import Database

#: Values of ``next`` that a browser would turn into another site (tabs and line breaks
#: are dropped from a Location), or that name another site outright.
HOSTILE_NEXT = [
    "/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/\t/evil.example/phish",
    "/\r\n/evil.example/phish", "//evil.example", "/\\evil.example", "\\/evil.example",
    "https://evil.example/", "/ /evil.example", "/\x00/evil.example", "/\x7f/evil.example",
    "http:/evil.example", " /evil.example",
]


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def _next_field(page: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', page)
    assert found, "no next field on the login page"
    return html.unescape(found.group(1))


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_the_language_switch_never_leads_to_another_site(
    client: Client, target: str
) -> None:
    """/lang?next=/%09/evil.example (and every other spelling) goes home, not away."""
    response = await client.get(f"/lang?to=fr&next={quote(target, safe='')}",
                                allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/"


async def test_the_language_switch_still_comes_back_to_the_page(client: Client) -> None:
    """A path of this site, with its query, is kept."""
    response = await client.get(f"/lang?to=nl&next={quote('/staff/agenda?day=2026-11-30')}",
                                allow_redirects=False)
    assert response.headers["Location"] == "/staff/agenda?day=2026-11-30"


@pytest.mark.parametrize("target", HOSTILE_NEXT)
async def test_a_login_never_leads_to_another_site(
    db: Database, client: Client, target: str
) -> None:
    """The login form keeps no hostile next, and a posted one lands home after login."""
    user = await make_user(db, role="agent", sites=[await make_site(db)])
    page = await (await client.get(f"/login?next={quote(target, safe='')}")).text()
    assert _next_field(page) == "/"
    response = await client.post("/login", data={"email": user.email, "password": PASSWORD,
                                                  "csrf": _csrf(page), "next": target},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/"
