"""Calls of appointments: join grants, the call log, and settling calls that took place."""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncSession

from signaling import Admission, CallEvent
from signaling.tokens import issue_join_token
from signaling.turn import ice_servers
from visio import models as m
from visio.access import KIOSK, OPERATOR, Principal
from visio.db import Database
from visio.domain.messages import _
from visio.errors import CallNotOpenYet, NotFound, Unprocessable
from visio.services import webhooks

log = logging.getLogger("visio.calls")

TEST_CALL_LIFETIME = timedelta(minutes=10)
#: Events stored per call; beyond, only joins and leaves (signaling already keeps one
#: connection state per change and stats every few seconds per peer).
MAX_EVENTS_PER_CALL = 500
ALWAYS_RECORDED = frozenset({"join", "leave"})
#: The event left once when a call's budget is spent.
EVENTS_DROPPED = "events_dropped"
#: Largest page of the call log.
MAX_LOG_PAGE = 500
MAX_CURSOR_CHARS = 200
#: Instants a cursor may name: call events are recorded at the time they happen.
EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT = datetime(9000, 1, 1, tzinfo=UTC)
_EVENT_ID = re.compile(r"[0-9A-Za-z-]{1,36}")


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """How join tokens and ICE servers are made (from the settings)."""

    private_key: Ed25519PrivateKey
    kid: str
    join_before: timedelta
    join_after: timedelta
    signaling_url: str
    #: The echo endpoint (test calls), an http(s) URL: it takes an HTTP POST.
    echo_url: str
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
    """A signed token and where to use it."""

    #: The signaling WebSocket (ws/wss), or for a test call the echo endpoint (http/https).
    signaling_url: str
    token: str
    not_before: datetime
    expires_at: datetime
    role: str
    peer_id: str
    ice_servers: list[dict[str, Any]]


def _participant(principal: Principal, appointment: m.Appointment) -> tuple[str, str]:
    """The seat this caller takes in the call, or NotFound if it has none."""
    seat = principal.seat(appointment)
    if seat is not None:
        return seat.role, seat.peer_id
    raise NotFound(_("There is no appointment {id} you can join.", id=appointment.id))


async def grant_join(
    *, db: Database, principal: Principal, appointment_id: str, now: datetime,
    policy: CallPolicy, refuse_early: bool = False,
) -> JoinGrant:
    """A signed join token for the caller's seat, valid around the appointment's time.

    With ``refuse_early`` (the call page, which waits and asks again), a call whose
    window has not opened is refused with the time it opens instead of a token the
    signaling host would refuse.
    """
    async with db.read() as session:
        appointment = await session.get(m.Appointment, appointment_id)
    if appointment is None:
        raise NotFound(_("There is no appointment {appointment_id} you can join.",
                         appointment_id=appointment_id))
    role, peer_id = _participant(principal, appointment)
    if appointment.status == "cancelled":
        raise Unprocessable(_("This appointment was cancelled; there is no call to join."))
    not_before = appointment.start - policy.join_before
    expires_at = appointment.end + policy.join_after
    if now >= expires_at:
        raise Unprocessable(_("The time for this appointment's call is over."))
    if refuse_early and now < not_before:
        async with db.read() as session:
            zone = (await session.execute(sa.select(m.Site.timezone).where(
                m.Site.id == appointment.site_id))).scalar_one()
        opens = not_before.astimezone(ZoneInfo(zone))
        raise CallNotOpenYet(
            _("The call can be joined from {time}; this page connects by itself then.",
              time=opens.time()),
            retry_after=max(1, math.ceil((not_before - now).total_seconds())),
            extra={"opens_at": not_before})
    # The version makes the token worthless once the appointment changes (reschedule).
    token = issue_join_token(
        private_key=policy.private_key, kid=policy.kid, appointment_id=appointment.id,
        participant=peer_id, role=role, not_before=not_before, expires_at=expires_at,
        version=appointment.version,
    )
    return JoinGrant(signaling_url=policy.signaling_url, token=token, not_before=not_before,
                     expires_at=expires_at, role=role, peer_id=peer_id,
                     ice_servers=policy.ice_servers(peer_id, now))


def grant_test_call(*, principal: Principal, now: datetime, policy: CallPolicy) -> JoinGrant:
    """A short token for the echo peer only: check camera, microphone and network."""
    if not principal.may_test_call():
        raise NotFound(_("Test calls are for agents' kiosks and operator staff."))
    peer_id = f"test-{principal.user_id}"
    expires_at = now + TEST_CALL_LIFETIME
    # Its room is no appointment, so the signaling socket refuses it: echo only.
    token = issue_join_token(
        private_key=policy.private_key, kid=policy.kid, appointment_id=f"test-call-{peer_id}",
        participant=peer_id, role="test", not_before=now, expires_at=expires_at,
    )
    return JoinGrant(signaling_url=policy.echo_url, token=token, not_before=now,
                     expires_at=expires_at, role="test", peer_id=peer_id,
                     ice_servers=policy.ice_servers(peer_id, now))


async def admission(*, db: Database, appointment_id: str, version: int | None) -> Admission:
    """Whether a join token issued at ``version`` of the appointment may enter its call."""
    async with db.read() as session:
        row = (await session.execute(
            sa.select(m.Appointment.status, m.Appointment.version).where(
                m.Appointment.id == appointment_id))).one_or_none()
    if row is None:
        return Admission.UNKNOWN
    status, current = row
    if status == "booked":
        return Admission.ADMITTED if version == current else Admission.OUTDATED
    if status == "done":
        # Settling a call (outcomes.settle) is the only change after which an appointment is
        # done, and it adds one to the version: tokens of the version before still enter
        # (a call running late), tokens of any earlier version (before a reschedule) do not.
        return (Admission.ADMITTED if version is not None and version >= current - 1
                else Admission.OUTDATED)
    return Admission.NOT_LIVE


async def record_event(*, db: Database, appointment_id: str, event: CallEvent) -> None:
    """Store a call event on its appointment, within the call's budget of events.

    Once the call holds MAX_EVENTS_PER_CALL events, only joins and leaves are still stored
    (a call's shape stays readable); the first event dropped leaves one ``events_dropped``.
    """
    async with db.write() as session:
        if event.kind not in ALWAYS_RECORDED:
            stored, marked = (await session.execute(
                sa.select(sa.func.count(),
                          sa.func.count().filter(m.CallEventRow.kind == EVENTS_DROPPED))
                .where(m.CallEventRow.appointment_id == appointment_id))).one()
            if stored >= MAX_EVENTS_PER_CALL:
                if not marked:
                    session.add(m.CallEventRow(
                        appointment_id=appointment_id, at=event.at, kind=EVENTS_DROPPED,
                        peer_id=event.peer_id, role=event.role,
                        detail={"max_events": MAX_EVENTS_PER_CALL}))
                    log.info("a call log reached %d events; further events are dropped",
                             MAX_EVENTS_PER_CALL)
                return
        connects = event.kind == "connection_state" and \
            dict(event.detail).get("state") == "connected"
        before = connects and await _both_connected(session, appointment_id)
        session.add(m.CallEventRow(
            appointment_id=appointment_id, at=event.at, kind=event.kind, peer_id=event.peer_id,
            role=event.role, detail=dict(event.detail)))
        if connects and not before:
            await session.flush()
            if await _both_connected(session, appointment_id):
                # Both sides connected for the first time: the operator's software hears it.
                appointment = await session.get(m.Appointment, appointment_id)
                if appointment is not None:
                    await webhooks.emit(session, appointment=appointment,
                                        event_type=webhooks.CALL_CONNECTED, now=event.at)


@dataclass(frozen=True, slots=True)
class CallSummary:
    """Whether each side joined, and whether both were connected at some point."""

    kiosk_joined: bool
    operator_joined: bool
    connected: bool


@dataclass(frozen=True, slots=True)
class CallEventView:
    """One event of the call log."""

    id: str
    at: datetime
    kind: str
    peer_id: str
    role: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CallLog:
    """A page of an appointment's call events, oldest first, and the summary of all."""

    appointment_id: str
    summary: CallSummary
    items: list[CallEventView]
    next_cursor: str | None


def _summary(events: Iterable[tuple[str, str, Mapping[str, Any]]]) -> CallSummary:
    """From (kind, role, detail) of the join and connection_state events."""
    joined: set[str] = set()
    connected: set[str] = set()
    for kind, role, detail in events:
        if kind == "join":
            joined.add(role)
        elif kind == "connection_state" and detail.get("state") == "connected":
            connected.add(role)
    return CallSummary(kiosk_joined=KIOSK in joined, operator_joined=OPERATOR in joined,
                       connected={KIOSK, OPERATOR} <= connected)


async def _summary_of(session: AsyncSession, appointment_id: str) -> CallSummary:
    rows = (await session.execute(
        sa.select(m.CallEventRow.kind, m.CallEventRow.role, m.CallEventRow.detail).where(
            m.CallEventRow.appointment_id == appointment_id,
            m.CallEventRow.kind.in_(("join", "connection_state"))))).all()
    return _summary(rows)


def encode_log_cursor(at: datetime, event_id: str) -> str:
    """An opaque cursor after the event (at, id)."""
    raw = json.dumps([at.astimezone(UTC).isoformat(), event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_log_cursor(cursor: str) -> tuple[datetime, str]:
    """Read a cursor made by encode_log_cursor; anything else is a 422."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at_text, event_id = json.loads(raw)
        at = datetime.fromisoformat(at_text)
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("naive")
        at = at.astimezone(UTC)  # OverflowError at the edges of the calendar
        if not (EARLIEST_EVENT <= at < LATEST_EVENT):
            raise ValueError("out of range")
        if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
            raise ValueError("bad id")
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        raise Unprocessable(_("The cursor is not valid; start again from the first page."),
                            extra={"field": "cursor"}) from err
    return at, event_id


async def call_log(*, db: Database, principal: Principal, appointment_id: str,
                   cursor: str | None = None, limit: int = 100) -> CallLog:
    """A page of the appointment's call events (after ``cursor``), with a summary of all."""
    if not 1 <= limit <= MAX_LOG_PAGE:
        raise Unprocessable(_("limit must be between 1 and {max}.", max=MAX_LOG_PAGE),
                            extra={"field": "limit"})
    after = decode_log_cursor(cursor) if cursor is not None else None
    async with db.read() as session:
        appointment = await session.get(m.Appointment, appointment_id)
        visible = appointment is not None and principal.sees(appointment)
        if not visible:
            raise NotFound(_("There is no appointment {appointment_id}.",
                             appointment_id=appointment_id))
        query = sa.select(m.CallEventRow).where(m.CallEventRow.appointment_id == appointment_id)
        if after is not None:
            at, event_id = after
            query = query.where(sa.or_(
                m.CallEventRow.at > at,
                sa.and_(m.CallEventRow.at == at, m.CallEventRow.id > event_id)))
        rows = (await session.scalars(query.order_by(
            m.CallEventRow.at, m.CallEventRow.id).limit(limit + 1))).all()
        summary = await _summary_of(session, appointment_id)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_log_cursor(rows[-1].at, rows[-1].id)
    return CallLog(
        appointment_id=appointment_id, summary=summary,
        items=[CallEventView(id=e.id, at=e.at, kind=e.kind, peer_id=e.peer_id, role=e.role,
                             detail=dict(e.detail)) for e in rows],
        next_cursor=next_cursor)


async def _both_connected(session: AsyncSession, appointment_id: str) -> bool:
    return (await _summary_of(session, appointment_id)).connected
