"""/api/v1/operators/{id}/webhooks: an operator's endpoints and their delivery log."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, cast

from aiohttp import web

from visio.api import codec
from visio.api.context import caller
from visio.contract import bodies as api
from visio.keys import clock_key, database_key, settings_key
from visio.services import webhooks


def endpoint_view(e: webhooks.Endpoint) -> api.WebhookEndpoint:
    """An endpoint without its secret."""
    return api.WebhookEndpoint(
        id=e.id, operator_id=e.operator_id, url=e.url, events=list(e.events),
        status="disabled" if e.disabled_at is not None else "active",
        disabled_reason=e.disabled_reason, disabled_at=e.disabled_at,
        failing_since=e.failing_since, created_at=e.created_at)


def _with_secret(e: webhooks.Endpoint) -> api.WebhookSecret:
    assert e.secret is not None
    view = endpoint_view(e)
    return api.WebhookSecret(secret=e.secret, **{f: getattr(view, f)
                                                  for f in view.__struct_fields__})


async def create(request: web.Request) -> web.Response:
    """Register an endpoint (admin); its secret is in this answer only."""
    principal = await caller(request)
    data = await codec.body(request, api.WebhookCreate, required=True)
    created = await webhooks.register(
        db=request.app[database_key], principal=principal,
        operator_id=request.match_info["id"], url=data.url, events=list(data.events),
        allow_private=request.app[settings_key].webhook_allow_private,
        cipher=webhooks.secrets_cipher(request.app[settings_key].secret_key),
        now=request.app[clock_key]())
    return codec.respond(_with_secret(created), status=201)


async def list_(request: web.Request) -> web.Response:
    """The operator's endpoints (admin)."""
    principal = await caller(request)
    found = await webhooks.list_endpoints(db=request.app[database_key], principal=principal,
                                          operator_id=request.match_info["id"])
    return codec.respond(api.Page(items=[endpoint_view(e) for e in found]))


async def delete(request: web.Request) -> web.Response:
    """Remove an endpoint (admin); what was waiting for it is abandoned."""
    principal = await caller(request)
    await webhooks.delete(db=request.app[database_key], principal=principal,
                          operator_id=request.match_info["id"],
                          endpoint_id=request.match_info["webhook_id"],
                          now=request.app[clock_key]())
    return web.Response(status=204)


async def rotate(request: web.Request) -> web.Response:
    """A new secret (in this answer only); the old one keeps signing for a while."""
    principal = await caller(request)
    settings = request.app[settings_key]
    rotated = await webhooks.rotate(
        db=request.app[database_key], principal=principal,
        operator_id=request.match_info["id"], endpoint_id=request.match_info["webhook_id"],
        keep=timedelta(hours=settings.webhook_rotation_hours),
        cipher=webhooks.secrets_cipher(settings.secret_key), now=request.app[clock_key]())
    return codec.respond(_with_secret(rotated))


async def enable(request: web.Request) -> web.Response:
    """Turn a disabled endpoint on again (admin)."""
    principal = await caller(request)
    enabled = await webhooks.enable(
        db=request.app[database_key], principal=principal,
        operator_id=request.match_info["id"], endpoint_id=request.match_info["webhook_id"],
        now=request.app[clock_key]())
    return codec.respond(endpoint_view(enabled))


def log_view(endpoint: webhooks.Endpoint,
             attempts: list[webhooks.Attempt]) -> api.WebhookLog:
    """The delivery log as the API shows it."""
    Status = Literal["pending", "delivered", "abandoned"]
    return api.WebhookLog(endpoint=endpoint_view(endpoint), attempts=[
        api.WebhookAttempt(id=a.id, event_id=a.event_id, event_type=a.event_type,
                           appointment_id=a.appointment_id,
                           appointment_version=a.appointment_version, at=a.at,
                           status_code=a.status_code, latency_ms=a.latency_ms,
                           error=a.error, delivery_status=cast(Status, a.delivery_status))
        for a in attempts])


async def deliveries(request: web.Request) -> web.Response:
    """The endpoint's latest attempts: event, status code, latency (admin)."""
    principal = await caller(request)
    endpoint, attempts = await webhooks.delivery_log(
        db=request.app[database_key], principal=principal,
        operator_id=request.match_info["id"], endpoint_id=request.match_info["webhook_id"])
    return codec.respond(log_view(endpoint, attempts))
