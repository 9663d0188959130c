"""Changing a booked appointment: cancel, reschedule; each change is one version.

Each use case is one function that the API, the pages and the usager's link all call:
it commits the change with its audit entry and its messages (the outbox), then closes
the live call of the appointment on every instance (``rooms``), so no caller can forget
an effect.

``expected_version`` (from ``If-Match``) refuses a change made on a stale read (412), so
no caller is told their change stuck when another one won. Audit entries follow commit
order: the row lock serialises changes, and each entry is stamped no earlier than the
previous change of the same appointment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal, usager_may_cancel
from visio.db import Database
from visio.domain.calendars import HolidayCalendar
from visio.domain.kinds import ActorKind, Status
from visio.domain.messages import Message, _
from visio.errors import Conflict, Forbidden, NotFound, PreconditionFailed, SlotTaken
from visio.services import audit, outbox, webhooks
from visio.services.booking import Booked, choose, constraint_of, stop_for

_TICK = timedelta(microseconds=1)


class RoomCloser(Protocol):
    """Closes the live calls of appointments on every instance (``room_closed``)."""

    async def __call__(self, appointment_ids: Sequence[str], reason: str) -> None: ...


async def no_rooms(appointment_ids: Sequence[str], reason: str) -> None:
    """For processes that serve no calls (benchmarks, the command line): nothing to close."""


@dataclass(frozen=True, slots=True)
class UsagerLink:
    """The usager, whose link's token (checked by the caller) names this one appointment."""

    appointment_id: str


def actor_kind_of(principal: Principal) -> ActorKind:
    """How the history names a signed-in caller."""
    return ActorKind(principal.role.value)


async def lock_for_change(
    session: AsyncSession, principal: Principal, appointment_id: str,
    expected_version: int | None,
) -> tuple[m.Appointment, m.Site]:
    """The appointment in scope, locked, that the caller may change at that version."""
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
    return appointment, site


async def _load_for_change(
    session: AsyncSession, principal: Principal, appointment_id: str,
    expected_version: int | None,
) -> tuple[m.Appointment, m.Site]:
    appointment, site = await lock_for_change(session, principal, appointment_id,
                                              expected_version)
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
                         actor_id: str | None, actor_kind: ActorKind, now: datetime) -> None:
    """Cancel a locked, booked appointment in the caller's transaction, audited, notified.

    The outbox retires the usager's pending messages, plans their notice and the staff
    member's CANCEL; the caller closes the call room once the transaction has committed.
    """
    at = _stamp(appointment, now)
    appointment.status = Status.CANCELLED.value
    appointment.cancel_reason = reason
    appointment.cancelled_by = actor_kind.value
    appointment.cancel_seen_at = None
    appointment.version += 1
    appointment.updated_at = at
    audit.record(session, at=at, actor=audit.Actor(actor_kind.value, actor_id),
                 action="cancelled", appointment_id=appointment.id,
                 site_id=appointment.site_id, detail={"version": appointment.version})
    await outbox.cancelled(session, appointment, now=at)
    await webhooks.emit(session, appointment=appointment, event_type=webhooks.CANCELLED,
                        now=at)


async def _load_for_usager(session: AsyncSession, link: UsagerLink, appointment_id: str,
                           now: datetime) -> tuple[m.Appointment, m.Site]:
    row = (await session.execute(
        sa.select(m.Appointment, m.Site).join(m.Site, m.Site.id == m.Appointment.site_id)
        .where(m.Appointment.id == link.appointment_id,
               m.Appointment.id == appointment_id)
        .with_for_update(of=m.Appointment))).one_or_none()
    if row is None:
        raise NotFound(_("There is no appointment {appointment_id}.",
                         appointment_id=appointment_id))
    appointment, site = row
    if appointment.status != Status.BOOKED:
        raise Conflict(_("This appointment is {status}; it can no longer be changed.",
                         status=_status_text(appointment.status)),
                       extra={"reason": "not_booked"})
    if not usager_may_cancel(status=appointment.status, start=appointment.start, now=now):
        raise Conflict(_("This appointment has begun; it can no longer be cancelled from "
                         "your link."), extra={"reason": "started"})
    return appointment, site


async def cancel(
    *, db: Database, principal: Principal | UsagerLink, appointment_id: str, reason: str,
    expected_version: int | None, now: datetime, rooms: RoomCloser,
    actor_kind: ActorKind | None = None,
) -> Booked:
    """Cancel a booked appointment: frees its time, tells the usager and the staff member
    (the staff CANCEL goes through the outbox), records who cancelled, then closes its
    call on every instance.

    ``principal`` is a signed-in caller (agent pages, API) or the usager's link, which may
    cancel its own appointment until it starts. ``actor_kind`` defaults to the caller's
    role (``usager`` for the link).
    """
    async with db.write() as session:
        if isinstance(principal, UsagerLink):
            appointment, site = await _load_for_usager(session, principal, appointment_id,
                                                       now)
            actor_id, kind = None, actor_kind or ActorKind.USAGER
        else:
            appointment, site = await _load_for_change(session, principal, appointment_id,
                                                       expected_version)
            actor_id, kind = principal.user_id, actor_kind or actor_kind_of(principal)
        await mark_cancelled(session, appointment, reason=reason.strip(), actor_id=actor_id,
                             actor_kind=kind, now=now)
    # After the commit only: a failed change must leave the call running.
    await rooms([appointment.id], "cancelled")
    return Booked(appointment, site.timezone)


async def reschedule(
    *, db: Database, principal: Principal, appointment_id: str, start: datetime,
    staff_id: str | None, expected_version: int | None, now: datetime,
    holidays: HolidayCalendar, rooms: RoomCloser,
) -> tuple[Booked, bool]:
    """Move an appointment; the old time is freed only if the new one is obtained.

    Returns the appointment and whether it changed (the same start changes nothing). A
    change closes the live call: join tokens of the old version are refused from then on.
    """
    booked, changed = await _reschedule(
        db=db, principal=principal, appointment_id=appointment_id, start=start,
        staff_id=staff_id, expected_version=expected_version, now=now, holidays=holidays)
    if changed:
        await rooms([booked.appointment.id], "rescheduled")
    return booked, changed


async def _reschedule(
    *, db: Database, principal: Principal, appointment_id: str, start: datetime,
    staff_id: str | None, expected_version: int | None, now: datetime,
    holidays: HolidayCalendar,
) -> tuple[Booked, bool]:
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
            appointment.reschedule_count = (appointment.reschedule_count or 0) + 1
            appointment.version += 1
            appointment.updated_at = at
            await session.flush()
            audit.record(
                session, at=at, actor=audit.Actor(actor_kind_of(principal).value,
                                                  principal.user_id),
                action="rescheduled", appointment_id=appointment.id, site_id=site.id,
                fields=("start",),
                detail={"from": old_start.isoformat(), "to": start.isoformat(),
                        "version": appointment.version})
            await outbox.rescheduled(session, appointment, now=at)
            await webhooks.emit(session, appointment=appointment,
                                event_type=webhooks.RESCHEDULED, now=at, zone=site.timezone)
        return Booked(appointment, site.timezone), True
    except IntegrityError as err:
        if constraint_of(err) is None:
            raise
        raise SlotTaken(_("Someone else has just booked this time; the appointment keeps "
                          "its current time."), extra={"reason": "slot_taken"}) from err
