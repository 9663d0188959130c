"""iTIP invitations (RFC 5545, RFC 5546) for one appointment, in the recipient's language.

One stable UID per appointment; SEQUENCE is the appointment's version, so calendar
clients replace the event on every change instead of keeping a stale duplicate. Times
carry the site's TZID with a VTIMEZONE written with RRULEs (``visio.calendars.zones``).
The notifications mail the same bytes this module writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from icalendar import Alarm, Calendar, Event, vCalAddress, vText
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.calendars.zones import vtimezone
from visio.db import Database
from visio.domain import places
from visio.domain.messages import Message, Plain, _
from visio.errors import NotFound
from visio.i18n import catalogue

PRODID = "-//visio//visio invitations//EN"
ALARM_BEFORE = timedelta(minutes=15)

#: The usager's reminders: the evening before (to plan the trip), and one hour before.
EVENING_BEFORE = time(18)
HOUR_BEFORE = timedelta(hours=1)

__all__ = ["InvitationFacts", "invitation_ics", "load_invitation_facts", "uid_of",
           "usager_ics"]


@dataclass(frozen=True, slots=True)
class InvitationFacts:
    """What an invitation says about one appointment (no more personal data than this)."""

    appointment_id: str
    version: int
    status: str  # "booked" | "cancelled" | "done" | "no_show"
    start: datetime  # aware
    end: datetime  # aware
    zone: str  # the site's IANA zone
    theme_label: str
    operator_name: str
    #: The site's name and address, or the bus and its stop (``places.bus_place``).
    place: str | Message
    join_url: str
    bring: str  # what to bring ("" when nothing particular)
    usager_first_name: str
    usager_last_initial: str
    staff_email: str | None
    staff_name: str
    usager_email: str | None
    #: The theme's label by language (``theme_label`` when a language has none).
    theme_labels: Mapping[str, str] = field(default_factory=dict)
    #: When the appointment last changed (feeds use it as DTSTAMP, so they stay stable).
    changed_at: datetime | None = None
    #: The site (or the bus) and its number as its country dials it, for the usager.
    site_name: str = ""
    site_phone: str | None = None


def place_text(facts: InvitationFacts, language: str) -> str:
    """The place in ``language`` (a bus stop's words are translated)."""
    if isinstance(facts.place, Message):
        return catalogue(language).render(facts.place)
    return facts.place


def uid_of(appointment_id: str) -> str:
    """The appointment's stable iCalendar UID."""
    return f"{appointment_id}@visio"


def _address(email: str, name: str, *, role: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["CN"] = vText(name)
    address.params["ROLE"] = vText(role)
    address.params["PARTSTAT"] = vText("NEEDS-ACTION")
    address.params["RSVP"] = vText("FALSE")
    return address


def summary(facts: InvitationFacts, language: str) -> Message:
    """The event's title."""
    return _("Video appointment: {theme} with {operator}",
             theme=Plain(facts.theme_labels.get(language, facts.theme_label)),
             operator=Plain(facts.operator_name))


def description(facts: InvitationFacts, language: str, *, cancelled: bool) -> list[Message]:
    """The event's description, one message per line."""
    lines: list[Message] = []
    if cancelled:
        lines.append(_("This appointment is cancelled."))
    lines += [
        _("Theme: {theme}", theme=Plain(facts.theme_labels.get(language, facts.theme_label))),
        _("Operator: {operator}", operator=Plain(facts.operator_name)),
        _("Place: {place}", place=Plain(place_text(facts, language))),
        _("Usager: {first_name} {initial}.", first_name=Plain(facts.usager_first_name),
          initial=Plain(facts.usager_last_initial)),
    ]
    if not cancelled:
        lines.append(_("Join the call: {url}", url=Plain(facts.join_url)))
        lines.append(_("To bring: {bring}", bring=Plain(facts.bring)) if facts.bring else
                     _("To bring: an identity document and the letters about the request."))
    return lines


def invitation_event(*, facts: InvitationFacts, language: str, organizer: str,
                     dtstamp: datetime, cancelled: bool) -> Event:
    """The VEVENT of an appointment (also what agenda feeds list)."""
    words = catalogue(language)
    zone = ZoneInfo(facts.zone)
    event = Event()
    event.add("uid", uid_of(facts.appointment_id))
    event.add("sequence", facts.version)
    event.add("dtstamp", dtstamp.astimezone(UTC))
    event.add("dtstart", facts.start.astimezone(zone))
    event.add("dtend", facts.end.astimezone(zone))
    event.add("summary", words.render(summary(facts, language)))
    event.add("description", "\n".join(
        words.render(line) for line in description(facts, language, cancelled=cancelled)))
    event.add("location", place_text(facts, language))
    if facts.join_url and not cancelled:
        event.add("url", facts.join_url)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", _organizer(organizer))
    if facts.staff_email:
        event.add("attendee", _address(facts.staff_email, facts.staff_name,
                                       role="REQ-PARTICIPANT"))
    if facts.usager_email:
        event.add("attendee", _address(
            facts.usager_email, f"{facts.usager_first_name} {facts.usager_last_initial}.",
            role="REQ-PARTICIPANT"))
    if not cancelled:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("trigger", -ALARM_BEFORE)
        alarm.add("description", words.render(summary(facts, language)))
        event.add_component(alarm)
    return event


def _organizer(organizer: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{organizer}")
    address.params["CN"] = vText("visio")
    return address


def invitation_ics(*, facts: InvitationFacts, method: Literal["REQUEST", "CANCEL"],
                   language: str, organizer: str, dtstamp: datetime) -> bytes:
    """The iTIP object: REQUEST for a new or moved appointment, CANCEL for a cancelled one."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    calendar.add_component(vtimezone(facts.zone))
    calendar.add_component(invitation_event(
        facts=facts, language=language, organizer=organizer, dtstamp=dtstamp,
        cancelled=method == "CANCEL"))
    return bytes(calendar.to_ical())


def usager_ics(*, facts: InvitationFacts, language: str, organizer: str,
               dtstamp: datetime) -> bytes:
    """The usager's own calendar file: published, not an invitation.

    It names no staff member (the organizer is the site, with the service's address) and
    has no join link: the usager comes to the site or the bus stop. Its alarms ring the
    evening before at 18:00 in the site's zone, to plan the trip, and one hour before.
    """
    words = catalogue(language)
    zone = ZoneInfo(facts.zone)
    cancelled = facts.status == "cancelled"
    theme = facts.theme_labels.get(language, facts.theme_label)
    title = words.render(summary(facts, language))
    lines: list[Message] = [_("This appointment is cancelled.")] if cancelled else []
    lines += [_("Theme: {theme}", theme=Plain(theme)),
              _("Operator: {operator}", operator=Plain(facts.operator_name)),
              _("Place: {place}", place=Plain(place_text(facts, language)))]
    if facts.site_phone:
        lines.append(_("If you cannot come, call the desk on {phone}.",
                       phone=Plain(facts.site_phone)))
    event = Event()
    event.add("uid", uid_of(facts.appointment_id))
    event.add("sequence", facts.version)
    event.add("dtstamp", dtstamp.astimezone(UTC))
    event.add("dtstart", facts.start.astimezone(zone))
    event.add("dtend", facts.end.astimezone(zone))
    event.add("summary", title)
    event.add("description", "\n".join(words.render(line) for line in lines))
    event.add("location", place_text(facts, language))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    site = vCalAddress(f"mailto:{organizer}")
    site.params["CN"] = vText(facts.site_name or "France Services")
    event.add("organizer", site)
    if not cancelled:
        local_start = facts.start.astimezone(zone)
        evening = datetime.combine(local_start.date() - timedelta(days=1), EVENING_BEFORE,
                                   zone)
        # An absolute trigger must say VALUE=DATE-TIME, or readers take it for a duration.
        # Booked after that evening, the file has no alarm some readers would ring at once.
        triggers: list[tuple[datetime | timedelta, str]] = [(-HOUR_BEFORE, "DURATION")]
        if evening > dtstamp:
            triggers.insert(0, (evening.astimezone(UTC), "DATE-TIME"))
        for trigger, value in triggers:
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("trigger", trigger, parameters={"VALUE": value})
            alarm.add("description", title)
            event.add_component(alarm)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add_component(vtimezone(facts.zone))
    calendar.add_component(event)
    return bytes(calendar.to_ical())


async def load_invitation_facts(*, db: Database, appointment_id: str,
                                base_url: str) -> InvitationFacts:
    """The facts of one appointment (no access check: callers check ``Principal.sees``)."""
    async with db.read() as session:
        found = await facts_where(session, m.Appointment.id == appointment_id,
                                  base_url=base_url)
    if not found:
        raise NotFound(_("There is no appointment {appointment_id}.",
                         appointment_id=appointment_id))
    return found[0]


async def facts_where(session: AsyncSession, where: sa.ColumnElement[bool], *,
                      base_url: str) -> list[InvitationFacts]:
    """The facts of every appointment matching ``where``, by start (one query, plus one
    for the staff members' e-mail addresses)."""
    rows = (await session.execute(
        sa.select(m.Appointment, m.Site, m.TourStop, m.Operator, m.Theme, m.StaffMember)
        .join(m.Site, m.Site.id == m.Appointment.site_id)
        .outerjoin(m.TourStop, m.TourStop.id == m.Appointment.stop_id)
        .join(m.Operator, m.Operator.id == m.Appointment.operator_id)
        .join(m.Theme, m.Theme.code == m.Appointment.theme)
        .join(m.StaffMember, m.StaffMember.id == m.Appointment.staff_id)
        .where(where).order_by(m.Appointment.start, m.Appointment.id)
    )).all()
    staff_ids = sorted({row[5].id for row in rows})
    emails: dict[str, str] = {}
    if staff_ids:
        for staff_id, email in (await session.execute(
            sa.select(m.User.staff_id, m.User.email)
            .where(m.User.staff_id.in_(staff_ids), m.User.active)
            .order_by(m.User.created_at.desc(), m.User.id.desc())
        )).all():
            if staff_id is not None:
                emails[staff_id] = email  # the oldest account, read last, wins
    found = []
    for appointment, site, stop, operator, theme, staff in rows:
        place: str | Message = (
            places.bus_place(site.name, stop.place, stop.commune) if stop is not None
            else places.site_place(site.name, site.address, site.commune))
        found.append(InvitationFacts(
            appointment_id=appointment.id, version=appointment.version,
            status=appointment.status, start=appointment.start, end=appointment.end,
            zone=site.timezone, theme_label=theme.label_fr, operator_name=operator.name,
            place=place, join_url=join_url(base_url, appointment.id), bring="",
            usager_first_name=appointment.usager_first_name,
            usager_last_initial=appointment.usager_last_name[:1].upper(),
            staff_email=emails.get(staff.id), staff_name=staff.display_name,
            # Without consent the usager is no attendee: calendar clients mail attendees.
            usager_email=appointment.usager_email if appointment.usager_consent else None,
            theme_labels={"fr": theme.label_fr, "nl": theme.label_nl},
            changed_at=appointment.updated_at, site_name=site.name,
            site_phone=places.phone_display(site.phone, site.country),
        ))
    return found


#: The call page (``visio.web``): invitations, feeds and .ics files link to it.
CALL_PAGE = "/call/{id}"


def join_url(base_url: str, appointment_id: str) -> str:
    """The page where staff and kiosk join the appointment's call (a login leads back)."""
    return base_url.rstrip("/") + CALL_PAGE.format(id=appointment_id)
