"""Problems in the caller's language: Accept-Language picks fr (default), nl or en.

Through the real application: a 401, two 404s, a 409 (the same slot booked twice) and a
422 (14 July 2026, a French public holiday) carry a ``title`` and a ``detail`` from the
catalogue of the negotiated language, and say which in ``Content-Language``. Expected
sentences are rendered with ``visio.i18n.catalogue`` so that a wording change in the
catalogue does not break these tests; the French 14 July sentence is checked word for word.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import Client
from tests.factories import auth_headers, make_operator, make_site, make_user, usager
from visio import models as m
from visio.db import Database
from visio.domain.messages import Message, Plain, _
from visio.i18n import catalogue

MakeClient = Callable[..., Awaitable[Client]]
PARIS = ZoneInfo("Europe/Paris")
# Wednesday 1 July 2026, 10:00 in Paris: 14 July (a Tuesday) is within the booking horizon.
NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
BASTILLE_DAY = "2026-07-14T09:00:00+02:00"
WEDNESDAY_9 = "2026-07-15T09:00:00+02:00"
HOLIDAY_FR = ("Le 14 juillet 2026 est un jour férié en France (Fête nationale) : "
              "le site est fermé.")

# (Accept-Language sent, language expected back); None sends no header at all.
NEGOTIATIONS = [("nl", "nl"), (None, "fr"), ("en", "en")]
# More headers, on the 401 that needs no database set-up.
HEADERS = [
    *NEGOTIATIONS,
    ("nl-BE,nl;q=0.9,fr;q=0.5", "nl"),
    ("en;q=0.5, nl;q=0.8", "nl"),
    ("en-GB,en;q=0.9", "en"),
    ("de", "fr"),
    ("fr", "fr"),
    ("*", "fr"),
]


@dataclass
class World:
    client: Client
    site: m.Site
    service: m.Service
    token: dict[str, str]

    def headers(self, accept: str | None, **more: str) -> dict[str, str]:
        sent = {**self.token, **more}
        if accept is not None:
            sent["Accept-Language"] = accept
        return sent

    async def book(self, start: str, accept: str | None) -> tuple[int, dict[str, Any], str]:
        body = {"site_id": self.site.id, "service_id": self.service.id, "start": start,
                "usager": usager()}
        response = await self.client.post(
            "/api/v1/appointments", json=body,
            headers=self.headers(accept, **{"Idempotency-Key": secrets.token_hex(8)}))
        return (response.status, await response.json(content_type=None),
                response.headers.get("Content-Language", ""))


@pytest.fixture
async def world(db: Database, make_client: MakeClient) -> World:
    client = await make_client(NOW)
    site = await make_site(db)
    op = await make_operator(db)
    agent = await make_user(db, role="agent", sites=[site])
    return World(client=client, site=site, service=op.service,
                 token=await auth_headers(client, agent))


def sent(accept: str | None) -> dict[str, str]:
    return {} if accept is None else {"Accept-Language": accept}


async def problem_of(response: Any) -> tuple[int, dict[str, Any], str]:
    assert response.content_type == "application/problem+json"
    return (response.status, await response.json(),
            response.headers.get("Content-Language", ""))


def assert_in_language(body: dict[str, Any], language: str, title: str,
                       detail: Message) -> None:
    texts = catalogue(language)
    assert body["title"] == texts.gettext(title)
    assert body["detail"] == texts.render(detail)
    if language != "en":
        # Really translated, not the English source left as it was.
        assert body["title"] != title
        assert body["detail"] != detail.english()


# ---------------------------------------------------------------- 401


@pytest.mark.parametrize(("accept", "language"), HEADERS)
async def test_401_in_the_callers_language(
    client: Client, accept: str | None, language: str
) -> None:
    status, body, content_language = await problem_of(
        await client.get("/api/v1/appointments", headers=sent(accept)))
    assert status == 401
    assert content_language == language
    assert_in_language(body, language, "Authentication required",
                       _("Log in first and send 'Authorization: Bearer <token>'."))


async def test_401_with_a_wrong_password_in_dutch(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/token", json={"email": "nobody@visio.test", "password": "x" * 12},
        headers={"Accept-Language": "nl"})
    status, body, content_language = await problem_of(response)
    assert (status, content_language) == (401, "nl")
    assert body["detail"] == "Het e-mailadres of het wachtwoord is onjuist."


# ---------------------------------------------------------------- 404


@pytest.mark.parametrize(("accept", "language"), NEGOTIATIONS)
async def test_404_in_the_callers_language(
    world: World, accept: str | None, language: str
) -> None:
    missing = "a" + secrets.token_hex(8)
    status, body, content_language = await problem_of(
        await world.client.get(f"/api/v1/appointments/{missing}",
                               headers=world.headers(accept)))
    assert status == 404
    assert content_language == language
    assert_in_language(body, language, "Not found",
                       _("There is no appointment {appointment_id}.", appointment_id=missing))


@pytest.mark.parametrize(("accept", "language"), NEGOTIATIONS)
async def test_404_of_an_unknown_address_in_the_callers_language(
    world: World, accept: str | None, language: str
) -> None:
    status, body, content_language = await problem_of(
        await world.client.get("/api/v1/nothing-here", headers=world.headers(accept)))
    assert (status, content_language) == (404, language)
    assert_in_language(body, language, "Not found", _("There is nothing at this address."))


# ---------------------------------------------------------------- 409


@pytest.mark.parametrize(("accept", "language"), NEGOTIATIONS)
async def test_409_same_slot_twice_in_the_callers_language(
    world: World, accept: str | None, language: str
) -> None:
    status, created, _language = await world.book(WEDNESDAY_9, accept)
    assert status == 201, created
    status, body, content_language = await world.book(WEDNESDAY_9, accept)
    assert status == 409, body
    assert content_language == language
    assert body["reason"] == "staff_busy"
    refusal = _("The advisor already has an appointment around {start}.",
                start=datetime(2026, 7, 15, 9, 0, tzinfo=PARIS))
    detail = _("{refusal} Here are the nearest free slots.", refusal=refusal)
    assert body["alternatives"]
    assert_in_language(body, language, "Slot no longer free", detail)


async def test_409_in_dutch_word_for_word(world: World) -> None:
    await world.book(WEDNESDAY_9, "nl")
    status, body, content_language = await world.book(WEDNESDAY_9, "nl")
    assert (status, content_language) == (409, "nl")
    assert body["title"] == "Tijdstip niet meer vrij"
    assert body["detail"] == (
        "De adviseur heeft al een afspraak rond woensdag 15 juli 2026 om 09:00. "
        "Hier zijn de dichtstbijzijnde vrije tijdstippen.")


# ---------------------------------------------------------------- 422


@pytest.mark.parametrize(("accept", "language"), NEGOTIATIONS)
async def test_422_on_14_july_in_the_callers_language(
    world: World, accept: str | None, language: str
) -> None:
    status, body, content_language = await world.book(BASTILLE_DAY, accept)
    assert status == 422, body
    assert content_language == language
    assert body["reason"] == "holiday"
    holiday = _("{day} is a public holiday in France ({holiday}): the site is closed.",
                day=datetime(2026, 7, 14, tzinfo=PARIS).date(),
                holiday=Plain("Fête nationale"))
    assert_in_language(body, language, "Not a bookable time", holiday)


async def test_14_july_word_for_word_in_french_dutch_and_english(world: World) -> None:
    _status, french, language = await world.book(BASTILLE_DAY, None)
    assert language == "fr"
    assert french["title"] == "Horaire non réservable"
    assert french["detail"] == HOLIDAY_FR
    _status, dutch, language = await world.book(BASTILLE_DAY, "nl")
    assert language == "nl"
    assert dutch["detail"] == (
        "14 juli 2026 is een feestdag in Frankrijk (Fête nationale): de site is gesloten.")
    _status, english, language = await world.book(BASTILLE_DAY, "en")
    assert language == "en"
    assert english["title"] == "Not a bookable time"
    assert english["detail"] == (
        "July 14, 2026 is a public holiday in France (Fête nationale): the site is closed.")
