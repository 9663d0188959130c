"""Schemathesis over every operation of the OpenAPI document, against a real socket.

The application runs in a background thread with its own event loop (``web.AppRunner`` +
``web.TCPSite`` on 127.0.0.1:0), on a SQLite file migrated with Alembic and loaded with the
demo data, so that Schemathesis's synchronous ``requests`` calls never block pytest's loop.

Every phase of this Schemathesis version runs (examples, coverage, fuzzing, and stateful
through the document's links) with every built-in check, including "valid request
rejected" (positive data acceptance), "invalid request accepted" (negative data
rejection) and response-schema conformance, plus our own: every 4xx is
``application/problem+json`` with ``title``, ``status`` and ``detail``. The whole API is
fuzzed as the demo admin, a site agent and operator staff.

A request the document allows may still be refused for a business reason the document
cannot express (a slot just taken, a day closed, a stale If-Match): those answers are 409,
412 and 422, which the positive check accepts here. 400 always means "does not fit the
document", so a 400 to a valid request fails the run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, Response
from schemathesis.config import SchemathesisConfig

from tests.conftest import in_thread
from visio.api.openapi import openapi_document
from visio.app import create_app
from visio.clock import utcnow
from visio.migrate import upgrade
from visio.seed import DEMO_PASSWORD, FIXED_SITES, OPERATORS, TOURS, demo_id, seed_demo
from visio.settings import Settings

ADMIN = "admin@visio.test"
AGENT = "agent.hondschoote@visio.test"
PROBLEM = "application/problem+json"
LOGOUT = "/api/v1/auth/logout"

STAFF = "staff.caf59@visio.test"
ROLES = (ADMIN, AGENT, STAFF)

CONFIG = SchemathesisConfig.from_dict({
    "seed": 20261123,
    "generation": {
        "max-examples": 8,
        "deterministic": True,
        "database": "none",
        # We send a real bearer token ourselves; garbage tokens would only ever get a 401.
        "with-security-parameters": False,
    },
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": True}},
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "403", "404", "409", "412", "422", "429"]},
    },
})
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)

# Real identifiers of the demo data, mixed into generated ids so that requests get past the
# 404 and reach the handlers' real work (the seed derives its ids from names).
KNOWN: dict[str, list[str]] = {
    "site_id": [demo_id("site", commune) for commune, _, _ in FIXED_SITES]
    + [demo_id("site", area) for area in TOURS],
    "operator_id": [demo_id("operator", op.code) for op in OPERATORS],
    "desk_id": [demo_id("desk", op.code) for op in OPERATORS],
    "service_id": [demo_id("service", op.code, theme) for op in OPERATORS
                   for theme in op.themes],
    "staff_id": [demo_id("staff", op.code, n) for op in OPERATORS for n in ("1", "2")],
    "theme": sorted({theme for op in OPERATORS for theme in op.themes}),
    # Filled once the server runs: booked appointments, a real search window, free starts.
    "appointment_id": [],
    "from": [],
    "to": [],
    "start": [],
}
PATH_ID_KIND = {"sites": "site_id", "operators": "operator_id", "services": "service_id",
                "staff": "staff_id", "appointments": "appointment_id"}


def _with_known(values: Any, kinds: dict[str, str]) -> st.SearchStrategy[Any]:
    """``values`` as generated, or with some or all ids swapped for real ones."""
    if not isinstance(values, dict):
        return st.just(values)
    choices = {name: KNOWN[kind] for name, kind in kinds.items()
               if name in values and KNOWN.get(kind)}
    if not choices:
        return st.just(values)
    real = {name: st.sampled_from(ids) for name, ids in choices.items()}
    swapped = st.one_of(st.fixed_dictionaries(real), st.fixed_dictionaries({}, optional=real))
    return st.one_of(st.just(values), swapped.map(lambda new: {**values, **new}))


@schema.hook
def flatmap_case(context: Any, case: Case) -> Any:
    """Positive cases get real ids mixed in, so they reach the handlers' real work.

    Negative cases are left as generated: swapping in a real id could make them valid.
    """
    meta = case.meta
    if meta is not None and meta.generation.mode is not GenerationMode.POSITIVE:
        return st.just(case)
    resource = case.operation.path.removeprefix("/api/v1/").split("/", 1)[0]
    path_kinds = {"id": PATH_ID_KIND[resource]} if resource in PATH_ID_KIND else {}
    query_kinds = {n: n for n in KNOWN if isinstance(case.query, dict) and n in case.query}
    body_kinds = {n: n for n in KNOWN if isinstance(case.body, dict) and n in case.body}

    def rebuilt(parts: tuple[Any, Any, Any]) -> Case:
        case.path_parameters, case.query, case.body = parts
        return case

    return st.tuples(_with_known(case.path_parameters, path_kinds),
                     _with_known(case.query, query_kinds),
                     _with_known(case.body, body_kinds)).map(rebuilt)


# --------------------------------------------------------------------------- the server


class BackgroundServer:
    """The real application on a real socket, served by a loop in its own thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="visio-fuzz",
                                        daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=120)

    async def _start(self) -> str:
        await seed_demo(self._settings)
        self._runner = web.AppRunner(create_app(self._settings))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()
        self.url = self._run(self._start())

    def stop(self) -> None:
        if self._runner is not None:
            self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@dataclass
class Live:
    url: str
    session: requests.Session
    tokens: dict[str, str]

    def log_in(self, email: str) -> str:
        response = self.session.post(f"{self.url}/api/v1/auth/token",
                                     json={"email": email, "password": DEMO_PASSWORD},
                                     timeout=30)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def headers(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[email]}"}


def _fill_pools(live: Live) -> None:
    """Book a few real appointments at Hondschoote; keep ids, the window and free starts."""
    headers = live.headers(ADMIN)
    start = utcnow() + timedelta(days=2)
    window = {"from": start.isoformat(), "to": (start + timedelta(days=14)).isoformat()}
    response = live.session.get(
        f"{live.url}/api/v1/slots", headers=headers, timeout=30,
        params={"site_id": demo_id("site", "Hondschoote"), "theme": "famille", **window})
    assert response.status_code == 200, response.text
    slots = response.json()["items"]
    assert slots, "the demo has no free slot at Hondschoote in the next two weeks"
    booked = []
    for n, slot in enumerate(slots[:: max(1, len(slots) // 4)][:4]):
        body = {"site_id": demo_id("site", "Hondschoote"), "start": slot["start"],
                "service_id": slot["service_id"], "staff_id": slot["staff_id"],
                "usager": {"first_name": "Fuzz", "last_name": f"Seed{n}", "language": "fr",
                           "phone": None, "email": None, "consent": True}}
        response = live.session.post(f"{live.url}/api/v1/appointments", json=body,
                                     headers={**headers, "Idempotency-Key": f"fuzz-seed-{n}"},
                                     timeout=30)
        assert response.status_code == 201, response.text
        booked.append(response.json()["id"])
    KNOWN["appointment_id"][:] = booked
    KNOWN["from"][:], KNOWN["to"][:] = [window["from"]], [window["to"]]
    KNOWN["start"][:] = [slot["start"] for slot in slots[1::7][:6]]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "visio.db"
    url = f"sqlite+aiosqlite:///{path}"
    in_thread(lambda: upgrade(url))
    # Fuzzed logins fail by the hundred: keep the limiter out of the way of real logins.
    settings = Settings(database_url=url, secret_key="fuzz-secret-" + "x" * 32,
                        login_max_failures=1_000_000, search_rate_per_minute=1_000_000)
    server = BackgroundServer(settings)
    server.start()
    session = requests.Session()
    try:
        state = Live(url=server.url, session=session, tokens={})
        state.tokens = {email: state.log_in(email) for email in ROLES}
        _fill_pools(state)
        yield state
    finally:
        session.close()
        server.stop()


# --------------------------------------------------------------------------- the checks


def problem_details_on_4xx(ctx: Any, response: Response, case: Case) -> bool | None:
    """Every 4xx is RFC 9457 problem+json with title, status and detail."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM, (
        f"{response.status_code} with Content-Type {content_type!r}, not {PROBLEM}: "
        f"{response.text[:300]!r}")
    body = response.json()
    assert isinstance(body, dict), body
    missing = {"title", "status", "detail"} - set(body)
    assert not missing, f"problem without {sorted(missing)}: {body}"
    assert body["status"] == response.status_code, body
    for field in ("title", "detail"):
        assert isinstance(body[field], str), body
        assert body[field].strip(), body
    return None


EXTRA_CHECKS: list[Callable[..., bool | None]] = [problem_details_on_4xx]


def _headers(live: Live, case: Case, email: str) -> dict[str, str]:
    if case.operation.path == LOGOUT:
        # Logging out revokes the token: use a fresh one so later cases stay logged in.
        return {"Authorization": f"Bearer {live.log_in(email)}"}
    return live.headers(email)


def _call_and_check(live: Live, case: Case, email: str) -> None:
    headers = _headers(live, case, email)
    response = case.call(base_url=live.url, session=live.session, headers=headers,
                         timeout=30)
    # Every built-in check of this version, and ours.
    case.validate_response(response, additional_checks=EXTRA_CHECKS,
                           transport_kwargs={"headers": headers})


@pytest.mark.parametrize("email", ROLES)
@schema.parametrize()
def test_every_phase_and_check_finds_nothing(case: Case, live: Live, email: str) -> None:
    """Examples, coverage and fuzzing, every check, as admin, agent and staff: 0 failures."""
    _call_and_check(live, case, email)


@pytest.mark.parametrize("email", ROLES)
def test_stateful_links_find_nothing(live: Live, email: str) -> None:
    """The stateful phase follows the document's links (book → read, cancel, join…)."""
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": live.url, "session": live.session,
                    "headers": _headers(live, case, email), "timeout": 30}

        def validate_response(self, response: Response, case: Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            super().validate_response(response, case, additional_checks=EXTRA_CHECKS,
                                      **kwargs)

    Machine.run(settings=hypothesis_settings(max_examples=10, stateful_step_count=6, deadline=None,
                                             derandomize=True, database=None,
                                             suppress_health_check=list(HealthCheck)))
