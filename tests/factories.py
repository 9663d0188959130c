"""Async factory functions for test data, written straight into the test's database."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from visio import models as m
from visio.db import Database
from visio.security import hash_password, password_hasher

PASSWORD = "correct horse battery staple"
FIXED_HOURS: dict[int, tuple[tuple[time, time], ...]] = {
    d: ((time(9), time(12)), (time(14), time(17))) for d in range(4)
} | {4: ((time(9), time(13)), (time(14), time(16)))}
STAFF_HOURS: dict[int, tuple[tuple[time, time], ...]] = {
    d: ((time(9), time(12)), (time(13, 30), time(17))) for d in range(5)
}
_HASHER = password_hasher()
_HASH = hash_password(_HASHER, PASSWORD)


def _uid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def make_site(
    db: Database, *, kind: str = "fixed", booths: int = 1, zone: str = "Europe/Paris",
    hours: Mapping[int, Sequence[tuple[time, time]]] = FIXED_HOURS, name: str | None = None,
    departement: str | None = "59", commune_insee: str | None = None,
) -> m.Site:
    """A France Services site with weekly hours (fixed) or none (itinerant), in the Nord."""
    async with db.write() as session:
        site = m.Site(name=name or _uid("Site"), kind=kind, commune="Hondschoote",
                      address="1 place de la mairie", timezone=zone, country="FR",
                      booths=booths, departement=departement, commune_insee=commune_insee)
        session.add(site)
        await session.flush()
        if kind == "fixed":
            for weekday, ranges in hours.items():
                for opens, closes in ranges:
                    session.add(m.SiteHours(site_id=site.id, weekday=weekday, opens=opens,
                                            closes=closes))
    return site


async def make_stop(
    db: Database, site: m.Site, day: date,
    hours: Sequence[Sequence[str]] = (("09:30", "12:30"), ("13:30", "16:00")),
    commune_insee: str | None = None,
) -> m.TourStop:
    """A dated stop of a bus (in the commune with that INSEE code, if given)."""
    async with db.write() as session:
        stop = m.TourStop(site_id=site.id, day=day, commune=_uid("Commune"),
                          place="Place du marché", hours=[list(h) for h in hours],
                          commune_insee=commune_insee)
        session.add(stop)
    return stop


@dataclass
class OperatorBundle:
    operator: m.Operator
    desk: m.Desk
    services: dict[str, m.Service]
    staff: list[m.StaffMember] = field(default_factory=list)

    @property
    def service(self) -> m.Service:
        return next(iter(self.services.values()))


async def make_operator(
    db: Database, *, country: str = "FR", languages: Sequence[str] = ("fr",),
    themes: Mapping[str, int] | Iterable[str] = ("famille",), buffer: int = 0,
    notice: int = 120, horizon: int = 56, staff: int = 1,
    hours: Mapping[int, Sequence[tuple[time, time]]] = STAFF_HOURS,
    departements: Sequence[str] = (), communes: Sequence[str] = (),
) -> OperatorBundle:
    """An operator with one desk, services (theme → duration) and staff with weekly hours.

    The desk serves ``departements`` (narrowed to ``communes``); none: every site.
    """
    durations = dict(themes) if isinstance(themes, Mapping) else {t: 30 for t in themes}
    zone = "Europe/Paris" if country == "FR" else "Europe/Brussels"
    kind = "national" if country == "FR" else "cross_border"
    async with db.write() as session:
        operator = m.Operator(name=_uid("Operator"), code=_uid("OP"), country=country,
                              kind=kind, languages=list(languages), timezone=zone)
        session.add(operator)
        await session.flush()
        desk = m.Desk(operator_id=operator.id, name=_uid("Desk"))
        session.add(desk)
        await session.flush()
        session.add_all(m.DeskDepartement(desk_id=desk.id, departement=d) for d in departements)
        session.add_all(m.DeskCommune(desk_id=desk.id, commune_insee=c,
                                      departement=c[:3] if c.startswith("97") else c[:2])
                        for c in communes)
        services = {}
        for theme, duration in durations.items():
            service = m.Service(operator_id=operator.id, theme=theme, duration_minutes=duration,
                                buffer_minutes=buffer, languages=list(languages),
                                notice_minutes=notice, horizon_days=horizon)
            session.add(service)
            services[theme] = service
        members = []
        for _ in range(staff):
            member = m.StaffMember(desk_id=desk.id, display_name=_uid("Staff"),
                                   languages=list(languages), active=True)
            session.add(member)
            await session.flush()
            members.append(member)
            for weekday, ranges in hours.items():
                for opens, closes in ranges:
                    session.add(m.AvailabilityRule(staff_id=member.id, weekday=weekday,
                                                   opens=opens, closes=closes,
                                                   valid_from=None, valid_until=None))
    return OperatorBundle(operator=operator, desk=desk, services=services, staff=members)


async def make_user(
    db: Database, *, role: str, sites: Sequence[m.Site] = (),
    staff: m.StaffMember | None = None,
) -> m.User:
    """An account; its password is PASSWORD."""
    async with db.write() as session:
        user = m.User(email=f"{_uid(role)}@visio.test", display_name=_uid("User"),
                      password_hash=_HASH, role=role,
                      staff_id=staff.id if staff else None, active=True)
        session.add(user)
        await session.flush()
        for site in sites:
            session.add(m.UserSite(user_id=user.id, site_id=site.id))
    return user


async def auth_headers(client: TestClient[web.Request, web.Application],
                       user: m.User) -> dict[str, str]:
    """Log in through the API; the Authorization header to send."""
    response = await client.post("/api/v1/auth/token",
                                 json={"email": user.email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    token = (await response.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}


def usager(**overrides: Any) -> dict[str, Any]:
    """A usager as the booking body carries it."""
    return {"first_name": "Jeanne", "last_name": "Martin", "phone": "+33612345678",
            "email": None, "language": "fr", "consent": True, **overrides}


async def make_appointment(
    db: Database, *, site: m.Site, op: OperatorBundle, start: datetime, booked_by: m.User,
    minutes: int = 30, staff: m.StaffMember | None = None,
) -> m.Appointment:
    """An appointment row written directly (calls need one at the real current time)."""
    member = staff or op.staff[0]
    end = start + timedelta(minutes=minutes)
    async with db.write() as session:
        appointment = m.Appointment(
            status="booked", site_id=site.id, stop_id=None, booth=1,
            operator_id=op.operator.id, desk_id=op.desk.id, staff_id=member.id,
            service_id=op.service.id, theme=op.service.theme, start=start, end=end,
            staff_until=end, usager_first_name="Jeanne", usager_last_name="Martin",
            usager_phone=None, usager_email=None, usager_language="fr", usager_consent=True,
            booked_by=booked_by.id, version=1, created_at=start, updated_at=start)
        session.add(appointment)
    return appointment


async def read_appointment(db: Database, appointment_id: str) -> m.Appointment:
    """The stored appointment row, read straight from the database."""
    async with db.read() as session:
        appointment = await session.get(m.Appointment, appointment_id)
    assert appointment is not None, appointment_id
    return appointment


async def audit_trail(db: Database, appointment_id: str) -> list[m.AuditEntry]:
    """An appointment's audit entries, oldest first."""
    async with db.read() as session:
        return list((await session.scalars(
            sa.select(m.AuditEntry).where(m.AuditEntry.appointment_id == appointment_id)
            .order_by(m.AuditEntry.at, m.AuditEntry.id))).all())
