"""Test support for the signaling package: keys and tokens, a fake host, services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signaling import (
    CallEvent,
    issue_join_token,
    key_id_for,
)

ORIGIN = "https://visio.test"


class FakeHost:
    """The host side of SignalingHooks: live appointments in a set, events in a list."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.events: list[tuple[str, CallEvent]] = []
        self.servers: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()

    async def is_live(self, appointment_id: str) -> bool:
        return appointment_id in self.live

    async def record(self, appointment_id: str, event: CallEvent) -> None:
        async with self._changed:
            self.events.append((appointment_id, event))
            self._changed.notify_all()

    async def ice_servers(self, peer_id: str) -> list[dict[str, Any]]:
        return list(self.servers)

    def kinds(self, appointment_id: str) -> list[str]:
        return [e.kind for a, e in self.events if a == appointment_id]

    async def wait_event(
        self, pred: Callable[[str, CallEvent], bool], within: float = 10.0
    ) -> CallEvent:
        def find() -> CallEvent | None:
            return next((e for a, e in self.events if pred(a, e)), None)

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: find() is not None)
        found = find()
        assert found is not None
        return found


class Keys:
    """A signing key and token factory."""

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.kid = key_id_for(self.private.public_key())
        self.public_keys = {self.kid: self.private.public_key()}

    def token(
        self,
        appointment_id: str,
        participant: str,
        role: str = "agent",
        *,
        not_before: datetime | None = None,
        expires_at: datetime | None = None,
        private: Ed25519PrivateKey | None = None,
        kid: str | None = None,
    ) -> str:
        now = datetime.now(UTC)
        return issue_join_token(
            private_key=private or self.private,
            kid=kid or self.kid,
            appointment_id=appointment_id,
            participant=participant,
            role=role,
            not_before=not_before or now - timedelta(minutes=1),
            expires_at=expires_at or now + timedelta(hours=1),
        )


ServerFactory = Callable[..., Awaitable[TestServer]]


def ws_url(server: TestServer) -> str:
    return str(server.make_url("/ws")).replace("http://", "ws://")
