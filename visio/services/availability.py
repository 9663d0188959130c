"""A staff member's availability: weekly rules, date overrides and absences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from visio import models as m
from visio.access import Principal
from visio.contract import bodies as api
from visio.db import Database
from visio.domain.messages import _
from visio.errors import NotFound, Unprocessable
from visio.services.directory import ranges_of


@dataclass(frozen=True, slots=True)
class AvailabilityDetails:
    """A staff member's weekly rules, date overrides and absences, with their zone."""

    staff_id: str
    zone: str
    rules: Sequence[m.AvailabilityRule]
    overrides: Sequence[m.AvailabilityOverride]
    absences: Sequence[m.BusyPeriod]


async def get_availability(*, db: Database, principal: Principal,
                           staff_id: str) -> AvailabilityDetails:
    """A staff member's availability (their own, or any for an admin)."""
    if not principal.may_edit_availability(staff_id):
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
    return AvailabilityDetails(staff_id, zone or "Europe/Paris", rules, overrides, absences)


async def replace_availability(*, db: Database, principal: Principal, staff_id: str,
                               data: api.AvailabilityUpdate) -> AvailabilityDetails:
    """Replace a staff member's rules, overrides and absences in one transaction."""
    if not principal.may_edit_availability(staff_id):
        raise NotFound(_("There is no staff member {staff_id} you can edit.", staff_id=staff_id))
    rules = []
    for index, rule in enumerate(data.rules):
        if rule.valid_from and rule.valid_until and rule.valid_until < rule.valid_from:
            raise Unprocessable(_("A rule's valid_until is before its valid_from."),
                               extra={"field": f"rules[{index}].valid_until"})
        (opens, closes), = ranges_of([api.Range(opens=rule.opens, closes=rule.closes)],
                                   f"rules[{index}]")
        rules.append((rule, opens, closes))
    overrides = [(o.date, ranges_of(o.ranges, f"overrides[{i}].ranges"))
                 for i, o in enumerate(data.overrides)]
    for index, absence in enumerate(data.absences):
        if absence.end <= absence.start:
            raise Unprocessable(_("An absence must end after it starts."),
                               extra={"field": f"absences[{index}].end"})
        if absence.end - absence.start > timedelta(days=366):
            raise Unprocessable(_("An absence cannot be longer than a year."),
                               extra={"field": f"absences[{index}].end"})
    if len({o.date for o in data.overrides}) != len(data.overrides):
        raise Unprocessable(_("Give each override date once, with all its ranges."))
    async with db.write() as session:
        if await session.get(m.StaffMember, staff_id) is None:
            raise NotFound(_("There is no staff member {staff_id}.", staff_id=staff_id))
        await session.execute(sa.delete(m.AvailabilityRule).where(
            m.AvailabilityRule.staff_id == staff_id))
        await session.execute(sa.delete(m.AvailabilityOverride).where(
            m.AvailabilityOverride.staff_id == staff_id))
        await session.execute(sa.delete(m.BusyPeriod).where(
            m.BusyPeriod.staff_id == staff_id, m.BusyPeriod.source == "absence"))
        for r, opens, closes in rules:
            session.add(m.AvailabilityRule(staff_id=staff_id, weekday=r.weekday, opens=opens,
                                           closes=closes, valid_from=r.valid_from,
                                           valid_until=r.valid_until))
        for day, ranges in overrides:
            if not ranges:
                session.add(m.AvailabilityOverride(staff_id=staff_id, day=day, opens=None,
                                                   closes=None))
            for opens, closes in ranges:
                session.add(m.AvailabilityOverride(staff_id=staff_id, day=day, opens=opens,
                                                   closes=closes))
        for a in data.absences:
            session.add(m.BusyPeriod(staff_id=staff_id, start=a.start, end=a.end,
                                     source="absence", reason=(a.reason or "").strip()))
    return await get_availability(db=db, principal=principal, staff_id=staff_id)
