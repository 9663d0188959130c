"""The one access policy: who may see, book, change, join and administer what.

Services ask the caller (a ``Principal``) and compare no role strings themselves. The
SQL filters scope every query to what the caller may see; out of scope reads as absent
(404), so nobody learns what exists elsewhere.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from visio import models as m
from visio.domain.kinds import Role, Status


class AppointmentLike(Protocol):
    """What the policy reads of an appointment."""

    @property
    def site_id(self) -> str: ...
    @property
    def operator_id(self) -> str: ...
    @property
    def desk_id(self) -> str: ...
    @property
    def staff_id(self) -> str: ...


class Placed(Protocol):
    """Where an appointment is held, and with whom."""

    @property
    def site_id(self) -> str: ...
    @property
    def operator_id(self) -> str: ...


KIOSK = "kiosk"
OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Seat:
    """Where a caller sits in an appointment's call."""

    role: str
    peer_id: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and what they may see and do."""

    user_id: str
    role: Role
    site_ids: frozenset[str] = frozenset()
    staff_id: str | None = None
    desk_id: str | None = None
    operator_id: str | None = None
    #: A coordinator's départements (its ``site_ids`` are their sites, read at login).
    departements: frozenset[str] = frozenset()

    # ------------------------------------------------------------ administration

    @property
    def is_admin(self) -> bool:
        """Administers the directory, accounts and every appointment."""
        return self.role is Role.ADMIN

    def may_administer(self) -> bool:
        """Create and change sites, operators, desks, services, closures and accounts."""
        return self.is_admin

    # ------------------------------------------------------------ sites and booking

    @property
    def is_site_scoped(self) -> bool:
        """Sees only its ``site_ids``: agents, and coordinators (their départements')."""
        return self.role in (Role.AGENT, Role.COORDINATOR)

    def sees_site(self, site_id: str) -> bool:
        """Agents see their own sites, coordinators their départements'; operator staff
        and admins see every site."""
        return not self.is_site_scoped or site_id in self.site_ids

    def may_book_at(self, site_id: str) -> bool:
        """Agents book at their sites, admins anywhere; operator staff never book."""
        return self.is_admin or (self.role is Role.AGENT and site_id in self.site_ids)

    def searchable_operator(self, operator_id: str | None) -> tuple[bool, str | None]:
        """Whether a slot search may run, and the operator it is narrowed to.

        Staff search only their own operator's slots; others search what they ask.
        """
        if self.role is Role.STAFF:
            if operator_id not in (None, self.operator_id):
                return False, None
            return True, self.operator_id
        return True, operator_id

    # ------------------------------------------------------------ appointments

    def sees(self, appointment: AppointmentLike) -> bool:
        """Agents see their sites' appointments, coordinators their départements', staff
        their operator's, admins all."""
        if self.is_admin:
            return True
        if self.is_site_scoped:
            return appointment.site_id in self.site_ids
        return appointment.operator_id == self.operator_id

    def may_change(self, appointment: AppointmentLike) -> bool:
        """Cancel or reschedule: the site's agents and admins (staff ask the agent)."""
        return self.is_admin or (self.role is Role.AGENT
                                 and appointment.site_id in self.site_ids)

    def seat(self, appointment: AppointmentLike) -> Seat | None:
        """The caller's seat in the call: the site's kiosk, or the desk's operator."""
        if self.role is Role.AGENT and appointment.site_id in self.site_ids:
            # One seat per appointment for the kiosk, whichever agent of the site opens it.
            return Seat(KIOSK, f"kiosk-{appointment.site_id}")
        if self.role is Role.STAFF and (self.staff_id == appointment.staff_id
                                        or self.desk_id == appointment.desk_id):
            return Seat(OPERATOR, f"staff-{self.user_id}")
        return None

    def may_test_call(self) -> bool:
        """Kiosks and operator staff check their devices with the echo peer."""
        return self.role in (Role.AGENT, Role.STAFF)

    # ------------------------------------------------------------ staff availability

    def may_edit_availability(self, staff_id: str) -> bool:
        """A staff member edits their own availability; admins anyone's."""
        return self.is_admin or self.staff_id == staff_id

    # ------------------------------------------------------------ calendars

    def may_subscribe(self, scope: str, target_id: str) -> bool:
        """Agenda feeds: staff for themselves and their desk, agents for their sites,
        admins for any staff member, desk or site."""
        if self.is_admin:
            return True
        if self.role is Role.STAFF:
            return (scope == "staff" and target_id == self.staff_id) or \
                (scope == "desk" and target_id == self.desk_id)
        return self.role is Role.AGENT and scope == "site" and target_id in self.site_ids

    def may_import_calendars(self, staff_id: str) -> bool:
        """Register, see and remove a staff member's own calendars: them, or an admin."""
        return self.is_admin or (self.role is Role.STAFF and self.staff_id == staff_id)

    # ------------------------------------------------------------ SQL scopes

    def appointment_filter(self) -> sa.ColumnElement[bool]:
        """The appointments this caller may see, as a WHERE clause."""
        if self.is_admin:
            return sa.true()
        if self.is_site_scoped:
            return m.Appointment.site_id.in_(sorted(self.site_ids))
        return m.Appointment.operator_id == (self.operator_id or "")

    def site_filter(self) -> sa.ColumnElement[bool]:
        """The sites this caller may see, as a WHERE clause."""
        if self.is_site_scoped:
            return m.Site.id.in_(sorted(self.site_ids))
        return sa.true()

    def desk_filter(self) -> sa.ColumnElement[bool]:
        """The desks this caller may see: a coordinator those serving its départements
        (or every département), staff their own, others every desk."""
        if self.role is Role.COORDINATOR:
            served = sa.select(m.DeskDepartement.desk_id).where(
                m.DeskDepartement.departement.in_(sorted(self.departements)))
            national = sa.select(m.DeskDepartement.desk_id)
            return sa.or_(m.Desk.id.in_(served), m.Desk.id.not_in(national))
        if self.role is Role.STAFF:
            return m.Desk.id == (self.desk_id or "")
        return sa.true()

    # ------------------------------------------------------------ outcomes and figures

    def may_correct_outcome(self, appointment: Placed) -> bool:
        """Mark or correct done / no-show: the site's agents, the operator's staff, admins."""
        if self.is_admin:
            return True
        if self.role is Role.AGENT:
            return appointment.site_id in self.site_ids
        return self.role is Role.STAFF and appointment.operator_id == self.operator_id

    def may_see_figures(self) -> bool:
        """Everyone signed in, each within their own scope."""
        return True


def principal_of(*, user_id: str, role: str, site_ids: Collection[str] = (),
                 staff_id: str | None = None, desk_id: str | None = None,
                 operator_id: str | None = None,
                 departements: Collection[str] = ()) -> Principal:
    """A principal from stored values (the role column holds a ``Role`` value)."""
    return Principal(user_id=user_id, role=Role(role), site_ids=frozenset(site_ids),
                     staff_id=staff_id, desk_id=desk_id, operator_id=operator_id,
                     departements=frozenset(departements))


def usager_may_cancel(*, status: str, start: datetime, now: datetime) -> bool:
    """The usager's link cancels its appointment while it is booked and has not begun."""
    return status == Status.BOOKED and now < start


# ------------------------------------------------------------ the audit trail

def coordinator_departements(principal: Principal) -> frozenset[str] | None:
    """The départements a coordinator oversees; None when the caller is no coordinator.

    """
    if principal.role is not Role.COORDINATOR:
        return None
    return principal.departements


def may_read_audit(principal: Principal) -> bool:
    """Administrators read the whole trail; coordinators their départements' part."""
    return principal.is_admin or coordinator_departements(principal) is not None


def audit_filter(principal: Principal,
                 site_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """The audit entries this caller may read, as a WHERE clause.

    ``site_id`` is the site an entry concerns (its own, or its appointment's). A
    coordinator reads the entries about sites of its départements; entries about no
    site (accounts, logins, staff) are for administrators only.
    """
    if principal.is_admin:
        return sa.true()
    departements = coordinator_departements(principal)
    if not departements:
        return sa.false()
    return site_id.in_(sa.select(m.Site.id)
                       .where(m.Site.departement.in_(sorted(departements)))
                       .scalar_subquery())
