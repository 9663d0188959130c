"""What the host application provides and receives: configuration, hooks, call events."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .problems import english_problem_text


@dataclass(frozen=True, slots=True)
class CallEvent:
    """Something that happened in a call, handed to ``SignalingHooks.record``."""

    kind: str
    peer_id: str
    role: str
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


class Admission(StrEnum):
    """The host's answer to a join: admitted, or why not."""

    ADMITTED = "admitted"
    #: No such appointment (a test-call token, a made-up room): refused, nothing recorded.
    UNKNOWN = "unknown"
    #: The appointment exists but its call cannot take place (cancelled).
    NOT_LIVE = "not_live"
    #: The token was issued for an older version of the appointment (rescheduled since).
    OUTDATED = "outdated"


class SignalingHooks(Protocol):
    """Callbacks into the host application."""

    async def admits(self, appointment_id: str, version: int | None) -> Admission:
        """Whether a token for ``version`` of the appointment (its ``ver`` claim) may join."""
        ...

    async def record(self, appointment_id: str, event: CallEvent) -> None:
        """Record a call event of the appointment."""
        ...

    async def ice_servers(self, peer_id: str) -> list[dict[str, Any]]:
        """Return RTCIceServer dicts (urls, username, credential) for this peer."""
        ...

    def problem_text(self, code: str, accept_language: str | None) -> tuple[str, str, str]:
        """Title, detail and their language for an echo problem (``ECHO_PROBLEMS`` codes).

        ``accept_language`` is the caller's ``Accept-Language`` header. Hosts that subclass
        SignalingHooks inherit this English default; a host without the method gets it too.
        """
        return english_problem_text(code)


def _instance_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class SignalingConfig:
    """Settings of one signaling instance; every timing is in seconds."""

    public_keys: Mapping[str, Ed25519PublicKey]
    allowed_origins: tuple[str, ...] = ()
    broker_url: str = ""
    max_participants: int = 4
    join_timeout: float = 5.0
    ping_interval: float = 5.0
    silence_timeout: float = 15.0
    max_frame_bytes: int = 65536
    rate_limit_per_second: int = 50
    rate_limit_burst: int = 100
    #: Stats of one peer about another are recorded at most this often.
    stats_interval: float = 5.0
    echo_max_sessions: int = 4
    echo_max_duration: float = 300.0
    echo_max_width: int = 640
    echo_max_height: int = 480
    echo_max_fps: int = 15
    echo_stun_urls: tuple[str, ...] = ()
    #: Whether the echo peer may probe loopback, private, link-local and other non-global
    #: addresses an offer names (tests and a LAN-only deployment; off: no probing of the
    #: server's own network for whoever holds a test-call token).
    echo_allow_private_candidates: bool = False
    allow_missing_origin: bool = True
    broker_prefix: str = "visio:signaling"
    presence_ttl: float = 45.0
    instance_id: str = field(default_factory=_instance_id)
