"""The signaling aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from .broker import Broker
from .echo import EchoSessions, echo
from .handlers import websocket
from .hooks import SignalingConfig, SignalingHooks
from .keys import CONFIG_KEY, HOOKS_KEY, STATE_KEY, SignalingState
from .memory_broker import InMemoryBroker
from .protocol import CloseCode
from .redis_broker import RedisBroker
from .rooms import Hub, run_sweeper


def create_broker(url: str, *, instance_id: str, prefix: str, presence_ttl: float) -> Broker:
    """Return the broker named by ``url``: "" for in-memory, ``redis://`` for Redis."""
    if not url:
        return InMemoryBroker(instance_id)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker(url, instance_id=instance_id, prefix=prefix, presence_ttl=presence_ttl)
    raise ValueError("broker_url must be empty or a redis:// URL")


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    config, state = app[CONFIG_KEY], app[STATE_KEY]
    broker = create_broker(
        config.broker_url,
        instance_id=config.instance_id,
        prefix=config.broker_prefix,
        presence_ttl=config.presence_ttl,
    )
    hub = Hub(broker, instance_id=config.instance_id)
    await broker.start(hub.deliver)
    interval = max(0.05, min(config.ping_interval, config.silence_timeout / 3))
    sweeper = asyncio.create_task(
        run_sweeper(
            hub,
            interval=interval,
            silence_timeout=config.silence_timeout,
            presence_every=config.presence_ttl / 3,
        ),
        name="signaling-sweeper",
    )
    state.tasks.add(sweeper)
    state.hub = hub
    try:
        yield
    finally:
        await hub.close_all(CloseCode.SERVICE_RESTART, "server restarting")
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        state.tasks.discard(sweeper)
        await broker.close()
        state.hub = None


async def _echo_context(app: web.Application) -> AsyncIterator[None]:
    config, state = app[CONFIG_KEY], app[STATE_KEY]
    sessions = EchoSessions(
        max_sessions=config.echo_max_sessions,
        max_duration=config.echo_max_duration,
        width=config.echo_max_width,
        height=config.echo_max_height,
        fps=config.echo_max_fps,
        stun_urls=config.echo_stun_urls,
        allow_private_candidates=config.echo_allow_private_candidates,
    )
    state.echo = sessions
    try:
        yield
    finally:
        await sessions.close()
        state.echo = None


async def _on_shutdown(app: web.Application) -> None:
    # Open WebSockets would otherwise hold graceful shutdown until its timeout.
    hub = app[STATE_KEY].hub
    if hub is not None:
        await hub.close_all(CloseCode.SERVICE_RESTART, "server restarting")


def create_signaling_app(config: SignalingConfig, hooks: SignalingHooks) -> web.Application:
    """Build the signaling app: ``/ws`` WebSocket and ``/echo`` test call."""
    app = web.Application()
    app[CONFIG_KEY] = config
    app[HOOKS_KEY] = hooks
    app[STATE_KEY] = SignalingState()
    app.cleanup_ctx.append(_hub_context)
    app.cleanup_ctx.append(_echo_context)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/echo", echo)
    return app
