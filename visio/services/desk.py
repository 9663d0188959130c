"""The agent's desk: appointments found by usager, date, status or operator, and one
appointment's file (its details, its history, the same usager's other appointments).

Every query is scoped by the access policy; out of scope reads as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain.kinds import Role
from visio.domain.messages import _
from visio.errors import NotFound
from visio.services.appointments import (
    AppointmentFilter,
    after_cursor,
    encode_cursor,
    filtered,
    usager_matches,
)

#: The same usager's other appointments shown on a file, latest first.
OTHERS = 20


@dataclass(frozen=True, slots=True)
class DeskRow:
    """One appointment as the agent's list shows it."""

    id: str
    status: str
    start: datetime
    end: datetime
    zone: str
    site_id: str
    operator_id: str
    theme: str
    stop_id: str | None
    first_name: str
    last_name: str
    phone: str | None
    email: str | None
    language: str
    consent: bool
    note: str | None
    version: int
    theme_fr: str
    theme_nl: str
    operator_name: str
    site_name: str
    stop_commune: str | None
    stop_place: str | None
    cancel_reason: str | None
    cancelled_by: str | None
    cancel_seen_at: datetime | None
    #: An absence or closed day of its staff member now covers it: to move or cancel.
    to_rebook: bool = False


@dataclass(frozen=True, slots=True)
class DeskPage:
    rows: list[DeskRow]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """Something done to an appointment: when, what, by whom (a kind and a name)."""

    at: datetime
    action: str
    actor_kind: str
    actor_name: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AppointmentFile:
    row: DeskRow
    history: list[HistoryEntry]
    others: list[DeskRow]


def _query() -> Any:  # a Select of five entities
    return (sa.select(m.Appointment, m.Site, m.Theme, m.Operator, m.TourStop)
            .join(m.Site, m.Site.id == m.Appointment.site_id)
            .join(m.Theme, m.Theme.code == m.Appointment.theme)
            .join(m.Operator, m.Operator.id == m.Appointment.operator_id)
            .outerjoin(m.TourStop, m.TourStop.id == m.Appointment.stop_id))


def _row(found: Any) -> DeskRow:
    a, site, theme, operator, stop = found
    return DeskRow(
        id=a.id, status=a.status, start=a.start, end=a.end, zone=site.timezone,
        site_id=a.site_id, operator_id=a.operator_id, theme=a.theme, stop_id=a.stop_id,
        first_name=a.usager_first_name, last_name=a.usager_last_name, phone=a.usager_phone,
        email=a.usager_email, language=a.usager_language, consent=a.usager_consent,
        note=a.note, version=a.version, theme_fr=theme.label_fr, theme_nl=theme.label_nl,
        operator_name=operator.name, site_name=site.name,
        stop_commune=stop.commune if stop is not None else None,
        stop_place=stop.place if stop is not None else None, cancel_reason=a.cancel_reason,
        cancelled_by=a.cancelled_by, cancel_seen_at=a.cancel_seen_at,
        to_rebook=a.status == "booked" and a.to_rebook_since is not None)


def find_query(*, principal: Principal, filters: AppointmentFilter, cursor: str | None,
               limit: int) -> Any:
    """The statement behind ``find`` (one row more than a page: is there a next one?)."""
    query = filtered(_query().where(principal.appointment_filter()), filters)
    return after_cursor(query, cursor).limit(limit + 1)


async def find(*, db: Database, principal: Principal, filters: AppointmentFilter,
               cursor: str | None, limit: int) -> DeskPage:
    """A page of appointments in scope matching the filters, by start then id."""
    query = find_query(principal=principal, filters=filters, cursor=cursor, limit=limit)
    async with db.read() as session:
        rows = [_row(found) for found in (await session.execute(query)).all()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].start, rows[-1].id)
    return DeskPage(rows, next_cursor)


def _actor(entry: m.AuditEntry, role: str | None) -> str:
    """Who acted, as stored, or derived for entries written before actor_kind existed."""
    if entry.actor_kind:
        return entry.actor_kind
    if role is not None:
        return role
    return "usager" if entry.action == "cancelled" else "system"


async def one(*, db: Database, principal: Principal, appointment_id: str) -> DeskRow:
    """One appointment in scope, as the list shows it."""
    async with db.read() as session:
        found = (await session.execute(_query().where(
            m.Appointment.id == appointment_id,
            principal.appointment_filter()))).one_or_none()
    if found is None:
        raise NotFound(_("There is no appointment {appointment_id}.",
                         appointment_id=appointment_id))
    return _row(found)


async def open_file(*, db: Database, principal: Principal, appointment_id: str,
                    now: datetime) -> AppointmentFile:
    """An appointment's file; an agent opening it has seen the usager's cancellation."""
    async with db.read() as session:
        found = (await session.execute(_query().where(
            m.Appointment.id == appointment_id,
            principal.appointment_filter()))).one_or_none()
        if found is None:
            raise NotFound(_("There is no appointment {appointment_id}.",
                             appointment_id=appointment_id))
        row = _row(found)
        entries = (await session.execute(
            sa.select(m.AuditEntry, m.User.role, m.User.display_name)
            .outerjoin(m.User, m.User.id == m.AuditEntry.actor_id)
            .where(m.AuditEntry.appointment_id == appointment_id)
            .order_by(m.AuditEntry.at, m.AuditEntry.id))).all()
        others: list[DeskRow] = []
        if row.phone:
            others = [_row(o) for o in (await session.execute(
                _query().where(principal.appointment_filter(),
                               m.Appointment.usager_phone == row.phone,
                               m.Appointment.id != appointment_id,
                               # The same digits through the search index, then exactly.
                               usager_matches(row.phone))
                .order_by(m.Appointment.start.desc(), m.Appointment.id)
                .limit(OTHERS))).all()]
    if (row.cancelled_by == "usager" and row.cancel_seen_at is None
            and principal.role is Role.AGENT):
        async with db.write() as session:
            await session.execute(
                sa.update(m.Appointment)
                .where(m.Appointment.id == appointment_id,
                       m.Appointment.cancel_seen_at.is_(None))
                .values(cancel_seen_at=now)
                .execution_options(synchronize_session=False))
    history = [HistoryEntry(at=e.at, action=e.action, actor_kind=_actor(e, role),
                            actor_name=name, detail=dict(e.detail or {}))
               for e, role, name in entries]
    return AppointmentFile(row=row, history=history, others=others)
