"""Reading appointments in the caller's scope: one, or a page after a cursor."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa

from visio import models as m
from visio.access import Principal
from visio.db import Database
from visio.domain.kinds import Role, Status
from visio.domain.messages import _
from visio.domain.usager_search import query_terms
from visio.errors import Forbidden, NotFound, Unprocessable
from visio.services.booking import Booked


@dataclass(frozen=True, slots=True)
class AppointmentFilter:
    start_from: datetime | None = None
    start_to: datetime | None = None
    site_id: str | None = None
    operator_id: str | None = None
    status: str | None = None
    #: The usager's name (part of it, any case or accents) or phone (any format).
    q: str | None = None


@dataclass(frozen=True, slots=True)
class AppointmentPage:
    items: list[Booked]
    next_cursor: str | None


class _Cursor(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    start: datetime
    id: str


def encode_cursor(start: datetime, appointment_id: str) -> str:
    """An opaque cursor after (start, id)."""
    raw = msgspec.json.encode(_Cursor(start, appointment_id))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Read a cursor made by encode_cursor; anything else is a 400, never a 500."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = msgspec.json.decode(raw, type=_Cursor)
        if value.start.tzinfo is None or not 2000 <= value.start.year <= 2100 \
                or len(value.id) > 64:
            raise ValueError(cursor)
    except (ValueError, binascii.Error, msgspec.DecodeError) as err:
        raise Unprocessable(_("The cursor is not valid; start again from the first page."),
                           extra={"field": "cursor"}) from err
    return value.start, value.id


def usager_matches(q: str) -> sa.ColumnElement[bool]:
    """Appointments whose usager the query names: every term found in the folded text.

    Terms are lower-case letters and digits only, so they hold no LIKE wildcard.
    """
    terms = query_terms(q)
    if not terms:
        return sa.true()
    return sa.and_(*(m.Appointment.usager_search.like(f"%{t}%") for t in terms))


def filtered(query: Any, filters: AppointmentFilter) -> Any:
    """``query`` narrowed by the filters (dates, site, operator, status, usager)."""
    if filters.start_from is not None:
        query = query.where(m.Appointment.start >= filters.start_from)
    if filters.start_to is not None:
        query = query.where(m.Appointment.start < filters.start_to)
    if filters.site_id is not None:
        query = query.where(m.Appointment.site_id == filters.site_id)
    if filters.operator_id is not None:
        query = query.where(m.Appointment.operator_id == filters.operator_id)
    if filters.status is not None:
        query = query.where(m.Appointment.status == filters.status)
    if filters.q:
        query = query.where(usager_matches(filters.q))
    return query


def after_cursor(query: Any, cursor: str | None) -> Any:
    """``query`` past the (start, id) a cursor names, by start then id."""
    if cursor is not None:
        after_start, after_id = decode_cursor(cursor)
        query = query.where(sa.or_(
            m.Appointment.start > after_start,
            sa.and_(m.Appointment.start == after_start, m.Appointment.id > after_id),
        ))
    return query.order_by(m.Appointment.start, m.Appointment.id)


async def get_appointment(*, db: Database, principal: Principal,
                          appointment_id: str) -> Booked:
    """One appointment in the caller's scope."""
    async with db.read() as session:
        row = (await session.execute(
            sa.select(m.Appointment, m.Site.timezone)
            .join(m.Site, m.Site.id == m.Appointment.site_id)
            .where(m.Appointment.id == appointment_id, principal.appointment_filter())
        )).one_or_none()
    if row is None:
        raise NotFound(_("There is no appointment {appointment_id}.",
                         appointment_id=appointment_id))
    return Booked(row[0], row[1])


async def list_appointments(
    *, db: Database, principal: Principal, filters: AppointmentFilter, cursor: str | None,
    limit: int,
) -> AppointmentPage:
    """A page of appointments in the caller's scope, by start then id."""
    query = (sa.select(m.Appointment, m.Site.timezone)
             .join(m.Site, m.Site.id == m.Appointment.site_id)
             .where(principal.appointment_filter()))
    query = after_cursor(filtered(query, filters), cursor).limit(limit + 1)
    async with db.read() as session:
        rows = [Booked(a, z) for a, z in (await session.execute(query)).all()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1].appointment
        next_cursor = encode_cursor(last.start, last.id)
    return AppointmentPage(rows, next_cursor)


async def mark_cancellation_seen(*, db: Database, principal: Principal, appointment_id: str,
                                 now: datetime) -> datetime | None:
    """An agent has seen that the usager cancelled: the cancellation is no longer new.

    Returns when it was first seen (an earlier sighting is kept), or None when the
    appointment is not cancelled.
    """
    if not (principal.is_admin or principal.role is Role.AGENT):
        raise Forbidden(_("Only France Services agents mark cancellations as seen."))
    async with db.write() as session:
        appointment = await session.scalar(sa.select(m.Appointment).where(
            m.Appointment.id == appointment_id, principal.appointment_filter()))
        if appointment is None:
            raise NotFound(_("There is no appointment {appointment_id}.",
                             appointment_id=appointment_id))
        if appointment.status != Status.CANCELLED.value:
            return None
        if appointment.cancel_seen_at is None:
            appointment.cancel_seen_at = now
        return appointment.cancel_seen_at
