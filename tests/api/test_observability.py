"""Operating the server: /metrics and /readyz for allowed addresses only, request ids,
booking outcomes by reason, JSON logs without personal data."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from ipaddress import ip_network

from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import DEFAULT_NOW, Client
from tests.factories import auth_headers, make_operator, make_site, make_user, usager
from visio.app import create_app
from visio.db import Database
from visio.logs import JsonFormatter, RequestIdFilter
from visio.observability import REQUEST_ID
from visio.settings import Settings


async def _client(settings: Settings) -> Client:
    client: Client = TestClient(TestServer(create_app(settings, clock=lambda: DEFAULT_NOW)))
    await client.start_server()
    return client


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and
                                                       line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_health_and_readiness_answer_from_loopback(client: Client) -> None:
    """/healthz and /readyz answer 200; readiness checked the database."""
    assert (await client.get("/healthz")).status == 200
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_readiness_checks_redis_when_set(settings: Settings, redis_url: str) -> None:
    """With VISIO_REDIS_URL, /readyz pings Redis too."""
    client = await _client(dataclasses.replace(settings, redis_url=redis_url))
    try:
        response = await client.get("/readyz")
        assert response.status == 200
        assert (await response.json())["checks"] == {"database": "ok", "redis": "ok"}
    finally:
        await client.close()


async def test_readiness_is_503_without_a_database(settings: Settings) -> None:
    """A database that does not answer makes /readyz 503 while /healthz stays 200."""
    gone = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    client = await _client(dataclasses.replace(settings, database_url=gone))
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["database"].startswith("error")
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()


async def test_metrics_and_readiness_are_refused_to_other_addresses(
    settings: Settings
) -> None:
    """Through a trusted proxy, a client outside VISIO_METRICS_ALLOWED gets 403 from
    /metrics and /readyz (not /healthz); one inside the list is served."""
    proxied = dataclasses.replace(settings, trusted_proxies=(ip_network("127.0.0.1/32"),),
                                  metrics_allowed=(ip_network("10.1.0.0/16"),))
    client = await _client(proxied)
    try:
        outside = {"X-Forwarded-For": "203.0.113.7"}
        inside = {"X-Forwarded-For": "10.1.2.3"}
        for path in ("/metrics", "/readyz"):
            assert (await client.get(path, headers=outside)).status == 403
            assert (await client.get(path)).status == 403  # loopback is not listed here
            assert (await client.get(path, headers=inside)).status == 200
        assert (await client.get("/healthz", headers=outside)).status == 200
    finally:
        await client.close()


async def test_metrics_count_requests_searches_bookings_and_refusals(
    db: Database, client: Client
) -> None:
    """Requests by route template and status, slot-search duration, bookings and refusals
    by reason, signaling and pool gauges: all in the Prometheus text."""
    site = await make_site(db, departement="59")
    op = await make_operator(db, departements=["59"])
    elsewhere = await make_operator(db, departements=["62"])
    headers = await auth_headers(client, await make_user(db, role="agent", sites=[site]))
    response = await client.get("/api/v1/slots", headers=headers, params={
        "site_id": site.id, "theme": "famille", "from": "2026-11-30T00:00:00+01:00",
        "to": "2026-12-05T00:00:00+01:00"})
    assert response.status == 200
    for service_id, expected in ((op.service.id, 201), (elsewhere.service.id, 422)):
        response = await client.post(
            "/api/v1/appointments", headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
            json={"site_id": site.id, "service_id": service_id,
                  "start": "2026-11-30T10:00:00+01:00", "usager": usager()})
        assert response.status == expected
    assert (await client.get(f"/api/v1/sites/{site.id}", headers=headers)).status == 200
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert _sample(text, "visio_http_requests_total", method="GET",
                   route="/api/v1/sites/{id}", status="200") == 1
    assert _sample(text, "visio_http_requests_total", method="POST",
                   route="/api/v1/appointments", status="422") == 1
    assert _sample(text, "visio_slot_search_duration_seconds_count") == 1
    assert _sample(text, "visio_bookings_total", operation="book") == 1
    assert _sample(text, "visio_booking_refusals_total", operation="book",
                   reason="out_of_territory") == 1
    assert _sample(text, "visio_signaling_sockets") == 0
    assert "visio_signaling_rooms" in text
    assert "visio_db_pool_checked_out" in text
    assert "visio_outbox_pending" in text
    assert "visio_outbox_lateness_seconds" in text
    assert _sample(text, "visio_outbox_retrying") == 0  # nothing failed yet
    assert site.id not in text  # route templates, never identifiers


async def test_every_answer_carries_a_request_id(client: Client) -> None:
    """Each answer has its own X-Request-Id; a well-formed one from the proxy is kept, a
    malformed one replaced."""
    first = (await client.get("/healthz")).headers["X-Request-Id"]
    second = (await client.get("/api/v1/nowhere")).headers["X-Request-Id"]
    assert first != second
    kept = await client.get("/healthz", headers={"X-Request-Id": "lb-1234abcd"})
    assert kept.headers["X-Request-Id"] == "lb-1234abcd"
    replaced = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith tab"})
    assert replaced.headers["X-Request-Id"] != "bad id\twith tab"


def test_json_log_lines_carry_the_request_id_and_no_exception_text() -> None:
    """A JSON log line has the request id; an error is named by its type, not its text."""
    token = REQUEST_ID.set("req-0001")
    try:
        try:
            raise ValueError("Jeanne Martin +33612345678")
        except ValueError:
            record = logging.getLogger("visio.test").makeRecord(
                "visio.test", logging.ERROR, __file__, 1, "booking failed", (),
                exc_info=__import__("sys").exc_info())
        RequestIdFilter().filter(record)
        line = JsonFormatter().format(record)
    finally:
        REQUEST_ID.reset(token)
    entry = json.loads(line)
    assert entry["request_id"] == "req-0001"
    assert entry["message"] == "booking failed"
    assert entry["error"] == "ValueError"
    assert "Jeanne" not in line


def test_settings_read_the_metrics_allow_list_and_log_format() -> None:
    """VISIO_METRICS_ALLOWED defaults to loopback; VISIO_LOG_FORMAT is text or json."""
    default = Settings.from_env({"VISIO_SECRET_KEY": "x" * 40})
    assert [str(n) for n in default.metrics_allowed] == ["127.0.0.0/8", "::1/128"]
    assert default.log_format == "text"
    chosen = Settings.from_env({"VISIO_SECRET_KEY": "x" * 40, "VISIO_LOG_FORMAT": "json",
                                "VISIO_METRICS_ALLOWED": "10.0.0.0/8"})
    assert chosen.log_format == "json"
    assert [str(n) for n in chosen.metrics_allowed] == ["10.0.0.0/8"]


async def test_metrics_count_calls_by_outcome_and_time_in_audio_only(
        settings: Settings) -> None:
    """Call events as the signaling host records them: each outcome once per call, the
    audio-only seconds of the pages' 10 s summaries summed (an implausible one capped)."""
    from visio.keys import metrics_key

    client = await _client(settings)
    try:
        calls = client.app[metrics_key].calls
        for appointment in ("a1", "a2"):
            calls.event(appointment, "connection_state", {"state": "connected"})
            calls.event(appointment, "connection_state", {"state": "connected"})
        calls.event("a1", "link", {"quality": "very-weak", "audio_only": True,
                                   "forced": False, "problem": None})
        calls.event("a1", "link", {"quality": "very-weak", "audio_only": True,
                                   "forced": False, "problem": "interrupted"})
        calls.event("a2", "link", {"quality": "good", "audio_only": True, "forced": True,
                                   "problem": None})
        calls.event("a3", "link", {"quality": "very-weak", "audio_only": False,
                                   "forced": False, "problem": "no_connection"})
        for seconds in (10, 2.5, 3600, -4, "x"):
            calls.event("a1", "stats", {"audio_only_s": seconds})
        text = await (await client.get("/metrics")).text()
        counts = {outcome: _sample(text, "visio_call_outcomes_total", outcome=outcome)
                  for outcome in ("connected", "audio_only", "forced_audio_only",
                                  "interrupted", "no_connection", "unusable")}
        assert counts == {"connected": 2, "audio_only": 1, "forced_audio_only": 1,
                          "interrupted": 1, "no_connection": 1, "unusable": 0}
        assert _sample(text, "visio_call_audio_only_seconds_total") == 10 + 2.5 + 30
    finally:
        await client.close()
