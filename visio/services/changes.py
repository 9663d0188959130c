"""Changing a booked appointment: cancel, reschedule; each change is one version.

``expected_version`` (from ``If-Match``) refuses a change made on a stale read (412), so
no caller is told their change stuck when another one won. Audit entries follow commit
order: the row lock serialises changes, and each entry is stamped no earlier than the
previous change of the same appointment.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain.calendars import HolidayCalendar
from visio.domain.kinds import Status
from visio.domain.messages import Message, _
from visio.errors import Conflict, Forbidden, NotFound, PreconditionFailed, SlotTaken
from visio.services import outbox
from visio.services.booking import Booked, choose, constraint_of, stop_for

_TICK = timedelta(microseconds=1)


async def _load_for_change(
    session: AsyncSession, principal: Principal, appointment_id: str,
    expected_version: int | None,
) -> tuple[m.Appointment, m.Site]:
    query = (sa.select(m.Appointment, m.Site).join(m.Site, m.Site.id == m.Appointment.site_id)
             .where(m.Appointment.id == appointment_id, principal.appointment_filter())
             .with_for_update(of=m.Appointment))
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise NotFound(_("There is no appointment {appointment_id}.",
                         appointment_id=appointment_id))
    appointment, site = row
    if not principal.may_change(appointment):
        raise Forbidden(_("Operator staff cannot change bookings; ask the France Services "
                          "agent."))
    if expected_version is not None and expected_version != appointment.version:
        raise PreconditionFailed(
            _("This appointment was changed in the meantime (it is now at version "
              "{version}); read it again before changing it.", version=appointment.version),
            extra={"reason": "stale_version"})
    if appointment.status != Status.BOOKED:
        raise Conflict(_("This appointment is {status}; it can no longer be changed.",
                         status=_status_text(appointment.status)),
                       extra={"reason": "not_booked"})
    return appointment, site


def _status_text(status: str) -> Message:
    texts = {Status.CANCELLED: _("cancelled"), Status.DONE: _("done"),
             Status.NO_SHOW: _("missed")}
    return texts.get(Status(status), _("booked"))


def _stamp(appointment: m.Appointment, now: datetime) -> datetime:
    """``now``, or just after the previous change if a slower clock stamped it later."""
    return max(now, appointment.updated_at + _TICK)


async def mark_cancelled(session: AsyncSession, appointment: m.Appointment, *, reason: str,
                         actor_id: str | None, now: datetime) -> None:
    """Cancel a locked, booked appointment in the caller's transaction, audited, notified."""
    at = _stamp(appointment, now)
    appointment.status = Status.CANCELLED.value
    appointment.cancel_reason = reason
    appointment.version += 1
    appointment.updated_at = at
    session.add(m.AuditEntry(at=at, actor_id=actor_id, action="cancelled",
                             appointment_id=appointment.id,
                             detail={"version": appointment.version}))
    await outbox.cancelled(session, appointment, now=at)


async def cancel(
    *, db: Database, principal: Principal, appointment_id: str, reason: str,
    expected_version: int | None, now: datetime,
) -> Booked:
    """Cancel a booked appointment, freeing its time."""
    async with db.write() as session:
        appointment, site = await _load_for_change(session, principal, appointment_id,
                                                   expected_version)
        await mark_cancelled(session, appointment, reason=reason.strip(),
                             actor_id=principal.user_id, now=now)
    return Booked(appointment, site.timezone)


async def reschedule(
    *, db: Database, principal: Principal, appointment_id: str, start: datetime,
    staff_id: str | None, expected_version: int | None, now: datetime,
    holidays: HolidayCalendar,
) -> tuple[Booked, bool]:
    """Move an appointment; the old time is freed only if the new one is obtained.

    Returns the appointment and whether it changed (the same start changes nothing).
    """
    try:
        async with db.write() as session:
            appointment, site = await _load_for_change(session, principal, appointment_id,
                                                       expected_version)
            if appointment.start == start and staff_id in (None, appointment.staff_id):
                return Booked(appointment, site.timezone), False
            service = await session.get(m.Service, appointment.service_id)
            assert service is not None
            stop_id = await stop_for(session, site, start, None)
            staff, booth = await choose(
                session=session, site=site, service=service, start=start, now=now,
                holidays=holidays, language=appointment.usager_language, stop_id=stop_id,
                staff_id=staff_id, exclude_appointment_id=appointment.id,
                prefer_staff_id=appointment.staff_id,
            )
            old_start = appointment.start
            end = start + timedelta(minutes=service.duration_minutes)
            at = _stamp(appointment, now)
            appointment.start = start
            appointment.end = end
            appointment.staff_until = end + timedelta(minutes=service.buffer_minutes)
            appointment.staff_id = staff.staff_id
            appointment.desk_id = staff.desk_id
            appointment.booth = booth
            appointment.stop_id = stop_id
            # Moved: whatever absence made it "to rebook" no longer concerns it.
            appointment.to_rebook_since = None
            appointment.version += 1
            appointment.updated_at = at
            await session.flush()
            session.add(m.AuditEntry(
                at=at, actor_id=principal.user_id, action="rescheduled",
                appointment_id=appointment.id,
                detail={"from": old_start.isoformat(), "to": start.isoformat(),
                        "version": appointment.version},
            ))
            await outbox.rescheduled(session, appointment, now=at)
        return Booked(appointment, site.timezone), True
    except IntegrityError as err:
        if constraint_of(err) is None:
            raise
        raise SlotTaken(_("Someone else has just booked this time; the appointment keeps "
                          "its current time."), extra={"reason": "slot_taken"}) from err
