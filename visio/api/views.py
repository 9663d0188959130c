"""Stored rows and domain values as the contract's response types."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from visio import models as m
from visio.contract import bodies as api
from visio.domain.contact import phone_type
from visio.domain.kinds import Country, Language, OperatorKind, Role, SiteKind, Status, Weekday
from visio.domain.slot_types import Slot
from visio.services.accounts import UserSummary
from visio.services.availability import AvailabilityDetails
from visio.services.booking import Booked
from visio.services.directory import WEEKDAYS, OperatorDetails, SiteDetails


def hhmm(value: time) -> str:
    """A wall-clock time as HH:MM."""
    return value.strftime("%H:%M")


def local(value: datetime, zone: str) -> datetime:
    """An instant with the offset of ``zone`` (the wall clock people at the site read)."""
    return value.astimezone(ZoneInfo(zone))


def appointment(booked: Booked) -> api.Appointment:
    a, zone = booked.appointment, booked.zone
    return api.Appointment(
        id=a.id, status=Status(a.status), start=local(a.start, zone), end=local(a.end, zone),
        site_id=a.site_id, stop_id=a.stop_id, booth=a.booth, operator_id=a.operator_id,
        desk_id=a.desk_id, staff_id=a.staff_id, service_id=a.service_id, theme=a.theme,
        usager=api.Usager(first_name=a.usager_first_name, last_name=a.usager_last_name,
                          phone=a.usager_phone, email=a.usager_email,
                          phone_type=None if a.usager_phone is None
                          else phone_type(a.usager_phone),
                          language=Language(a.usager_language), consent=a.usager_consent),
        version=a.version, created_at=local(a.created_at, zone),
        updated_at=local(a.updated_at, zone), cancel_reason=a.cancel_reason,
        to_rebook_since=local(a.to_rebook_since, zone) if a.to_rebook_since else None,
        note=a.note,
    )


def slot(s: Slot, zone: str) -> api.Slot:
    return api.Slot(start=local(s.start, zone), end=local(s.end, zone),
                    operator_id=s.operator_id, desk_id=s.desk_id, staff_id=s.staff_id,
                    service_id=s.service_id, stop_id=s.stop_id)


def stop(row: m.TourStop) -> api.Stop:
    hours = [api.Range(opens=a, closes=b) for a, b in row.hours]
    return api.Stop(id=row.id, date=row.day, commune=row.commune, place=row.place,
                    opens=hours[0].opens if hours else "",
                    closes=hours[-1].closes if hours else "", hours=hours,
                    commune_insee=row.commune_insee)


def site(details: SiteDetails) -> api.Site:
    s = details.site
    opening: dict[Weekday, list[api.Range]] = {}
    for row in details.hours:
        opening.setdefault(WEEKDAYS[row.weekday], []).append(
            api.Range(opens=hhmm(row.opens), closes=hhmm(row.closes)))
    return api.Site(id=s.id, name=s.name, kind=SiteKind(s.kind), commune=s.commune,
                    address=s.address, timezone=s.timezone, country=Country(s.country),
                    booths=s.booths, opening_hours=opening,
                    stops=[stop(x) for x in details.stops], departement=s.departement,
                    commune_insee=s.commune_insee, phone=s.phone)


def operator(details: OperatorDetails) -> api.OperatorDetail:
    o = details.operator
    return api.OperatorDetail(
        id=o.id, name=o.name, code=o.code, country=Country(o.country),
        kind=OperatorKind(o.kind), languages=list(o.languages), timezone=o.timezone,
        themes=list(details.themes), desks=[desk(d) for d in details.desks])


def desk(row: m.Desk) -> api.Desk:
    return api.Desk(id=row.id, operator_id=row.operator_id, name=row.name)


def theme(row: m.Theme) -> api.Theme:
    return api.Theme(id=row.code, code=row.code, label_fr=row.label_fr, label_nl=row.label_nl)


def service(row: m.Service) -> api.Service:
    return api.Service(id=row.id, operator_id=row.operator_id, theme=row.theme,
                       duration_minutes=row.duration_minutes,
                       buffer_minutes=row.buffer_minutes, languages=list(row.languages),
                       notice_minutes=row.notice_minutes, horizon_days=row.horizon_days)


def closure(row: m.ClosureDay, cancelled: Sequence[str]) -> api.Closure:
    return api.Closure(id=row.id, date=row.day, reason=row.reason, site_id=row.site_id,
                       operator_id=row.operator_id, desk_id=row.desk_id,
                       cancelled_appointment_ids=list(cancelled))


def user(u: UserSummary) -> api.User:
    return api.User(id=u.id, email=u.email, display_name=u.display_name, role=Role(u.role),
                    site_ids=list(u.site_ids), staff_id=u.staff_id, desk_id=u.desk_id,
                    departements=list(u.departements))


def availability(d: AvailabilityDetails) -> api.Availability:
    by_day: dict[Any, list[api.Range]] = {}
    for o in d.overrides:
        ranges = by_day.setdefault(o.day, [])
        if o.opens is not None and o.closes is not None:
            ranges.append(api.Range(opens=hhmm(o.opens), closes=hhmm(o.closes)))
    return api.Availability(
        staff_id=d.staff_id, timezone=d.zone,
        rules=[api.Rule(weekday=r.weekday, opens=hhmm(r.opens), closes=hhmm(r.closes),
                        valid_from=r.valid_from, valid_until=r.valid_until) for r in d.rules],
        overrides=[api.DateOverride(date=day, ranges=ranges)
                   for day, ranges in sorted(by_day.items())],
        absences=[api.Absence(start=local(a.start, d.zone), end=local(a.end, d.zone),
                              reason=a.reason or None) for a in d.absences],
    )


def ice_servers(servers: Sequence[dict[str, Any]]) -> list[api.IceServer]:
    out = []
    for server in servers:
        urls = server.get("urls", [])
        out.append(api.IceServer(urls=[urls] if isinstance(urls, str) else list(urls),
                                 username=server.get("username"),
                                 credential=server.get("credential")))
    return out


def notification(r: m.OutboxRow) -> api.Notification:
    """One message of an appointment and its outcome."""
    return api.Notification(
        id=r.id, appointment_version=r.appointment_version,
        kind=r.kind,  # type: ignore[arg-type]
        channel=r.channel,  # type: ignore[arg-type]
        audience=r.audience,  # type: ignore[arg-type]
        recipient=r.recipient, language=r.language, due_at=r.due_at,
        status=r.status,  # type: ignore[arg-type]
        attempts=r.attempts, last_error=r.last_error, provider_reference=r.provider_ref,
        finished_at=r.finished_at)
