"""Wiring the signaling package into visio: keys, hooks, mounting, periodic settling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signaling import Admission, CallEvent, SignalingConfig, close_room, create_signaling_app
from signaling.tokens import derive_private_key, key_id_for
from visio.domain.messages import N_, Message, _
from visio.i18n import catalogue, negotiate
from visio.keys import (
    call_policy_key,
    clock_key,
    database_key,
    metrics_key,
    rooms_key,
    settings_key,
    signaling_app_key,
)
from visio.services import calls, outcomes
from visio.settings import Settings

log = logging.getLogger("visio.signaling_host")
SETTLE_EVERY_SECONDS = 60


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The Ed25519 key that signs join tokens: a PEM file, or derived from the secret."""
    if settings.signing_key_path:
        key = serialization.load_pem_private_key(
            Path(settings.signing_key_path).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("VISIO_SIGNING_KEY_PATH must hold an Ed25519 private key")
        return key
    return derive_private_key(settings.secret_key or "visio-unset-secret")


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def call_policy(settings: Settings) -> calls.CallPolicy:
    """Join-token and ICE policy from the settings."""
    key = signing_key(settings)
    parts = urlsplit(settings.base_url)
    secure = parts.scheme == "https"
    return calls.CallPolicy(
        private_key=key, kid=key_id_for(key.public_key()),
        join_before=timedelta(seconds=settings.join_before_seconds),
        join_after=timedelta(seconds=settings.join_after_seconds),
        signaling_url=f"{'wss' if secure else 'ws'}://{parts.netloc}/signaling/ws",
        echo_url=f"{'https' if secure else 'http'}://{parts.netloc}/signaling/echo",
        stun_urls=settings.stun_urls, turn_urls=settings.turn_urls,
        turn_secrets=settings.turn_secrets,
        turn_ttl=timedelta(seconds=settings.turn_ttl_seconds),
    )


#: The echo endpoint's problems (codes of ``signaling.ECHO_PROBLEMS``): title, detail.
ECHO_TEXTS: dict[str, tuple[str, Message]] = {
    "not_running": (N_("Busy"),
                    _("Test calls are not available right now; try again in a minute.")),
    "bad_json": (N_("Bad request"), _("The request body is not valid JSON.")),
    "bad_body": (N_("Bad request"),
                 _('Send a JSON object holding the offer: its type "offer" and its sdp.')),
    "token_required": (N_("Authentication required"), _(
        "A test-call token is required, in the body or as 'Authorization: Bearer <token>'.")),
    "token_invalid": (N_("Authentication required"),
                      _("The test-call token is not valid; ask for a new one.")),
    "token_expired": (N_("Authentication required"),
                      _("The test-call token has expired; ask for a new one.")),
    "token_not_yet_valid": (N_("Authentication required"),
                            _("The test-call token is not valid yet; check the device's clock.")),
    "offer_too_large": (N_("Request too large"), _("The offer is too large.")),
    "busy": (N_("Busy"), _("Too many test calls are in progress; try again in a minute.")),
    "already_running": (N_("Conflict"), _(
        "A test call of yours is already running; end it before starting another.")),
    "offer_refused": (N_("Bad request"), _(
        "The offer could not be answered; check the camera and the microphone, then try again.")),
}


class SignalingHost:
    """visio's side of the signaling hooks: the database and the ICE policy."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def admits(self, appointment_id: str, version: int | None) -> Admission:
        return await calls.admission(db=self._app[database_key], appointment_id=appointment_id,
                                     version=version)

    async def record(self, appointment_id: str, event: CallEvent) -> None:
        await calls.record_event(db=self._app[database_key], appointment_id=appointment_id,
                                 event=event)
        self._app[metrics_key].calls.event(appointment_id, event.kind, event.detail)

    async def ice_servers(self, peer_id: str) -> list[dict[str, Any]]:
        return self._app[call_policy_key].ice_servers(peer_id, self._app[clock_key]())

    def problem_text(self, code: str, accept_language: str | None) -> tuple[str, str, str]:
        """An echo problem from visio's catalogue, in the caller's language."""
        language = negotiate(accept_language)
        texts = catalogue(language)
        title, detail = ECHO_TEXTS.get(code, ECHO_TEXTS["bad_body"])
        return texts.gettext(title), texts.render(detail), language


def mount_signaling(app: web.Application, settings: Settings) -> None:
    """Mount the signaling app at /signaling and settle finished calls periodically."""
    policy = call_policy(settings)
    app[call_policy_key] = policy
    config = SignalingConfig(
        public_keys={policy.kid: policy.private_key.public_key()},
        allowed_origins=(origin_of(settings.base_url), *settings.allowed_origins),
        broker_url=settings.redis_url,
        echo_max_sessions=settings.echo_max_sessions,
        echo_stun_urls=settings.stun_urls,
        echo_allow_private_candidates=settings.echo_allow_private_candidates,
    )
    signaling_app = create_signaling_app(config, SignalingHost(app))
    app[signaling_app_key] = signaling_app

    async def close_rooms(appointment_ids: Sequence[str], reason: str) -> None:
        for appointment_id in appointment_ids:
            await close_room(signaling_app, appointment_id, reason)

    app[rooms_key] = close_rooms
    app.add_subapp("/signaling", signaling_app)
    app.cleanup_ctx.append(_settling)


async def settle_now(app: web.Application) -> int:
    """Mark done or missed the appointments that ended a while ago (outcomes.settle)."""
    delay = timedelta(minutes=app[settings_key].outcome_delay_minutes)
    return await outcomes.settle(db=app[database_key], now=app[clock_key](), delay=delay)


async def _settling(app: web.Application) -> AsyncIterator[None]:
    scheduler = AsyncIOScheduler()

    async def job() -> None:
        try:
            settled = await settle_now(app)
        except Exception:
            log.exception("settling finished calls failed")
            return
        if settled:
            log.info("marked the outcome of %d appointment(s)", settled)

    scheduler.add_job(job, "interval", seconds=SETTLE_EVERY_SECONDS, coalesce=True,
                      max_instances=1)
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
