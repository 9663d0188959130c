"""The agent corrects an appointment's usager (names, phone, e-mail, language, consent,
the note for the operator) and sends the usager's last message again.

A correction is one version, like a cancellation or a move: ``expected_version`` (from
``If-Match``) refuses a change made on a stale read. Messages follow the addresses: a new
phone or e-mail gets the confirmation again, nothing more goes to the old one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa

from visio import models as m
from visio.access import Principal
from visio.contract import bodies as api
from visio.db import Database
from visio.domain import contact
from visio.domain.kinds import Status
from visio.domain.messages import _
from visio.errors import Conflict, TooManyRequests
from visio.services import audit, outbox, webhooks
from visio.services.booking import Booked, normalised_phone, refusal
from visio.services.changes import actor_kind_of, lock_for_change

_TICK = timedelta(microseconds=1)
#: A usager's message sent again at most this often per appointment and 24 hours.
RESENDS_PER_DAY = 3
_DAY = timedelta(hours=24)


def _wanted(appointment: m.Appointment, data: api.UsagerCorrection,
            country: str) -> dict[str, Any]:
    """The columns the correction changes, with their new values (checked as a booking's:
    names without links, a number read as the site's country's, a mailbox mail can carry)."""
    values: dict[str, Any] = {}
    try:
        if data.first_name is not msgspec.UNSET:
            values["usager_first_name"] = contact.person_name(data.first_name,
                                                              field="first_name")
        if data.last_name is not msgspec.UNSET:
            values["usager_last_name"] = contact.person_name(data.last_name,
                                                             field="last_name")
        if data.email is not msgspec.UNSET:
            values["usager_email"] = contact.mailbox(data.email, field="email") \
                if data.email else None
    except contact.Refused as err:
        raise refusal(err) from err
    if data.phone is not msgspec.UNSET:
        values["usager_phone"] = normalised_phone(data.phone, country=country)
    if data.language is not msgspec.UNSET:
        values["usager_language"] = data.language.value
    if data.consent is not msgspec.UNSET:
        values["usager_consent"] = data.consent
    if data.note is not msgspec.UNSET:
        values["note"] = (data.note or "").strip() or None
    return {k: v for k, v in values.items() if getattr(appointment, k) != v}


async def correct_usager(
    *, db: Database, principal: Principal, appointment_id: str,
    data: api.UsagerCorrection, expected_version: int | None, now: datetime,
) -> Booked:
    """Correct the usager's details of a booked appointment; nothing asked, nothing done."""
    async with db.write() as session:
        appointment, site = await lock_for_change(session, principal, appointment_id,
                                          expected_version)
        wanted = _wanted(appointment, data, site.country)
        if not wanted:
            return Booked(appointment, site.timezone)
        if appointment.status != Status.BOOKED:
            raise Conflict(_("This appointment is no longer booked; its usager's details "
                             "can no longer be changed."), extra={"reason": "not_booked"})
        old_version, old_phone, old_email = (appointment.version, appointment.usager_phone,
                                             appointment.usager_email)
        at = max(now, appointment.updated_at + _TICK)
        for column, value in wanted.items():
            setattr(appointment, column, value)
        appointment.version += 1
        appointment.updated_at = at
        await session.flush()
        # Which fields, never their values: the audit log holds no personal data.
        audit.record(session, at=at, actor=audit.Actor(actor_kind_of(principal).value,
                                                       principal.user_id),
                     action="corrected", appointment_id=appointment.id,
                     site_id=appointment.site_id,
                     fields=(c.removeprefix("usager_") for c in wanted),
                     detail={"version": appointment.version})
        await outbox.corrected(session, appointment, old_version=old_version,
                               old_phone=old_phone, old_email=old_email, now=at)
        await webhooks.emit(session, appointment=appointment,
                            event_type=webhooks.USAGER_UPDATED, now=at, zone=site.timezone)
    return Booked(appointment, site.timezone)


async def resend(*, db: Database, principal: Principal, appointment_id: str, now: datetime,
                 daily_cap: int) -> m.OutboxRow:
    """Send the usager's last message again, now, to their current address.

    At most ``RESENDS_PER_DAY`` per appointment in 24 hours, and never past the daily cap
    of messages one address may receive: 429 with the wait beyond.
    """
    async with db.write() as session:
        appointment, _site = await lock_for_change(session, principal, appointment_id, None)
        last = await session.scalar(
            sa.select(m.OutboxRow)
            .where(m.OutboxRow.appointment_id == appointment.id,
                   m.OutboxRow.audience == "usager",
                   m.OutboxRow.status.in_((outbox.SENT, outbox.FAILED, outbox.SKIPPED)))
            .order_by(m.OutboxRow.due_at.desc(), m.OutboxRow.created_at.desc(),
                      m.OutboxRow.id.desc()).limit(1))
        if last is None:
            raise Conflict(_("No message has gone to the usager yet: there is nothing to "
                             "send again."), extra={"reason": "nothing_sent"})
        recipient = (appointment.usager_phone if last.channel == "sms"
                     else appointment.usager_email)
        if not recipient:
            raise Conflict(_("The usager no longer has this address: correct their details "
                             "first."), extra={"reason": "no_address"})
        resent = list((await session.scalars(
            sa.select(m.AuditEntry.at)
            .where(m.AuditEntry.appointment_id == appointment.id,
                   m.AuditEntry.action == "resent", m.AuditEntry.at > now - _DAY)
            .order_by(m.AuditEntry.at))).all())
        if len(resent) >= RESENDS_PER_DAY:
            raise TooManyRequests(
                _("This appointment's message was already sent again {count} times in 24 "
                  "hours; phone the usager instead.", count=RESENDS_PER_DAY),
                retry_after=_wait(resent[0], now))
        received = list((await session.scalars(
            sa.select(m.OutboxRow.finished_at)
            .where(m.OutboxRow.recipient == recipient, m.OutboxRow.status == outbox.SENT,
                   m.OutboxRow.finished_at > now - _DAY)
            .order_by(m.OutboxRow.finished_at))).all())
        if len(received) >= daily_cap:
            first = received[0]
            assert first is not None
            raise TooManyRequests(
                _("The usager has received {count} messages in 24 hours, the most they may "
                  "get; phone them instead.", count=daily_cap), retry_after=_wait(first, now))
        row = m.OutboxRow(
            appointment_id=appointment.id, appointment_version=appointment.version,
            kind=last.kind, channel=last.channel, audience="usager", recipient=recipient,
            language=appointment.usager_language, due_at=now, status=outbox.PENDING,
            attempts=0, created_at=now)
        session.add(row)
        await session.flush()
        audit.record(session, at=now, actor=audit.Actor(actor_kind_of(principal).value,
                                                        principal.user_id),
                     action="resent", appointment_id=appointment.id,
                     site_id=appointment.site_id,
                     detail={"kind": last.kind, "channel": last.channel,
                             "version": appointment.version})
    return row


def _wait(oldest: datetime, now: datetime) -> int:
    """Seconds until the oldest of the last 24 hours' events leaves the window."""
    return max(1, int((oldest + _DAY - now).total_seconds()) + 1)
