"""Operating a server: Prometheus metrics, request ids, and readiness.

``GET /metrics`` (Prometheus text) and ``GET /readyz`` answer only addresses listed in
``VISIO_METRICS_ALLOWED`` (loopback by default), read through trusted proxies like every
other client address. Labels carry route templates (``/api/v1/sites/{id}``), statuses and
reason codes, never identifiers or personal data.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from ipaddress import ip_address
from typing import Any

import redis.asyncio as aioredis
import sqlalchemy as sa
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from visio.api.addresses import client_address
from visio.errors import VisioError

#: The id of the request being handled, for log records (``visio.logs``).
REQUEST_ID: ContextVar[str] = ContextVar("visio_request_id", default="-")
REQUEST_ID_HEADER = "X-Request-Id"
# An id a proxy hands us is kept only if it cannot smuggle anything into a log line.
_GOOD_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_REQUEST_ID_KEY = web.RequestKey("visio_request_id", str)

#: Routes whose outcome is a booking (or its refusal).
_BOOKING_ROUTES = {
    ("POST", "/api/v1/appointments"): "book",
    ("POST", "/api/v1/appointments/{id}/reschedule"): "reschedule",
}
_SLOTS_ROUTE = "/api/v1/slots"
_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    """One application's metrics, in a registry of its own (several apps in one process,
    as in tests, do not share counters)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "visio_http_requests", "HTTP requests answered, by route template and status.",
            ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram(
            "visio_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and status.",
            ("method", "route", "status"), buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.slot_search = Histogram(
            "visio_slot_search_duration_seconds",
            "Time to answer a successful GET /api/v1/slots.", buckets=_LATENCY_BUCKETS,
            registry=self.registry)
        self.search_cache = Counter(
            "visio_slot_search_cache",
            "Slot-search cache lookups: hit, appointments (found again from the kept plan) "
            "or miss.", ("outcome",), registry=self.registry)
        self.bookings = Counter(
            "visio_bookings", "Appointments booked or rescheduled.", ("operation",),
            registry=self.registry)
        self.refusals = Counter(
            "visio_booking_refusals", "Bookings and reschedulings refused, by reason code.",
            ("operation", "reason"), registry=self.registry)
        self.call_outcomes = Counter(
            "visio_call_outcomes",
            "Calls by what happened to them, each counted once per call and instance: "
            "connected, audio_only (the page went audio only by itself), forced_audio_only, "
            "interrupted (inbound media stopped), no_connection (ICE failed: fallback "
            "phone), unusable (connected but unusable: fallback phone).",
            ("outcome",), registry=self.registry)
        self.audio_only_seconds = Counter(
            "visio_call_audio_only_seconds",
            "Time call pages spent in audio only, summed over the sides (from their 10 s "
            "summaries).", registry=self.registry)
        self.calls = CallOutcomes(self)
        self.in_flight = Gauge(
            "visio_http_requests_in_flight",
            "HTTP requests being handled now (a graceful stop waits for them).",
            registry=self.registry)
        self.outbox_pending = Gauge(
            "visio_outbox_pending", "Notifications waiting in the outbox (due or not).",
            registry=self.registry)
        self.outbox_due = Gauge(
            "visio_outbox_due", "Pending notifications whose time has come.",
            registry=self.registry)
        self.outbox_lateness = Gauge(
            "visio_outbox_lateness_seconds",
            "How long the oldest due notification has waited past its time (0: none).",
            registry=self.registry)
        self.outbox_retrying = Gauge(
            "visio_outbox_retrying",
            "Pending notifications that failed temporarily and wait for their next attempt "
            "(the dispatcher's backoff).", registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)
        if route == _SLOTS_ROUTE and method == "GET" and status == 200:
            self.slot_search.observe(seconds)


class _StateCollector(Collector):
    """Gauges read when scraped: signaling sockets and rooms, database pool use."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from signaling.keys import STATE_KEY
        from visio.keys import database_key, signaling_app_key

        sockets = GaugeMetricFamily("visio_signaling_sockets",
                                    "Open signaling WebSockets on this instance.")
        rooms = GaugeMetricFamily("visio_signaling_rooms",
                                  "Call rooms with a socket on this instance.")
        signaling = self.app.get(signaling_app_key)
        hub = signaling[STATE_KEY].hub if signaling is not None else None
        sockets.add_metric([], 0 if hub is None else len(hub.by_conn) + len(hub.unjoined))
        rooms.add_metric([], 0 if hub is None else len(hub.rooms))
        yield sockets
        yield rooms
        database = self.app.get(database_key)
        if database is None:
            return
        engines = {"write": database.write_engine}
        if database.read_engine is not database.write_engine:
            engines["read"] = database.read_engine
        for name, method, text in (
            ("visio_db_pool_checked_out", "checkedout", "Connections in use."),
            ("visio_db_pool_idle", "checkedin", "Idle connections in the pool."),
            ("visio_db_pool_size", "size", "Configured pool size."),
            ("visio_db_pool_overflow", "overflow", "Connections beyond the pool size."),
        ):
            gauge = GaugeMetricFamily(name, text, labels=["engine"])
            for engine_name, engine in engines.items():
                pool: Any = engine.pool
                read = getattr(pool, method, None)
                if callable(read):
                    gauge.add_metric([engine_name], float(read()))
            yield gauge


#: Calls remembered per instance to count each outcome once (the oldest are forgotten).
_CALLS_REMEMBERED = 10_000
#: A summary covers 10 s; more audio-only time than this in one is not believed.
_SUMMARY_SECONDS_MAX = 30.0


class CallOutcomes:
    """Counts call events into ``visio_call_outcomes`` and the audio-only time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._seen: OrderedDict[str, set[str]] = OrderedDict()

    def _once(self, appointment_id: str, outcome: str) -> None:
        seen = self._seen.get(appointment_id)
        if seen is None:
            seen = self._seen[appointment_id] = set()
            while len(self._seen) > _CALLS_REMEMBERED:
                self._seen.popitem(last=False)
        if outcome not in seen:
            seen.add(outcome)
            self._metrics.call_outcomes.labels(outcome).inc()

    def event(self, appointment_id: str, kind: str, detail: Mapping[str, Any]) -> None:
        """One call event (as recorded in the call log)."""
        if kind == "connection_state" and detail.get("state") == "connected":
            self._once(appointment_id, "connected")
        elif kind == "link":
            if detail.get("audio_only"):
                self._once(appointment_id,
                           "forced_audio_only" if detail.get("forced") else "audio_only")
            problem = detail.get("problem")
            if problem in ("interrupted", "no_connection", "unusable"):
                self._once(appointment_id, str(problem))
        elif kind == "stats":
            seconds = detail.get("audio_only_s")
            if isinstance(seconds, int | float) and not isinstance(seconds, bool):
                self._metrics.audio_only_seconds.inc(
                    min(max(float(seconds), 0.0), _SUMMARY_SECONDS_MAX))


def install(app: web.Application, metrics: Metrics) -> None:
    """Collect the state gauges of ``app``; add the response hook stamping request ids."""
    metrics.registry.register(_StateCollector(app))
    app.on_response_prepare.append(_stamp_request_id)


def route_of(request: web.Request) -> str:
    """The route template that matched (never the raw path, which holds identifiers)."""
    info = request.match_info
    resource = info.route.resource if info is not None and info.route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical or "unmatched"


class AccessLog(AbstractAccessLogger):
    """Access log lines naming the route template, never the path or the query.

    Paths hold secrets (calendar feed tokens ``/calendars/{name}``, usager link tokens
    ``/u/{token}``) and identifiers; queries hold more. The request id is on the line
    (``visio.logs``), to find the request's other lines.
    """

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = route_of(request) if isinstance(request, web.Request) else "unmatched"
        self.logger.info('"%s %s" %s %s %.1fms', request.method, route, response.status,
                         response.body_length, time * 1000)

    @property
    def enabled(self) -> bool:
        """Whether a line would be written at all."""
        return self.logger.isEnabledFor(logging.INFO)


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _GOOD_ID.match(given) else secrets.token_hex(8)


async def _stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(_REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


def observe_middleware(metrics: Metrics) -> Any:
    """Outermost: a request id for logs and the answer, and request counts and latency."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = _request_id(request)
        request[_REQUEST_ID_KEY] = request_id
        # Left set after the answer, so that the access log line carries it too; the next
        # request on the connection sets its own.
        REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500
        metrics.in_flight.inc()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as err:
            status = err.status
            raise
        finally:
            metrics.in_flight.dec()
            metrics.observe(request.method, route_of(request), status,
                            time.perf_counter() - started)

    return observe


def outcome_middleware(metrics: Metrics) -> Any:
    """Innermost: bookings and refusals by reason, seen before problems become answers."""

    @web.middleware
    async def outcomes(request: web.Request, handler: Handler) -> web.StreamResponse:
        operation = _BOOKING_ROUTES.get((request.method, route_of(request)))
        if operation is None:
            return await handler(request)
        try:
            response = await handler(request)
        except VisioError as err:
            reason = err.extra.get("reason")
            metrics.refusals.labels(operation, reason if isinstance(reason, str) else err.slug
                                    ).inc()
            raise
        if response.status in (200, 201):
            metrics.bookings.labels(operation).inc()
        return response

    return outcomes


# ---------------------------------------------------------------- endpoints


def allowed(request: web.Request) -> bool:
    """Whether the client's address may read /metrics and /readyz."""
    from visio.keys import settings_key

    settings = request.app[settings_key]
    try:
        address = ip_address(client_address(request, settings.trusted_proxies))
    except ValueError:
        return False
    return any(address in network for network in settings.metrics_allowed)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text exposition, for allowed addresses only."""
    from visio.keys import metrics_key

    if not allowed(request):
        raise web.HTTPForbidden(text="Metrics are not served to this address.\n")
    metrics = request.app[metrics_key]
    await _read_outbox(request.app, metrics)
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST,
                                            "Cache-Control": "no-store"})


async def _read_outbox(app: web.Application, metrics: Metrics) -> None:
    """Outbox depth and dispatch lateness, read from the database at scrape time."""
    from visio import models as m
    from visio.keys import clock_key, database_key

    now = app[clock_key]()
    outbox = m.OutboxRow
    pending = outbox.status == "pending"
    async with app[database_key].read() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(outbox)
                                     .where(pending))
        due, oldest = (await session.execute(
            sa.select(sa.func.count(), sa.func.min(outbox.due_at))
            .where(pending, outbox.due_at <= now))).one()
        retrying = await session.scalar(sa.select(sa.func.count()).select_from(outbox)
                                        .where(pending, outbox.attempts > 0))
    metrics.outbox_pending.set(count or 0)
    metrics.outbox_due.set(due or 0)
    metrics.outbox_retrying.set(retrying or 0)
    metrics.outbox_lateness.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)


READY_TIMEOUT_SECONDS = 2.0


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers (and Redis, when configured); 503 otherwise."""
    from visio.keys import database_key, settings_key

    if not allowed(request):
        raise web.HTTPForbidden(text="Readiness is not served to this address.\n")
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with request.app[database_key].read() as session:
                await session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as err:
        checks["database"] = f"error: {type(err).__name__}"
    redis_url = request.app[settings_key].redis_url
    if redis_url:
        client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=READY_TIMEOUT_SECONDS,
                                         socket_timeout=READY_TIMEOUT_SECONDS)
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                await client.ping()
            checks["redis"] = "ok"
        except Exception as err:
            checks["redis"] = f"error: {type(err).__name__}"
        finally:
            await client.aclose()
    ready = all(value == "ok" for value in checks.values())
    headers = {"Cache-Control": "no-store"}
    if not ready:
        headers["Retry-After"] = "5"
    return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                             status=200 if ready else 503, headers=headers)
