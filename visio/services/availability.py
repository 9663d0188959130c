"""A staff member's availability: weekly rules, date overrides and absences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa

from visio import models as m
from visio.db import Database
from visio.domain.messages import _
from visio.errors import InvalidInput, NotFound
from visio.representations import wall_clock
from visio.services.accounts import Principal


@dataclass(frozen=True, slots=True)
class RuleInput:
    weekday: int
    opens: time
    closes: time
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass(frozen=True, slots=True)
class OverrideInput:
    day: date
    ranges: Sequence[tuple[time, time]]


@dataclass(frozen=True, slots=True)
class AbsenceInput:
    start: datetime
    end: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AvailabilityInput:
    rules: Sequence[RuleInput]
    overrides: Sequence[OverrideInput]
    absences: Sequence[AbsenceInput]



def _may_edit(principal: Principal, staff_id: str) -> bool:
    return principal.is_admin or principal.staff_id == staff_id


async def get_availability(*, db: Database, principal: Principal,
                           staff_id: str) -> dict[str, Any]:
    """A staff member's availability (their own, or any for an admin)."""
    if not _may_edit(principal, staff_id):
        raise NotFound(_("There is no staff member {staff_id} you can see.", staff_id=staff_id))
    async with db.read() as session:
        staff = await session.get(m.StaffMember, staff_id)
        if staff is None:
            raise NotFound(_("There is no staff member {staff_id}.", staff_id=staff_id))
        zone = await session.scalar(
            sa.select(m.Operator.timezone).join(m.Desk, m.Desk.operator_id == m.Operator.id)
            .where(m.Desk.id == staff.desk_id))
        rules = (await session.scalars(sa.select(m.AvailabilityRule).where(
            m.AvailabilityRule.staff_id == staff_id).order_by(
            m.AvailabilityRule.weekday, m.AvailabilityRule.opens))).all()
        overrides = (await session.scalars(sa.select(m.AvailabilityOverride).where(
            m.AvailabilityOverride.staff_id == staff_id).order_by(
            m.AvailabilityOverride.day, m.AvailabilityOverride.opens))).all()
        absences = (await session.scalars(sa.select(m.BusyPeriod).where(
            m.BusyPeriod.staff_id == staff_id, m.BusyPeriod.source == "absence").order_by(
            m.BusyPeriod.start))).all()
    by_day: dict[date, list[dict[str, str]]] = {}
    for o in overrides:
        ranges = by_day.setdefault(o.day, [])
        if o.opens is not None and o.closes is not None:
            ranges.append({"opens": wall_clock(o.opens), "closes": wall_clock(o.closes)})
    return {
        "staff_id": staff_id,
        "timezone": zone,
        "rules": [{"weekday": r.weekday, "opens": wall_clock(r.opens),
                   "closes": wall_clock(r.closes),
                   "valid_from": r.valid_from.isoformat() if r.valid_from else None,
                   "valid_until": r.valid_until.isoformat() if r.valid_until else None}
                  for r in rules],
        "overrides": [{"date": d.isoformat(), "ranges": rs} for d, rs in sorted(by_day.items())],
        "absences": [{"start": a.start.isoformat(), "end": a.end.isoformat(),
                      "reason": a.reason} for a in absences],
    }


async def replace_availability(*, db: Database, principal: Principal, staff_id: str,
                               data: AvailabilityInput) -> dict[str, Any]:
    """Replace a staff member's rules, overrides and absences in one transaction."""
    if not _may_edit(principal, staff_id):
        raise NotFound(_("There is no staff member {staff_id} you can edit.", staff_id=staff_id))
    for rule in data.rules:
        if rule.valid_from and rule.valid_until and rule.valid_until < rule.valid_from:
            raise InvalidInput(_("A rule's valid_until is before its valid_from."))
    if len({o.day for o in data.overrides}) != len(data.overrides):
        raise InvalidInput(_("Give each override date once, with all its ranges."))
    async with db.write() as session:
        if await session.get(m.StaffMember, staff_id) is None:
            raise NotFound(_("There is no staff member {staff_id}.", staff_id=staff_id))
        await session.execute(sa.delete(m.AvailabilityRule).where(
            m.AvailabilityRule.staff_id == staff_id))
        await session.execute(sa.delete(m.AvailabilityOverride).where(
            m.AvailabilityOverride.staff_id == staff_id))
        await session.execute(sa.delete(m.BusyPeriod).where(
            m.BusyPeriod.staff_id == staff_id, m.BusyPeriod.source == "absence"))
        for r in data.rules:
            session.add(m.AvailabilityRule(staff_id=staff_id, weekday=r.weekday, opens=r.opens,
                                           closes=r.closes, valid_from=r.valid_from,
                                           valid_until=r.valid_until))
        for o in data.overrides:
            if not o.ranges:
                session.add(m.AvailabilityOverride(staff_id=staff_id, day=o.day, opens=None,
                                                   closes=None))
            for opens, closes in o.ranges:
                session.add(m.AvailabilityOverride(staff_id=staff_id, day=o.day, opens=opens,
                                                   closes=closes))
        for a in data.absences:
            session.add(m.BusyPeriod(staff_id=staff_id, start=a.start, end=a.end,
                                     source="absence", reason=a.reason))
    return await get_availability(db=db, principal=principal, staff_id=staff_id)
