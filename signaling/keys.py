"""Typed application keys: every piece of signaling app state lives behind one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from .hooks import SignalingConfig, SignalingHooks

if TYPE_CHECKING:
    from .echo import EchoSessions
    from .rooms import Hub


@dataclass(slots=True)
class SignalingState:
    """Runtime state, filled in at startup and emptied at cleanup."""

    hub: Hub | None = None
    echo: EchoSessions | None = None
    tasks: set[object] = field(default_factory=set)


CONFIG_KEY = web.AppKey("signaling_config", SignalingConfig)
HOOKS_KEY: web.AppKey[SignalingHooks] = web.AppKey("signaling_hooks")
STATE_KEY = web.AppKey("signaling_state", SignalingState)
