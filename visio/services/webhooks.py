"""Webhooks to operators' software: endpoints, events written with the change, deliveries.

An administrator registers an operator's endpoints (URL, events; the signing secret is
shown once, and stored sealed with a key derived from the server's secret). ``emit``
runs inside the transaction of the change it reports: it writes one
``webhook_deliveries`` row per endpoint of the appointment's operator subscribed to the
event, with the payload as that operator's staff reads the appointment through the API
(the contract's ``Appointment``), so that an event exists exactly when its change
committed. The sender (``visio.notify.webhooks``) delivers them after commit, in order
per endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.calendars.fetch import FetchRefused, check_url
from visio.db import Database
from visio.domain.messages import _
from visio.errors import Forbidden, NotFound, Unprocessable

BOOKED = "appointment.booked"
RESCHEDULED = "appointment.rescheduled"
CANCELLED = "appointment.cancelled"
USAGER_UPDATED = "appointment.usager_updated"
OUTCOME = "appointment.outcome"
CALL_CONNECTED = "call.connected"
EVENTS = (BOOKED, RESCHEDULED, CANCELLED, USAGER_UPDATED, OUTCOME, CALL_CONNECTED)

PENDING, DELIVERED, ABANDONED = "pending", "delivered", "abandoned"
#: Why an endpoint was disabled: the receiver said 410 Gone, or a day of failures.
GONE, FAILING = "gone", "failing"
MAX_ENDPOINTS = 10


def require_admin(principal: Principal) -> None:
    """Refuse anyone but an administrator (as ``visio.services.directory`` does)."""
    if not principal.may_administer():
        raise Forbidden(_("Only an administrator can do this."))


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secrets_cipher(secret_key: str) -> Fernet:
    """The cipher that keeps endpoints' signing secrets sealed at rest (Fernet, with a key
    derived from ``VISIO_SECRET_KEY``): a copy of the database alone signs nothing."""
    derived = hmac.new(secret_key.encode(), b"visio webhook secrets", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(cipher: Fernet, secret: str) -> str:
    """A signing secret as it is stored."""
    return cipher.encrypt(secret.encode()).decode()


def unseal(cipher: Fernet, stored: str) -> str:
    """A stored signing secret as the signer needs it; one stored before sealing began
    (``whsec_`` in clear) is read as it is."""
    if stored.startswith("whsec_"):
        return stored
    return cipher.decrypt(stored.encode()).decode()


def new_message_id() -> str:
    """A ``webhook-id``: unique per event and endpoint, the same on every retry."""
    return f"msg_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint as the administrator sees it (the secret only when just created)."""

    id: str
    operator_id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    secret: str | None = None


def _endpoint(row: m.WebhookEndpoint, secret: str | None = None) -> Endpoint:
    return Endpoint(id=row.id, operator_id=row.operator_id, url=row.url,
                    events=tuple(row.events), created_at=row.created_at,
                    disabled_at=row.disabled_at, disabled_reason=row.disabled_reason,
                    failing_since=row.failing_since, secret=secret)


async def _operator(session: AsyncSession, operator_id: str) -> None:
    if await session.get(m.Operator, operator_id) is None:
        raise NotFound(_("There is no operator {operator_id}.", operator_id=operator_id))


async def register(*, db: Database, principal: Principal, operator_id: str, url: str,
                   events: Sequence[str], allow_private: bool, cipher: Fernet,
                   now: datetime) -> Endpoint:
    """Register an endpoint (admin); its address must be a public http(s) one."""
    require_admin(principal)
    chosen = sorted(set(events))
    unknown = [e for e in chosen if e not in EVENTS]
    if not chosen or unknown:
        raise Unprocessable(_("Choose the events among {value}.", value=", ".join(EVENTS)),
                            extra={"field": "events"})
    try:
        await check_url(url, allow_private=allow_private)
    except FetchRefused as err:
        raise Unprocessable(
            _("This webhook address cannot be used: it must be a public http(s) address, "
              "without a name or password in it."),
            extra={"field": "url", "reason": err.code}) from err
    async with db.write() as session:
        await _operator(session, operator_id)
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(m.WebhookEndpoint)
            .where(m.WebhookEndpoint.operator_id == operator_id,
                   m.WebhookEndpoint.deleted_at.is_(None)))
        if (count or 0) >= MAX_ENDPOINTS:
            raise Unprocessable(_("An operator may have at most {value} webhook endpoints.",
                                  value=MAX_ENDPOINTS), extra={"reason": "too_many"})
        secret = new_secret()
        row = m.WebhookEndpoint(operator_id=operator_id, url=url, events=chosen,
                                secret=seal(cipher, secret), created_at=now)
        session.add(row)
        await session.flush()
        return _endpoint(row, secret)


async def _get(session: AsyncSession, operator_id: str, endpoint_id: str) -> m.WebhookEndpoint:
    row = await session.get(m.WebhookEndpoint, endpoint_id)
    if row is None or row.operator_id != operator_id or row.deleted_at is not None:
        raise NotFound(_("There is no webhook endpoint {endpoint_id} for this operator.",
                         endpoint_id=endpoint_id))
    return row


async def list_endpoints(*, db: Database, principal: Principal,
                         operator_id: str) -> list[Endpoint]:
    """The operator's endpoints (admin), newest first; never their secrets."""
    require_admin(principal)
    async with db.read() as session:
        await _operator(session, operator_id)
        rows = (await session.scalars(
            sa.select(m.WebhookEndpoint)
            .where(m.WebhookEndpoint.operator_id == operator_id,
                   m.WebhookEndpoint.deleted_at.is_(None))
            .order_by(m.WebhookEndpoint.created_at.desc(), m.WebhookEndpoint.id))).all()
    return [_endpoint(r) for r in rows]


async def delete(*, db: Database, principal: Principal, operator_id: str, endpoint_id: str,
                 now: datetime) -> None:
    """Stop an endpoint (admin): nothing more is written or delivered to it."""
    require_admin(principal)
    async with db.write() as session:
        row = await _get(session, operator_id, endpoint_id)
        row.deleted_at = now
        await session.execute(
            sa.update(m.WebhookDelivery)
            .where(m.WebhookDelivery.endpoint_id == row.id,
                   m.WebhookDelivery.status == PENDING)
            .values(status=ABANDONED, finished_at=now, last_error="endpoint_deleted")
            .execution_options(synchronize_session=False))


async def rotate(*, db: Database, principal: Principal, operator_id: str, endpoint_id: str,
                 keep: timedelta, cipher: Fernet, now: datetime) -> Endpoint:
    """A new secret (shown once); the old one still signs deliveries for ``keep``."""
    require_admin(principal)
    async with db.write() as session:
        row = await _get(session, operator_id, endpoint_id)
        secret = new_secret()
        row.previous_secret, row.previous_until = row.secret, now + keep
        row.secret = seal(cipher, secret)
        return _endpoint(row, secret)


async def enable(*, db: Database, principal: Principal, operator_id: str, endpoint_id: str,
                 now: datetime) -> Endpoint:
    """Turn a disabled endpoint on again (admin); what waits for it is delivered."""
    require_admin(principal)
    async with db.write() as session:
        row = await _get(session, operator_id, endpoint_id)
        row.disabled_at = row.disabled_reason = row.failing_since = None
        await session.execute(
            sa.update(m.WebhookDelivery)
            .where(m.WebhookDelivery.endpoint_id == row.id,
                   m.WebhookDelivery.status == PENDING)
            .values(next_attempt_at=now).execution_options(synchronize_session=False))
        return _endpoint(row)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt in an endpoint's delivery log."""

    id: str
    event_id: str
    event_type: str
    appointment_id: str | None
    appointment_version: int
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    delivery_status: str


async def delivery_log(*, db: Database, principal: Principal, operator_id: str,
                       endpoint_id: str, limit: int = 100) -> tuple[Endpoint, list[Attempt]]:
    """The endpoint and its latest attempts, newest first (admin)."""
    require_admin(principal)
    async with db.read() as session:
        row = await _get(session, operator_id, endpoint_id)
        rows = (await session.execute(
            sa.select(m.WebhookAttempt, m.WebhookDelivery)
            .join(m.WebhookDelivery, m.WebhookDelivery.id == m.WebhookAttempt.delivery_id)
            .where(m.WebhookAttempt.endpoint_id == row.id)
            .order_by(m.WebhookAttempt.at.desc(), m.WebhookAttempt.id.desc())
            .limit(limit))).all()
    return _endpoint(row), [
        Attempt(id=a.id, event_id=d.event_id, event_type=d.event_type,
                appointment_id=d.appointment_id, appointment_version=d.appointment_version,
                at=a.at, status_code=a.status_code, latency_ms=a.latency_ms, error=a.error,
                delivery_status=d.status)
        for a, d in rows]


# --- events, written in the change's transaction ------------------------------------


def _seq(now: datetime, version: int) -> int:
    # Writing order per endpoint: microseconds, then the appointment's version (two
    # changes of one appointment in one instant still go in version order).
    return int(now.timestamp() * 1_000_000) * 1000 + min(version, 999)


def _data(appointment: m.Appointment, zone: str) -> Any:
    # The appointment exactly as the operator's staff reads it from GET
    # /api/v1/appointments/{id}. (Imported here: the views import the services.)
    from visio.api.views import appointment as view
    from visio.services.booking import Booked

    return msgspec.to_builtins(view(Booked(appointment, zone)))


async def emit(session: AsyncSession, *, appointment: m.Appointment, event_type: str,
               now: datetime, zone: str | None = None) -> int:
    """Write ``event_type`` for the appointment's operator's endpoints that take it, in
    the caller's transaction; how many deliveries were written.

    Call it after the change is applied (``appointment.version`` is the new one).
    """
    endpoints = (await session.execute(
        sa.select(m.WebhookEndpoint.id, m.WebhookEndpoint.events)
        .where(m.WebhookEndpoint.operator_id == appointment.operator_id,
               m.WebhookEndpoint.deleted_at.is_(None),
               m.WebhookEndpoint.disabled_at.is_(None)))).all()
    chosen = [endpoint_id for endpoint_id, events in endpoints if event_type in events]
    if not chosen:
        return 0
    if zone is None:
        zone = await session.scalar(sa.select(m.Site.timezone)
                                    .where(m.Site.id == appointment.site_id))
        assert zone is not None
    data = _data(appointment, zone)
    for endpoint_id in chosen:
        # After whatever this endpoint already has: a change of the appointment locked it,
        # so its earlier changes' events are committed and seen here.
        last = await session.scalar(sa.select(sa.func.max(m.WebhookDelivery.seq))
                                    .where(m.WebhookDelivery.endpoint_id == endpoint_id))
        seq = max(_seq(now, appointment.version), (last or 0) + 1)
        event_id = new_message_id()
        body = json.dumps({"id": event_id, "type": event_type,
                           "timestamp": now.isoformat().replace("+00:00", "Z"),
                           "data": data}, separators=(",", ":"), ensure_ascii=False)
        session.add(m.WebhookDelivery(
            event_id=event_id, endpoint_id=endpoint_id, event_type=event_type,
            appointment_id=appointment.id, appointment_version=appointment.version,
            seq=seq, payload=body, created_at=now,
            status=PENDING, attempts=0, next_attempt_at=now))
    await session.flush()
    return len(chosen)
