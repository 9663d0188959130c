"""Calls of appointments: join grants, the call log, and settling calls that took place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from signaling import CallEvent
from signaling.tokens import issue_join_token
from signaling.turn import ice_servers
from visio import models as m
from visio.db import Database
from visio.domain.messages import _
from visio.errors import NotFound, Unprocessable
from visio.services.accounts import Principal

SETTLE_WITHIN = timedelta(days=2)
TEST_CALL_LIFETIME = timedelta(minutes=10)
KIOSK = "kiosk"
OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """How join tokens and ICE servers are made (from the settings)."""

    private_key: Ed25519PrivateKey
    kid: str
    join_before: timedelta
    join_after: timedelta
    signaling_url: str
    stun_urls: Sequence[str]
    turn_urls: Sequence[str]
    turn_secrets: Sequence[str]
    turn_ttl: timedelta

    def ice_servers(self, peer_id: str, now: datetime) -> list[dict[str, Any]]:
        """STUN and TURN servers with short-lived TURN credentials for ``peer_id``."""
        return ice_servers(stun_urls=self.stun_urls, turn_urls=self.turn_urls,
                           secrets=self.turn_secrets, peer_id=peer_id,
                           ttl=int(self.turn_ttl.total_seconds()), now=now)


@dataclass(frozen=True, slots=True)
class JoinGrant:
    signaling_url: str
    token: str
    not_before: datetime
    expires_at: datetime
    role: str
    peer_id: str
    ice_servers: list[dict[str, Any]]


def _participant(principal: Principal, appointment: m.Appointment) -> tuple[str, str]:
    """The seat this caller takes in the call, or NotFound if it has none."""
    if principal.role == "agent" and appointment.site_id in principal.site_ids:
        # One seat per appointment for the kiosk, whichever agent of the site opens it.
        return KIOSK, f"kiosk-{appointment.site_id}"
    if principal.role == "staff" and (
        principal.staff_id == appointment.staff_id or principal.desk_id == appointment.desk_id
    ):
        return OPERATOR, f"staff-{principal.user_id}"
    raise NotFound(_("There is no appointment {id} you can join.", id=appointment.id))


async def grant_join(
    *, db: Database, principal: Principal, appointment_id: str, now: datetime,
    policy: CallPolicy,
) -> JoinGrant:
    """A signed join token for the caller's seat, valid around the appointment's time."""
    async with db.read() as session:
        appointment = await session.get(m.Appointment, appointment_id)
    if appointment is None:
        raise NotFound(_("There is no appointment {appointment_id} you can join.", appointment_id=appointment_id))
    role, peer_id = _participant(principal, appointment)
    if appointment.status == "cancelled":
        raise Unprocessable(_("This appointment was cancelled; there is no call to join."))
    not_before = appointment.start - policy.join_before
    expires_at = appointment.end + policy.join_after
    if now >= expires_at:
        raise Unprocessable(_("The time for this appointment's call is over."))
    token = issue_join_token(
        private_key=policy.private_key, kid=policy.kid, appointment_id=appointment.id,
        participant=peer_id, role=role, not_before=not_before, expires_at=expires_at,
    )
    return JoinGrant(signaling_url=policy.signaling_url, token=token, not_before=not_before,
                     expires_at=expires_at, role=role, peer_id=peer_id,
                     ice_servers=policy.ice_servers(peer_id, now))


def grant_test_call(*, principal: Principal, now: datetime, policy: CallPolicy) -> JoinGrant:
    """A short token for the echo peer only: check camera, microphone and network."""
    if principal.role not in ("agent", "staff"):
        raise NotFound(_("Test calls are for agents' kiosks and operator staff."))
    peer_id = f"test-{principal.user_id}"
    expires_at = now + TEST_CALL_LIFETIME
    # Its room is no appointment, so the signaling socket refuses it: echo only.
    token = issue_join_token(
        private_key=policy.private_key, kid=policy.kid, appointment_id=f"test-call-{peer_id}",
        participant=peer_id, role="test", not_before=now, expires_at=expires_at,
    )
    return JoinGrant(signaling_url=policy.signaling_url.removesuffix("/ws") + "/echo",
                     token=token, not_before=now, expires_at=expires_at, role="test",
                     peer_id=peer_id, ice_servers=policy.ice_servers(peer_id, now))


async def is_live(*, db: Database, appointment_id: str) -> bool:
    """Whether the appointment exists and is not cancelled."""
    async with db.read() as session:
        status = await session.scalar(
            sa.select(m.Appointment.status).where(m.Appointment.id == appointment_id))
    return status is not None and status != "cancelled"


async def record_event(*, db: Database, appointment_id: str, event: CallEvent) -> None:
    """Store a call event on its appointment."""
    async with db.write() as session:
        session.add(m.CallEventRow(
            appointment_id=appointment_id, at=event.at, kind=event.kind, peer_id=event.peer_id,
            role=event.role, detail=dict(event.detail)))


def _summary(events: Sequence[m.CallEventRow]) -> dict[str, bool]:
    joined = {e.role for e in events if e.kind == "join"}
    connected = {e.role for e in events
                 if e.kind == "connection_state" and e.detail.get("state") == "connected"}
    return {
        "kiosk_joined": KIOSK in joined,
        "operator_joined": OPERATOR in joined,
        "connected": {KIOSK, OPERATOR} <= connected,
    }


async def call_log(*, db: Database, principal: Principal,
                   appointment_id: str) -> dict[str, Any]:
    """The appointment's call events, in order, with a summary."""
    async with db.read() as session:
        appointment = await session.get(m.Appointment, appointment_id)
        visible = appointment is not None and (
            principal.is_admin
            or (principal.role == "agent" and appointment.site_id in principal.site_ids)
            or (principal.role == "staff" and appointment.operator_id == principal.operator_id))
        if not visible:
            raise NotFound(_("There is no appointment {appointment_id}.", appointment_id=appointment_id))
        events = (await session.scalars(sa.select(m.CallEventRow).where(
            m.CallEventRow.appointment_id == appointment_id).order_by(
            m.CallEventRow.at, m.CallEventRow.id))).all()
    return {
        "appointment_id": appointment_id,
        "summary": _summary(events),
        "items": [{"at": e.at.isoformat(), "kind": e.kind, "peer_id": e.peer_id,
                   "role": e.role, "detail": e.detail} for e in events],
        "next_cursor": None,
    }


async def settle_calls(*, db: Database, now: datetime) -> int:
    """Mark ``done`` the ended appointments whose two sides were connected."""
    async with db.write() as session:
        # Only recent ones: an older appointment nobody connected to stays as it is.
        # SKIP LOCKED lets several instances settle at once without doing it twice.
        ended = (await session.scalars(sa.select(m.Appointment).where(
            m.Appointment.status == "booked", m.Appointment.end <= now,
            m.Appointment.end > now - SETTLE_WITHIN).with_for_update(skip_locked=True))).all()
        settled = 0
        for appointment in ended:
            if await _both_connected(session, appointment.id):
                appointment.status = "done"
                appointment.version += 1
                appointment.updated_at = now
                session.add(m.AuditEntry(at=now, actor_id=None, action="done",
                                         appointment_id=appointment.id,
                                         detail={"version": appointment.version}))
                settled += 1
    return settled


async def _both_connected(session: AsyncSession, appointment_id: str) -> bool:
    events = (await session.scalars(sa.select(m.CallEventRow).where(
        m.CallEventRow.appointment_id == appointment_id,
        m.CallEventRow.kind.in_(("join", "connection_state"))))).all()
    return _summary(events)["connected"]
