"""Real receivers for notification tests: an SMTP server (aiosmtpd) and an SMS gateway.

Both count what arrives, at the receiving side; tests wait on those counts with a
timeout (``wait_for``), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpSink:
    """An aiosmtpd server keeping every message it accepted."""

    port: int = field(default_factory=free_port)
    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # addresses answered with 550
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted"

    def start(self) -> None:
        """Listen (again) on ``port``."""
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        """Stop listening; clients get connection refused."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def ids(self) -> list[str]:
        """The X-Visio-Outbox-Id of every accepted message, repeats included."""
        with self._lock:
            return [str(m["X-Visio-Outbox-Id"]) for m in self.messages]

    def count(self) -> int:
        """How many messages arrived."""
        with self._lock:
            return len(self.messages)


@dataclass
class SmsSink:
    """A local HTTP SMS gateway: checks the bearer token, keeps every accepted SMS."""

    token: str = "sms-token"
    received: list[dict[str, Any]] = field(default_factory=list)
    answer: int = 202  # what it answers while up (500 to fail temporarily)
    invalid: set[str] = field(default_factory=set)  # numbers answered with 400
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorised"}, status=401)
        body = await request.json()
        if body.get("to") in self.invalid or not str(body.get("to", "")).startswith("+"):
            return web.json_response({"error": "invalid number"}, status=400)
        if self.answer >= 300:
            return web.json_response({"error": "down"}, status=self.answer)
        self.received.append(body)
        return web.Response(text=f"sms-{len(self.received)}", status=self.answer)

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.port}/sms"

    async def start(self) -> None:
        """Serve on ``port``."""
        app = web.Application()
        app.router.add_post("/sms", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def wait_for(condition: Callable[[], bool], *, within: float = 30.0,
                   step: Callable[[], Any] | None = None) -> None:
    """Wait until ``condition()`` holds (running ``step`` between checks), or fail."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        if step is not None:
            result = step()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0.02)


def duplicates(ids: list[str]) -> int:
    """How many arrivals repeat an id that already arrived."""
    return sum(n - 1 for n in Counter(ids).values())
