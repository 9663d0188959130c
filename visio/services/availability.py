"""A staff member's availability: weekly rules, date overrides and absences."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from visio import models as m
from visio.access import Principal
from visio.contract import bodies as api
from visio.db import Database
from visio.domain import absences
from visio.domain.intervals import Interval
from visio.domain.messages import N_, _
from visio.errors import Conflict, NotFound, Unprocessable
from visio.services import audit


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


WEEKDAYS = (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"),
            N_("Saturday"), N_("Sunday"))


def _checked_rules(data: api.AvailabilityUpdate) -> list[tuple[api.Rule, time, time]]:
    """The weekly rules, each refusal naming the row and the day as the editor shows them."""
    rules = []
    for index, rule in enumerate(data.rules):
        where = _("Row {row} ({weekday})", row=index + 1, weekday=_(WEEKDAYS[rule.weekday]))
        opens, closes = time.fromisoformat(rule.opens), time.fromisoformat(rule.closes)
        if opens >= closes:
            raise Unprocessable(
                _("{where}: the hours must start before they end ({opens} is not before "
                  "{closes}).", where=where, opens=opens, closes=closes),
                extra={"field": f"rules[{index}]"})
        if rule.valid_from and rule.valid_until and rule.valid_until < rule.valid_from:
            raise Unprocessable(_("{where}: the last day comes before the first day.",
                                  where=where), extra={"field": f"rules[{index}].valid_until"})
        rules.append((rule, opens, closes))
    return rules


def _checked_overrides(data: api.AvailabilityUpdate) -> list[tuple[date, list[tuple[time, time]]]]:
    overrides = []
    seen: set[date] = set()
    for index, override in enumerate(data.overrides):
        if override.date in seen:
            raise Unprocessable(_("{day} is given twice; give each day once, with all its "
                                  "hours.", day=override.date),
                                extra={"field": f"overrides[{index}].date"})
        seen.add(override.date)
        ranges = []
        for number, r in enumerate(override.ranges):
            opens, closes = time.fromisoformat(r.opens), time.fromisoformat(r.closes)
            if opens >= closes:
                raise Unprocessable(
                    _("{day}, hours {row}: the hours must start before they end ({opens} is "
                      "not before {closes}).", day=override.date, row=number + 1, opens=opens,
                      closes=closes),
                    extra={"field": f"overrides[{index}].ranges[{number}]"})
            ranges.append((opens, closes))
        overrides.append((override.date, ranges))
    return overrides


def _check_absences(data: api.AvailabilityUpdate) -> None:
    for index, absence in enumerate(data.absences):
        if absence.end <= absence.start:
            raise Unprocessable(_("The absence from {start} must end after it starts.",
                                  start=absence.start),
                                extra={"field": f"absences[{index}].end"})
        if absence.end - absence.start > timedelta(days=366):
            raise Unprocessable(_("The absence from {start} is longer than a year.",
                                  start=absence.start),
                                extra={"field": f"absences[{index}].end"})


@dataclass(frozen=True, slots=True)
class Affected:
    """A booked appointment that a new absence or closed day covers."""

    id: str
    start: datetime
    end: datetime
    site: str
    first_name: str


async def replace_availability(*, db: Database, principal: Principal, staff_id: str,
                               data: api.AvailabilityUpdate,
                               now: datetime) -> AvailabilityDetails:
    """Replace a staff member's rules, overrides and absences in one transaction.

    Booked appointments that a new absence or closed day covers are never cancelled:
    without ``data.confirm`` nothing is saved and they are listed (409); with it, they are
    saved and flagged "to rebook" until an agent moves or cancels them. Appointments no
    longer covered lose the flag.
    """
    if not principal.may_edit_availability(staff_id):
        raise NotFound(_("There is no staff member {staff_id} you can edit.", staff_id=staff_id))
    rules = _checked_rules(data)
    overrides = _checked_overrides(data)
    _check_absences(data)
    async with db.write() as session:
        staff = await session.get(m.StaffMember, staff_id)
        if staff is None:
            raise NotFound(_("There is no staff member {staff_id}.", staff_id=staff_id))
        zone = await session.scalar(
            sa.select(m.Operator.timezone).join(m.Desk, m.Desk.operator_id == m.Operator.id)
            .where(m.Desk.id == staff.desk_id)) or "Europe/Paris"
        upcoming = (await session.execute(
            sa.select(m.Appointment, m.Site.name).join(m.Site, m.Site.id == m.Appointment.site_id)
            .where(m.Appointment.staff_id == staff_id, m.Appointment.status == "booked",
                   m.Appointment.end > now)
            .order_by(m.Appointment.start).with_for_update(of=m.Appointment))).all()
        covered_ids = set(absences.covered(
            (absences.Booked(a.id, Interval(a.start, a.end)) for a, _site in upcoming),
            absences=[Interval(x.start, x.end) for x in data.absences],
            closed_days={day for day, ranges in overrides if not ranges},
            zone=ZoneInfo(zone)))
        newly = [Affected(a.id, a.start, a.end, site, a.usager_first_name)
                 for a, site in upcoming if a.id in covered_ids and a.to_rebook_since is None]
        if newly and not data.confirm:
            raise Conflict(
                _("Booked appointments fall in this absence or closed day (listed). Confirm "
                  "to save: they will not be cancelled, an agent will rebook them."),
                extra={"reason": "appointments_affected",
                       "appointments": [dataclasses.asdict(x) for x in newly]})
        for a, _site in upcoming:
            if a.id in covered_ids and a.to_rebook_since is None:
                a.to_rebook_since = now
            elif a.id not in covered_ids and a.to_rebook_since is not None:
                a.to_rebook_since = None
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
        for x in data.absences:
            session.add(m.BusyPeriod(staff_id=staff_id, start=x.start, end=x.end,
                                     source="absence", reason=(x.reason or "").strip()))
        audit.record(session, at=now, actor=audit.actor_of(principal),
                     action="availability.replaced", target_kind="staff", target_id=staff_id,
                     fields=("rules", "overrides", "absences"),
                     detail={"rules": len(rules), "overrides": len(overrides),
                             "absences": len(data.absences),
                             "to_rebook": sorted(a.id for a in newly)})
    return await get_availability(db=db, principal=principal, staff_id=staff_id)
