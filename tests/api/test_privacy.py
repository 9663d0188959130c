"""Personal data never reaches a log, even at DEBUG, on SQLite and on PostgreSQL.

A booking goes through the real application (aiohttp's test server, which writes access
logs) with unique marker values for the usager's names, phone and e-mail and for the cancel
reason; the same markers ride along a 400, a 409 and two 422s, and a failed login uses a
marker e-mail. Then no captured log record, nor anything written to stdout or stderr,
contains any marker.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import auth_headers, make_operator, make_site, make_user, usager
from visio.db import Database
from visio.logs import configure_logging

PARIS = ZoneInfo("Europe/Paris")
QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg")


@pytest.fixture
def debug_logging(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The application's own logging set-up at DEBUG, root logger included; restored after."""
    names = ("", *QUIET_LOGGERS)
    before = {name: logging.getLogger(name).level for name in names}
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def _markers() -> dict[str, str]:
    tag = secrets.token_hex(5)
    digits = "".join(secrets.choice("0123456789") for _ in range(7))
    return {
        "first_name": f"Zoé-{tag}-prénom",
        "last_name": f"Van-{tag}-Nom",
        "phone": f"+3361{digits}",
        "email": f"usager.{tag}@example.org",
        "reason": f"Rappeler-{tag}-motif",
        "login": f"intrus.{tag}@example.org",
    }


def _variants(markers: dict[str, str]) -> set[str]:
    """Every spelling under which a marker could show up in a log line."""
    found = set()
    for value in markers.values():
        found |= {value, quote(value), quote_plus(value), value.encode("unicode_escape").decode()}
    phone = markers["phone"]
    national = phone.removeprefix("+33")
    found |= {national, "0" + national, "0" + " ".join(
        [national[0], *(national[i:i + 2] for i in range(1, 9, 2))])}
    for name in ("first_name", "last_name", "reason"):
        found.add(markers[name].split("-")[1])  # the random tag alone
    found |= {markers["email"].split("@")[0], markers["login"].split("@")[0]}
    return found


def _record_text(record: logging.LogRecord) -> str:
    formatted = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return f"{formatted}\n{vars(record)!r}"


async def test_no_personal_data_in_logs(
    db: Database, make_client: Callable[..., Awaitable[Client]], debug_logging: None,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    markers = _markers()
    person = usager(first_name=markers["first_name"], last_name=markers["last_name"],
                    phone=markers["phone"], email=markers["email"])
    site = await make_site(db)
    bundle = await make_operator(db, themes=("famille",))
    agent = await make_user(db, role="agent", sites=[site])
    client = await make_client()
    headers = await auth_headers(client, agent)

    response = await client.post("/api/v1/auth/token",
                                 json={"email": markers["login"], "password": "wrong"})
    assert response.status == 401, await response.text()

    # A slot on the Monday a week after the app's clock, from 09:00 in Paris.
    monday = (DEFAULT_NOW.astimezone(PARIS) + timedelta(days=7)).date()
    start = datetime(monday.year, monday.month, monday.day, 9, tzinfo=PARIS)
    response = await client.get("/api/v1/slots", headers=headers, params={
        "site_id": site.id, "theme": "famille", "from": start.isoformat(),
        "to": (start + timedelta(hours=9)).isoformat()})
    assert response.status == 200, await response.text()
    slots = (await response.json())["items"]
    assert slots, "no free slot on the Monday after the clock"
    slot = slots[0]

    def booking(start: str) -> dict[str, Any]:
        return {"site_id": site.id, "service_id": bundle.service.id, "start": start,
                "usager": person}

    response = await client.post("/api/v1/appointments", json=booking(slot["start"]),
                                 headers={**headers, "Idempotency-Key": "privacy-1"})
    assert response.status == 201, await response.text()
    appointment = await response.json()
    assert appointment["usager"]["last_name"] == markers["last_name"]

    # 409: the same slot again, same person.
    response = await client.post("/api/v1/appointments", json=booking(slot["start"]),
                                 headers={**headers, "Idempotency-Key": "privacy-2"})
    assert response.status == 409, await response.text()
    # 422: a time nobody works (03:00), same person.
    night = datetime(monday.year, monday.month, monday.day, 3, tzinfo=PARIS).isoformat()
    response = await client.post("/api/v1/appointments", json=booking(night),
                                 headers={**headers, "Idempotency-Key": "privacy-3"})
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    # 422: the first Idempotency-Key reused for another request, same person.
    response = await client.post("/api/v1/appointments", json=booking(night),
                                 headers={**headers, "Idempotency-Key": "privacy-1"})
    assert response.status == 422, await response.text()
    # 400: an invalid start, and a phone number that is not one, with the markers around.
    response = await client.post(
        "/api/v1/appointments", headers={**headers, "Idempotency-Key": "privacy-4"},
        json={**booking(f"{markers['last_name']}"),
              "usager": {**person, "phone": markers["first_name"]}})
    assert response.status == 400, await response.text()

    response = await client.get(f"/api/v1/appointments/{appointment['id']}", headers=headers)
    assert response.status == 200, await response.text()
    response = await client.get("/api/v1/appointments", headers=headers)
    assert response.status == 200, await response.text()

    reason = (f"{markers['reason']}: {markers['first_name']} {markers['last_name']}, "
              f"{markers['phone']}, {markers['email']}")
    response = await client.post(f"/api/v1/appointments/{appointment['id']}/cancel",
                                 json={"reason": reason}, headers=headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["cancel_reason"] == reason
    # 409: cancelling it again, with the same reason.
    response = await client.post(f"/api/v1/appointments/{appointment['id']}/cancel",
                                 json={"reason": reason}, headers=headers)
    assert response.status == 409, await response.text()

    access = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert len(access) >= 10, "aiohttp access logs were not captured: the test would prove nothing"
    logged = "\n".join(_record_text(record) for record in caplog.records)
    out, err = capfd.readouterr()
    leaks = {marker for marker in _variants(markers)
             if marker in logged or marker in out or marker in err}
    assert not leaks, f"personal data in the logs: {sorted(leaks)}\n{logged}\n{out}\n{err}"
