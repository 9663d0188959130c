"""Test support for the signaling package: keys and tokens, a fake host, services."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signaling import (
    Admission,
    CallEvent,
    issue_join_token,
    key_id_for,
)

ORIGIN = "https://visio.test"


class FakeHost:
    """The host side of SignalingHooks: appointments in sets, events in a list."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.cancelled: set[str] = set()
        #: Current version of a live appointment (1 unless set).
        self.versions: dict[str, int] = {}
        self.events: list[tuple[str, CallEvent]] = []
        self.servers: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()

    async def admits(self, appointment_id: str, version: int | None) -> Admission:
        if appointment_id in self.live:
            if version == self.versions.get(appointment_id, 1):
                return Admission.ADMITTED
            return Admission.OUTDATED
        if appointment_id in self.cancelled:
            return Admission.NOT_LIVE
        return Admission.UNKNOWN

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
        version: int | None = 1,
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
            version=version,
        )


ServerFactory = Callable[..., Awaitable[TestServer]]


def ws_url(server: TestServer) -> str:
    return str(server.make_url("/ws")).replace("http://", "ws://")


class BrowserSocket:
    """A bare RFC 6455 client writing masked frames itself, as a browser does.

    aiohttp's client cannot send some frames a browser sends (an empty close frame from
    ``WebSocket.close()`` without a code), so this one builds them by hand.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: TestServer, origin: str = ORIGIN) -> BrowserSocket:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {origin}\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        else:
            head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", n)
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send_json(self, frame: dict[str, Any]) -> None:
        self.send_frame(0x1, json.dumps(frame).encode())

    async def read_frame(self) -> tuple[int, bytes]:
        """The next server frame (servers never mask)."""
        first, second = await self.reader.readexactly(2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(n)

    async def next_json(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                opcode, payload = await self.read_frame()
                if opcode == 0x1:
                    frame: dict[str, Any] = json.loads(payload)
                    if frame["type"] == kind:
                        return frame

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
