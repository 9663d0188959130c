"""The transactional outbox: messages written with the booking change, claimed to send.

Writers (``booked``, ``rescheduled``, ``cancelled``) run inside the caller's unit of work,
so a message exists exactly when the change behind it committed. A change retires the
pending rows of the appointment's older versions in that same transaction.

Claims: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets any number of dispatchers take
disjoint batches; each row gets a lease (``lease_until``, ``lease_owner``) so a dispatcher
that dies mid-send leaves its rows to be claimed again once the lease runs out. On SQLite
the claim runs in a ``BEGIN IMMEDIATE`` write transaction, which serialises claimers.
Each claim writes a fresh lease token in ``lease_owner`` (the dispatcher's name and a
random part): a fencing token. The holder renews its rows' leases while it works on them
(``renew``), checks it still holds a row just before sending it (``hold``), and marks it
only with that same token (``finish``, ``postpone``); a row whose lease was lost and
claimed again is neither sent nor marked by the old holder.
Delivery is therefore at least once: a crash after the provider accepted and before the
mark sends again, and receivers drop repeats by ``X-Visio-Outbox-Id``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain import reminders as r
from visio.domain.contact import cap_key, takes_sms
from visio.domain.kinds import Status
from visio.domain.messages import _
from visio.errors import NotFound
from visio.i18n import LANGUAGES

PENDING, SENT, FAILED, RETIRED, SKIPPED = "pending", "sent", "failed", "retired", "skipped"
#: Why a row was skipped (stable reasons the API shows).
NO_CONSENT, NOT_MOBILE = "no_consent", "not_mobile"


@dataclass(frozen=True, slots=True)
class StaffAddress:
    """Where a staff member's invitation goes, and in which language."""

    email: str
    language: str


async def staff_addresses(session: AsyncSession, staff_id: str) -> list[StaffAddress]:
    """The active staff accounts of a staff member (their e-mail is their login)."""
    rows = (await session.execute(
        sa.select(m.User.email, m.StaffMember.languages)
        .join(m.StaffMember, m.StaffMember.id == m.User.staff_id)
        .where(m.User.staff_id == staff_id, m.User.active.is_(True))
        .order_by(m.User.email))).all()
    addresses = []
    for email, languages in rows:
        language = next((x for x in (languages or []) if x in LANGUAGES), "fr")
        addresses.append(StaffAddress(email, language))
    return addresses


async def _zone(session: AsyncSession, appointment: m.Appointment) -> str:
    zone = await session.scalar(sa.select(m.Site.timezone)
                                .where(m.Site.id == appointment.site_id))
    assert zone is not None
    return zone


def _recipient(appointment: m.Appointment, planned: r.Planned) -> str | None:
    if planned.channel == r.Channel.SMS:
        return appointment.usager_phone
    return appointment.usager_email


async def _write(session: AsyncSession, appointment: m.Appointment,
                 planned: list[r.Planned], now: datetime) -> None:
    staff = await staff_addresses(session, appointment.staff_id)
    for item in planned:
        targets: list[tuple[str, str]]
        if item.audience == r.Audience.STAFF:
            targets = [(s.email, s.language) for s in staff]
        else:
            recipient = _recipient(appointment, item)
            targets = [(recipient, appointment.usager_language)] if recipient else []
        # Without the usager's consent nothing goes to them; the rows say so, so that the
        # agent sees why (and staff messages still go).
        silent = item.audience == r.Audience.USAGER and not appointment.usager_consent
        for recipient, language in targets:
            session.add(m.OutboxRow(
                appointment_id=appointment.id, appointment_version=appointment.version,
                kind=item.kind.value, channel=item.channel.value,
                audience=item.audience.value, recipient=recipient, language=language,
                due_at=item.due, status=SKIPPED if silent else PENDING, attempts=0,
                created_at=now, last_error=NO_CONSENT if silent else None,
                finished_at=now if silent else None))
    await session.flush()


async def retire_older(session: AsyncSession, appointment: m.Appointment,
                       now: datetime) -> int:
    """Retire the pending rows of the appointment's earlier versions; how many."""
    result = await session.execute(
        sa.update(m.OutboxRow)
        .where(m.OutboxRow.appointment_id == appointment.id,
               m.OutboxRow.status == PENDING,
               m.OutboxRow.appointment_version < appointment.version)
        .values(status=RETIRED, last_error="appointment_changed", finished_at=now,
                lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _flags(appointment: m.Appointment) -> dict[str, bool]:
    # A landline is kept to call the usager, but gets no SMS.
    return {"phone": takes_sms(appointment.usager_phone),
            "email": bool(appointment.usager_email)}


async def booked(session: AsyncSession, appointment: m.Appointment, *, zone: str,
                 now: datetime) -> None:
    """Enqueue a new booking's confirmation, reminders and staff invitation."""
    planned = r.plan_booked(now=now, start=appointment.start, zone=zone, staff=True,
                            **_flags(appointment))
    await _write(session, appointment, planned, now)


async def rescheduled(session: AsyncSession, appointment: m.Appointment, *,
                      now: datetime) -> None:
    """Retire the old version's rows; enqueue the notice, new reminders and invitation."""
    await retire_older(session, appointment, now)
    planned = r.plan_rescheduled(now=now, start=appointment.start,
                                 zone=await _zone(session, appointment), staff=True,
                                 **_flags(appointment))
    await _write(session, appointment, planned, now)


async def cancelled(session: AsyncSession, appointment: m.Appointment, *,
                    now: datetime) -> None:
    """Retire every pending row; enqueue the cancellation notice and the staff CANCEL."""
    await retire_older(session, appointment, now)
    planned = r.plan_cancelled(now=now, start=appointment.start,
                               zone=await _zone(session, appointment), staff=True,
                               **_flags(appointment))
    await _write(session, appointment, planned, now)


async def corrected(session: AsyncSession, appointment: m.Appointment, *, old_version: int,
                    old_phone: str | None, old_email: str | None, now: datetime) -> None:
    """After the usager's details changed (one version up): what was planned still goes,
    except to an address that is no longer theirs; a new address gets the confirmation
    again, and the reminders still to come.
    """
    gone: list[tuple[str, str]] = []
    if old_phone and old_phone != appointment.usager_phone:
        gone.append((r.Channel.SMS.value, old_phone))
    if old_email and old_email != appointment.usager_email:
        gone.append((r.Channel.EMAIL.value, old_email))
    for channel, recipient in gone:
        await session.execute(
            sa.update(m.OutboxRow)
            .where(m.OutboxRow.appointment_id == appointment.id,
                   m.OutboxRow.status == PENDING, m.OutboxRow.audience == "usager",
                   m.OutboxRow.channel == channel, m.OutboxRow.recipient == recipient)
            .values(status=RETIRED, last_error="address_changed", finished_at=now,
                    lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False))
    # The rest carries over to the new version (the dispatcher retires stale versions).
    await session.execute(
        sa.update(m.OutboxRow)
        .where(m.OutboxRow.appointment_id == appointment.id, m.OutboxRow.status == PENDING,
               m.OutboxRow.appointment_version == old_version)
        .values(appointment_version=appointment.version)
        .execution_options(synchronize_session=False))
    await session.execute(
        sa.update(m.OutboxRow)
        .where(m.OutboxRow.appointment_id == appointment.id, m.OutboxRow.status == PENDING,
               m.OutboxRow.audience == "usager")
        .values(language=appointment.usager_language)
        .execution_options(synchronize_session=False))
    new_phone = bool(appointment.usager_phone) and appointment.usager_phone != old_phone
    new_email = bool(appointment.usager_email) and appointment.usager_email != old_email
    if not (new_phone or new_email) or now >= appointment.start:
        return
    planned = r.plan_booked(now=now, start=appointment.start,
                            zone=await _zone(session, appointment), staff=False,
                            phone=new_phone, email=new_email)
    await _write(session, appointment, planned, now)


# --- the dispatcher's side -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed row: what to send, to whom, and the appointment's state at claim time."""

    id: str
    appointment_id: str
    appointment_version: int
    kind: str
    channel: str
    audience: str
    recipient: str
    language: str
    due_at: datetime
    attempts: int
    lease: str  # the claim's fencing token, as written in lease_owner


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(m.OutboxRow.status == PENDING, m.OutboxRow.due_at <= now,
                   sa.or_(m.OutboxRow.lease_until.is_(None), m.OutboxRow.lease_until <= now))


async def claim(*, db: Database, owner: str, now: datetime, lease: timedelta,
                limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due rows to ``owner``, oldest due first, under a new token."""
    token = f"{owner}:{secrets.token_hex(6)}"
    async with db.write() as session:
        pick = (sa.select(m.OutboxRow.id).where(_claimable(now))
                .order_by(m.OutboxRow.due_at).limit(limit))
        if db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        ids = list((await session.scalars(pick)).all())
        if not ids:
            return []
        rows = (await session.scalars(
            sa.update(m.OutboxRow).where(m.OutboxRow.id.in_(ids))
            .values(lease_owner=token, lease_until=now + lease,
                    attempts=m.OutboxRow.attempts + 1)
            .returning(m.OutboxRow)
            .execution_options(synchronize_session=False))).all()
        return sorted((Claimed(
            id=x.id, appointment_id=x.appointment_id,
            appointment_version=x.appointment_version, kind=x.kind, channel=x.channel,
            audience=x.audience, recipient=x.recipient, language=x.language,
            due_at=x.due_at, attempts=x.attempts, lease=token) for x in rows),
            key=lambda c: c.due_at)


def _held(lease: str, now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(m.OutboxRow.lease_owner == lease, m.OutboxRow.status == PENDING,
                   m.OutboxRow.lease_until > now)


async def renew(*, db: Database, lease: str, row_ids: list[str], now: datetime,
                duration: timedelta) -> set[str]:
    """Extend the lease of the rows still held under ``lease``; which ones are."""
    if not row_ids:
        return set()
    async with db.write() as session:
        renewed = (await session.scalars(
            sa.update(m.OutboxRow)
            .where(m.OutboxRow.id.in_(sorted(row_ids)), _held(lease, now))
            .values(lease_until=now + duration)
            .returning(m.OutboxRow.id)
            .execution_options(synchronize_session=False))).all()
    return set(renewed)


async def hold(*, db: Database, lease: str, row_id: str, now: datetime,
               duration: timedelta) -> bool:
    """Whether ``lease`` still holds the row, renewed for ``duration``: asked just before
    sending, so that a row claimed again by someone else is not sent twice."""
    return row_id in await renew(db=db, lease=lease, row_ids=[row_id], now=now,
                                 duration=duration)


async def finish(*, db: Database, owner: str, row_id: str, status: str, now: datetime,
                 error: str | None = None, reference: str | None = None) -> bool:
    """Record a final outcome, if the claim's token ``owner`` still holds the lease;
    whether it did."""
    async with db.write() as session:
        result = await session.execute(
            sa.update(m.OutboxRow)
            .where(m.OutboxRow.id == row_id, m.OutboxRow.lease_owner == owner,
                   m.OutboxRow.status == PENDING)
            .values(status=status, finished_at=now, last_error=error,
                    provider_ref=reference, lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def postpone(*, db: Database, owner: str, row_id: str, until: datetime,
                   error: str) -> bool:
    """Give a row back after a temporary failure, not to be claimed before ``until``."""
    async with db.write() as session:
        result = await session.execute(
            sa.update(m.OutboxRow)
            .where(m.OutboxRow.id == row_id, m.OutboxRow.lease_owner == owner,
                   m.OutboxRow.status == PENDING)
            .values(lease_owner=None, lease_until=until, last_error=error)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(*, db: Database, lease: str) -> int:
    """Give back the rows still held under ``lease`` (their dispatcher is stopping), to be
    claimed by another at once rather than when the lease runs out; how many."""
    async with db.write() as session:
        result = await session.execute(
            sa.update(m.OutboxRow)
            .where(m.OutboxRow.lease_owner == lease, m.OutboxRow.status == PENDING)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]


async def sent_recently(*, db: Database, keys: list[str], now: datetime) -> dict[str, int]:
    """How many messages reached each mailbox or number (``cap_key``) in the last 24 h."""
    if not keys:
        return {}
    async with db.read() as session:
        # Narrowed in SQL by the lower-cased recipient, then counted per mailbox: the same
        # mailbox may have been written differently by older rows.
        rows = (await session.execute(
            sa.select(m.OutboxRow.channel, m.OutboxRow.recipient)
            .where(sa.func.lower(m.OutboxRow.recipient).in_(sorted(set(keys))),
                   m.OutboxRow.audience == r.Audience.USAGER.value,
                   m.OutboxRow.status == SENT,
                   m.OutboxRow.finished_at > now - timedelta(hours=24)))).all()
    counts: dict[str, int] = {}
    for channel, recipient in rows:
        key = cap_key(channel, recipient)
        counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass(frozen=True, slots=True)
class AppointmentState:
    """What the last check before sending needs to know."""

    version: int
    cancelled: bool
    start: datetime
    end: datetime


async def appointment_states(*, db: Database,
                             appointment_ids: list[str]) -> dict[str, AppointmentState]:
    """The version, status and times now of each appointment (absent ones are missing)."""
    if not appointment_ids:
        return {}
    async with db.read() as session:
        rows = (await session.execute(
            sa.select(m.Appointment.id, m.Appointment.version, m.Appointment.status,
                      m.Appointment.start, m.Appointment.end)
            .where(m.Appointment.id.in_(sorted(set(appointment_ids)))))).all()
    return {row[0]: AppointmentState(version=row[1], cancelled=row[2] == Status.CANCELLED,
                                     start=row[3], end=row[4]) for row in rows}


async def notifications(*, db: Database, principal: Principal,
                        appointment_id: str) -> list[m.OutboxRow]:
    """Every message of an appointment and its outcome, for whoever sees it."""
    async with db.read() as session:
        appointment = await session.get(m.Appointment, appointment_id)
        if appointment is None or not principal.sees(appointment):
            raise NotFound(_("There is no appointment {appointment_id}.",
                             appointment_id=appointment_id))
        return list((await session.scalars(
            sa.select(m.OutboxRow).where(m.OutboxRow.appointment_id == appointment_id)
            .order_by(m.OutboxRow.due_at, m.OutboxRow.created_at, m.OutboxRow.id))).all())
