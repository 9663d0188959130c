"""What happened to each appointment: the job that marks it done or missed once it has
ended, the call's own outcome kept beside it, and corrections by the people concerned.

``done`` once both sides of its call connected; ``no_show`` when the site's kiosk never
joined (the usager did not come). When the kiosk joined but the call never connected
(the operator never came, or the connection failed), the job leaves the status to the
agent or the staff member, and the call's outcome says what happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain.call_outcome import CallOutcome, LoggedEvent, outcome_of
from visio.domain.kinds import Status
from visio.domain.messages import _
from visio.errors import Conflict, Forbidden, NotFound, PreconditionFailed, Unprocessable
from visio.services import audit, webhooks

log = logging.getLogger("visio.outcomes")

#: Appointments older than this are left as they are by the job.
SETTLE_WITHIN = timedelta(days=2)
#: How long after its end an outcome may still be corrected.
CORRECT_WITHIN = timedelta(days=7)
OUTCOMES = (Status.DONE, Status.NO_SHOW)
_OUTCOME_EVENTS = ("join", "leave", "connection_state", "media")


async def call_outcome_of(session: AsyncSession, appointment_id: str) -> CallOutcome:
    """The outcome of an appointment's call, from its log."""
    rows = (await session.execute(
        sa.select(m.CallEventRow.at, m.CallEventRow.kind, m.CallEventRow.role,
                  m.CallEventRow.detail)
        .where(m.CallEventRow.appointment_id == appointment_id,
               m.CallEventRow.kind.in_(_OUTCOME_EVENTS)))).all()
    return outcome_of(LoggedEvent(at=at, kind=kind, role=role, detail=detail or {})
                      for at, kind, role, detail in rows)


async def _keep(session: AsyncSession, appointment_id: str, outcome: CallOutcome,
                now: datetime) -> None:
    row = await session.get(m.CallOutcome, appointment_id)
    if row is None:
        row = m.CallOutcome(appointment_id=appointment_id)
        session.add(row)
    row.attempted = outcome.attempted
    row.connected = outcome.connected
    row.kiosk_joined = outcome.kiosk_joined
    row.operator_joined = outcome.operator_joined
    row.seconds_to_connect = outcome.seconds_to_connect
    row.duration_seconds = outcome.duration_seconds
    row.audio_only = outcome.audio_only
    row.ended_by_failure = outcome.ended_by_failure
    row.computed_at = now


def status_for(outcome: CallOutcome) -> Status | None:
    """The status the job gives an ended appointment, or None to leave it to people."""
    if outcome.connected:
        return Status.DONE
    if not outcome.kiosk_joined:
        return Status.NO_SHOW
    return None


async def settle(*, db: Database, now: datetime, delay: timedelta) -> int:
    """Mark the booked appointments that ended ``delay`` ago (within two days): their
    call's outcome is kept, and their status set when the log decides it. How many
    appointments changed status."""
    async with db.write() as session:
        # SKIP LOCKED lets several instances settle at once without doing it twice.
        ended = (await session.scalars(sa.select(m.Appointment).where(
            m.Appointment.status == Status.BOOKED.value, m.Appointment.end <= now - delay,
            m.Appointment.end > now - SETTLE_WITHIN)
            .order_by(m.Appointment.end, m.Appointment.id)
            .with_for_update(skip_locked=True))).all()
        marked = 0
        for appointment in ended:
            outcome = await call_outcome_of(session, appointment.id)
            await _keep(session, appointment.id, outcome, now)
            status = status_for(outcome)
            if status is None:
                continue
            at = max(now, appointment.updated_at)
            appointment.status = status.value
            appointment.outcome_at = at
            appointment.version += 1
            appointment.updated_at = at
            audit.record(session, at=at, actor=audit.THE_SYSTEM, action=status.value,
                         appointment_id=appointment.id, site_id=appointment.site_id,
                         fields=("status",), detail={"version": appointment.version})
            await webhooks.emit(session, appointment=appointment,
                                event_type=webhooks.OUTCOME, now=at)
            marked += 1
    return marked


@dataclass(frozen=True, slots=True)
class Corrected:
    """An appointment after its outcome was set by a person."""

    appointment_id: str
    status: str
    version: int
    reason: str


async def correct(
    *, db: Database, principal: Principal, appointment_id: str, outcome: str, reason: str,
    expected_version: int | None, now: datetime,
) -> Corrected:
    """Set or correct an appointment's outcome (done or no_show), with a reason, from its
    start until seven days after its end: the site's agents, the operator's staff, admins.
    """
    reason = reason.strip()
    if outcome not in {s.value for s in OUTCOMES}:
        raise Unprocessable(_("The outcome is done or no_show."), extra={"field": "outcome"})
    if not reason:
        raise Unprocessable(_("Say why the outcome is corrected."), extra={"field": "reason"})
    async with db.write() as session:
        appointment = (await session.scalars(
            sa.select(m.Appointment).where(m.Appointment.id == appointment_id,
                                           principal.appointment_filter())
            .with_for_update())).one_or_none()
        if appointment is None:
            raise NotFound(_("There is no appointment {appointment_id}.",
                             appointment_id=appointment_id))
        if not principal.may_correct_outcome(appointment):
            raise Forbidden(_("Only the site's agents and the operator's staff set an "
                              "appointment's outcome."))
        if expected_version is not None and expected_version != appointment.version:
            raise PreconditionFailed(
                _("This appointment was changed in the meantime (it is now at version "
                  "{version}); read it again before changing it.",
                  version=appointment.version), extra={"reason": "stale_version"})
        if appointment.status == Status.CANCELLED:
            raise Conflict(_("A cancelled appointment has no outcome to correct."),
                           extra={"reason": "cancelled"})
        if now < appointment.start:
            raise Conflict(_("The appointment has not begun; its outcome is not known yet."),
                           extra={"reason": "not_begun"})
        if now > appointment.end + CORRECT_WITHIN:
            raise Conflict(_("An outcome can be corrected within 7 days of the appointment."),
                           extra={"reason": "too_late"})
        before = appointment.status
        at = max(now, appointment.updated_at)
        appointment.status = outcome
        appointment.outcome_at = at
        appointment.outcome_reason = reason
        appointment.version += 1
        appointment.updated_at = at
        # Field names only: the reason is the writer's words and stays on the appointment.
        audit.record(session, at=at, actor=audit.actor_of(principal),
                     action="outcome_corrected", appointment_id=appointment.id,
                     site_id=appointment.site_id, fields=("status", "outcome_reason"),
                     detail={"from": before, "to": outcome, "version": appointment.version})
        await webhooks.emit(session, appointment=appointment, event_type=webhooks.OUTCOME,
                            now=at)
        version = appointment.version
    return Corrected(appointment_id=appointment_id, status=outcome, version=version,
                     reason=reason)
