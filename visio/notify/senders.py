"""Providers: e-mail over SMTP (aiosmtplib) and SMS through an adapter (log or HTTP).

Every send answers an ``Outcome``: accepted (with the provider's reference), a temporary
failure (retried with backoff) or a permanent one (never retried). No text, address or
number reaches a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal, Protocol

import aiohttp
import aiosmtplib

from visio.notify.compose import Email

log = logging.getLogger("visio.notify")

Result = Literal["accepted", "temporary", "permanent"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a provider said."""

    result: Result
    reference: str | None = None
    error: str | None = None


def message_id(row_id: str, domain: str) -> str:
    """The Message-ID of an outbox row's e-mail: the same on every attempt."""
    return f"<outbox.{row_id}@{domain}>"


def build_email(*, row_id: str, sender: str, recipient: str, email: Email,
                language: str, domain: str) -> EmailMessage:
    """The MIME message: multipart/alternative of text, HTML and (staff) the invitation."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = email.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(row_id, domain)
    msg["X-Visio-Outbox-Id"] = row_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    if email.calendar is not None and email.method is not None:
        # iTIP inline: a text/calendar alternative with its method, as Outlook and
        # Thunderbird expect for invitations (not an attachment).
        msg.add_alternative(email.calendar.decode("utf-8"), subtype="calendar",
                            params={"method": email.method})
    # After the parts: set_content() drops the Content-* headers set before it.
    msg["Content-Language"] = language
    return msg


class Mailer:
    """One SMTP connection, reopened when it breaks; sends are serialised on it."""

    def __init__(self, *, host: str, port: int, security: str, username: str,
                 password: str, timeout: float = 30.0) -> None:
        self._host, self._port, self._security = host, port, security
        self._username, self._password, self._timeout = username, password, timeout
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self._host, port=self._port, timeout=self._timeout,
            use_tls=self._security == "tls", start_tls=self._security == "starttls",
            tls_context=ssl.create_default_context() if self._security != "none" else None)
        await client.connect()
        if self._username:
            await client.login(self._username, self._password)
        return client

    async def send(self, message: EmailMessage) -> Outcome:
        """Hand ``message`` to the SMTP server."""
        async with self._lock:
            try:
                if self._client is None or not self._client.is_connected:
                    self._client = await self._connect()
                _errors, response = await self._client.send_message(message)
            except aiosmtplib.SMTPRecipientsRefused as err:
                codes = [e.code for e in err.recipients]
                permanent = all(500 <= c < 600 for c in codes)
                return Outcome("permanent" if permanent else "temporary",
                               error=f"recipient refused ({codes})")
            except aiosmtplib.SMTPResponseException as err:
                await self._drop()
                kind: Result = "permanent" if 500 <= err.code < 600 else "temporary"
                return Outcome(kind, error=f"smtp {err.code}")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
                await self._drop()
                return Outcome("temporary", error=f"smtp unavailable ({type(err).__name__})")
            except ValueError:
                # The client refused the message's addresses, maybe mid-transaction: the
                # connection is not reused, and no retry would do better.
                await self._drop()
                return Outcome("permanent", error="unsendable address")
            except asyncio.CancelledError:
                # Cut mid-transaction (a stop past its grace): the connection is in an
                # unknown state, and a QUIT on it would wait for the cut answer.
                await self._drop()
                raise
            return Outcome("accepted", reference=response[:200])

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # A broken connection may fail to close; it is dropped either way.
            with contextlib.suppress(Exception):
                client.close()

    async def close(self) -> None:
        """Say QUIT if connected."""
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()


class SmsGateway(Protocol):
    """Sends one SMS; ``reference`` is the outbox row id (receivers may drop repeats)."""

    async def send(self, *, to: str, text: str, reference: str) -> Outcome: ...

    async def close(self) -> None: ...


class LogSms:
    """The development adapter: one log line per SMS, without its text or number."""

    async def send(self, *, to: str, text: str, reference: str) -> Outcome:
        """Log that an SMS would go."""
        log.info("sms (log adapter) outbox=%s length=%d", reference, len(text))
        return Outcome("accepted", reference=f"log-{reference}")

    async def close(self) -> None:
        """Nothing to close."""


@dataclass(frozen=True, slots=True)
class Gateway:
    """One HTTP SMS gateway."""

    url: str
    token: str


class HttpSms:
    """POST JSON ``{to, text, reference}`` with a bearer token; a second gateway on failure.

    2xx: accepted; 4xx: permanent (an invalid number); 5xx, timeouts and connection
    errors: temporary, after the fallback gateway (if any) failed the same way.
    """

    def __init__(self, gateways: list[Gateway], *, timeout: float = 10.0) -> None:
        self._gateways = gateways
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, gateway: Gateway, payload: dict[str, str]) -> Outcome:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                    gateway.url, json=payload,
                    headers={"Authorization": f"Bearer {gateway.token}"}) as response:
                body = await response.text()
                if 200 <= response.status < 300:
                    return Outcome("accepted", reference=body[:200] or None)
                if 400 <= response.status < 500:
                    return Outcome("permanent", error=f"sms gateway {response.status}")
                return Outcome("temporary", error=f"sms gateway {response.status}")
        except (aiohttp.ClientError, TimeoutError) as err:
            return Outcome("temporary", error=f"sms gateway unreachable ({type(err).__name__})")

    async def send(self, *, to: str, text: str, reference: str) -> Outcome:
        """Send through the first gateway, then the fallback on a temporary failure."""
        payload = {"to": to, "text": text, "reference": reference}
        outcome = Outcome("temporary", error="no sms gateway")
        for gateway in self._gateways:
            outcome = await self._post(gateway, payload)
            if outcome.result != "temporary":
                return outcome
        return outcome

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
