"""What the pages show: a day's or a week's appointments with names, and who is in a call.

Read-only units of work for ``visio.web``; every query is scoped by the access policy.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from visio import models as m
from visio.access import KIOSK, Principal
from visio.db import Database
from visio.domain import absences, places
from visio.domain.calendars import DailyRange, DateOverride, WeeklyRule
from visio.domain.intervals import Interval
from visio.domain.messages import _
from visio.errors import NotFound
from visio.services import availability


@dataclass(frozen=True, slots=True)
class AgendaItem:
    """One appointment as an agenda or a day's list shows it."""

    id: str
    status: str
    start: datetime
    end: datetime
    zone: str
    theme: str
    theme_fr: str
    theme_nl: str
    usager_first_name: str
    site_name: str
    stop_commune: str | None
    operator_name: str
    staff_name: str
    usager_language: str
    #: The agent's question for the operator (personal data: pages only, never logged).
    note: str | None = None
    #: The site's number (to reach the usager at the France Services).
    site_phone: str | None = None
    #: An absence or closed day of the staff member now covers it: an agent must rebook.
    to_rebook: bool = False
    usager_last_name: str = ""
    cancelled_by: str | None = None
    cancel_seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the call page needs besides the join grant."""

    item: AgendaItem
    #: The caller's seat in the call: ``kiosk`` (the agent's desk) or ``operator``.
    role: str
    #: The number to call when the video does not connect: the kiosk calls the operator's
    #: desk; the operator calls the France Services site, where the usager sits.
    fallback_phone: str | None
    #: The agent's question for the operator (personal data: shown, never logged).
    note: str | None


def _query() -> Any:  # a Select of seven entities
    return (sa.select(m.Appointment, m.Site, m.Theme, m.Operator, m.StaffMember, m.TourStop,
                      m.Desk)
            .join(m.Site, m.Site.id == m.Appointment.site_id)
            .join(m.Theme, m.Theme.code == m.Appointment.theme)
            .join(m.Operator, m.Operator.id == m.Appointment.operator_id)
            .join(m.StaffMember, m.StaffMember.id == m.Appointment.staff_id)
            .join(m.Desk, m.Desk.id == m.Appointment.desk_id)
            .outerjoin(m.TourStop, m.TourStop.id == m.Appointment.stop_id))


def _item(row: Any) -> AgendaItem:
    a, site, theme, operator, staff, stop, _desk = row
    return AgendaItem(
        id=a.id, status=a.status, start=a.start, end=a.end, zone=site.timezone,
        theme=a.theme, theme_fr=theme.label_fr, theme_nl=theme.label_nl,
        usager_first_name=a.usager_first_name, site_name=site.name,
        stop_commune=stop.commune if stop is not None else None, operator_name=operator.name,
        staff_name=staff.display_name, usager_language=a.usager_language, note=a.note,
        # As the staff member dials it: nationally from the site's country, else in full.
        site_phone=places.phone_display(site.phone, operator.country),
        to_rebook=a.to_rebook_since is not None,
        usager_last_name=a.usager_last_name, cancelled_by=a.cancelled_by,
        cancel_seen_at=a.cancel_seen_at)


async def agenda(*, db: Database, principal: Principal, start: datetime, end: datetime,
                 mine_only: bool = True, with_cancelled: bool = False) -> list[AgendaItem]:
    """Appointments in scope starting in [start, end), by start; cancelled ones only
    ``with_cancelled``.

    For operator staff ``mine_only`` keeps the appointments of their own seat (their
    staff member or their desk); agents see their sites', admins everything.
    """
    query = _query().where(principal.appointment_filter(), m.Appointment.start >= start,
                           m.Appointment.start < end)
    if not with_cancelled:
        query = query.where(m.Appointment.status != "cancelled")
    async with db.read() as session:
        rows = (await session.execute(query.order_by(m.Appointment.start,
                                                     m.Appointment.id))).all()
    items = []
    for row in rows:
        if mine_only and principal.staff_id is not None and principal.seat(row[0]) is None:
            continue
        items.append(_item(row))
    return items


async def upcoming_of_phone(*, db: Database, principal: Principal, phone: str, theme: str,
                            now: datetime) -> list[AgendaItem]:
    """The booked appointments in scope, not started yet, of this phone number (E.164) on
    this theme: the same usager booked twice is asked about first."""
    query = _query().where(principal.appointment_filter(), m.Appointment.usager_phone == phone,
                           m.Appointment.theme == theme, m.Appointment.start >= now,
                           m.Appointment.status == "booked")
    async with db.read() as session:
        rows = (await session.execute(query.order_by(m.Appointment.start,
                                                     m.Appointment.id))).all()
    return [_item(row) for row in rows]


async def call_context(*, db: Database, principal: Principal,
                       appointment_id: str) -> CallContext:
    """The appointment of a call page, if the caller has a seat in its call."""
    async with db.read() as session:
        row = (await session.execute(_query().where(
            m.Appointment.id == appointment_id, principal.appointment_filter()))).one_or_none()
    seat = principal.seat(row[0]) if row is not None else None
    if row is None or seat is None:
        raise NotFound(_("There is no appointment {appointment_id} you can join.",
                         appointment_id=appointment_id))
    appointment, site, desk = row[0], row[1], row[6]
    phone = desk.fallback_phone if seat.role == KIOSK else site.phone
    return CallContext(item=_item(row), role=seat.role, fallback_phone=phone,
                       note=appointment.note)


async def kiosks_present(*, db: Database, principal: Principal,
                         appointment_ids: Collection[str]) -> set[str]:
    """Of these appointments in scope, those whose kiosk is in the call right now.

    The signaling host records every join and leave; the kiosk is present when its last
    one is a join (the call page joins as soon as it opens).
    """
    ids = sorted(set(appointment_ids))[:200]
    if not ids:
        return set()
    query = (sa.select(m.CallEventRow.appointment_id, m.CallEventRow.kind,
                       m.CallEventRow.detail)
             .join(m.Appointment, m.Appointment.id == m.CallEventRow.appointment_id)
             .where(m.CallEventRow.appointment_id.in_(ids), m.CallEventRow.role == KIOSK,
                    m.CallEventRow.kind.in_(("join", "leave")),
                    principal.appointment_filter())
             .order_by(m.CallEventRow.at, m.CallEventRow.id))
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    present: set[str] = set()
    for appointment_id, kind, detail in rows:
        if kind == "join":
            present.add(appointment_id)
        elif not (detail or {}).get("replaced"):
            # A socket replaced by a newer one of the same kiosk leaves after that join.
            present.discard(appointment_id)
    return present


@dataclass(frozen=True, slots=True)
class UsagerMessage:
    """A message to the usager of the appointment's current version, and where it stands."""

    kind: str
    channel: str
    due_at: datetime
    status: str
    #: Why a skipped message was not sent (``no_consent``, ``not_mobile``, the daily cap…).
    skipped_because: str | None = None


async def usager_messages(*, db: Database, principal: Principal,
                          appointment_ids: Collection[str]) -> dict[str, list[UsagerMessage]]:
    """The notifications outbox as the agent reads it: what goes to each usager, and when.

    Rows of earlier versions (retired by a change) are left out.
    """
    ids = sorted(set(appointment_ids))[:200]
    found: dict[str, list[UsagerMessage]] = {i: [] for i in ids}
    if not ids:
        return found
    query = (sa.select(m.OutboxRow.appointment_id, m.OutboxRow.kind, m.OutboxRow.channel,
                       m.OutboxRow.due_at, m.OutboxRow.status, m.OutboxRow.last_error)
             .join(m.Appointment, m.Appointment.id == m.OutboxRow.appointment_id)
             .where(m.OutboxRow.appointment_id.in_(ids), m.OutboxRow.audience == "usager",
                    m.OutboxRow.appointment_version == m.Appointment.version,
                    m.OutboxRow.status != "retired", principal.appointment_filter())
             .order_by(m.OutboxRow.due_at, m.OutboxRow.id))
    async with db.read() as session:
        for appointment_id, kind, channel, due_at, status, error in (
                await session.execute(query)):
            found[appointment_id].append(UsagerMessage(
                kind, channel, due_at, status,
                skipped_because=error if status == "skipped" else None))
    return found


async def free_time(*, db: Database, principal: Principal, days: Sequence[date],
                    booked: Sequence[AgendaItem]) -> tuple[str, dict[date, list[Interval]]]:
    """The caller's own working hours on ``days`` less absences and ``booked``; their zone.

    Empty for a caller who is not operator staff.
    """
    if principal.staff_id is None:
        return "Europe/Paris", {d: [] for d in days}
    details = await availability.get_availability(db=db, principal=principal,
                                                  staff_id=principal.staff_id)
    zone = ZoneInfo(details.zone)
    rules = [WeeklyRule(r.weekday, r.opens, r.closes, r.valid_from, r.valid_until)
             for r in details.rules]
    overrides: dict[date, list[DailyRange]] = {}
    for o in details.overrides:
        ranges = overrides.setdefault(o.day, [])
        if o.opens is not None and o.closes is not None:
            ranges.append(DailyRange(o.opens, o.closes))
    by_day = {d: DateOverride(d, tuple(r)) for d, r in overrides.items()}
    away = [Interval(a.start, a.end) for a in details.absences]
    held = [Interval(i.start, i.end) for i in booked if i.status == "booked"]
    return details.zone, {d: absences.free_time(d, rules=rules, overrides=by_day,
                                                absences=away, booked=held, zone=zone)
                          for d in days}
