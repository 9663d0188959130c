"""What each notification says, in the recipient's language.

Every sentence comes from the catalogue (``_()``); dates are formatted by Babel for the
recipient's language in the site's zone. SMS texts are transliterated to GSM-7 and kept
to one 160-character segment when they can be (``visio.domain.gsm7.fit``).
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.dates import format_datetime

from visio import models as m
from visio.db import Database
from visio.domain import gsm7, places
from visio.domain.messages import Message, Param, Plain, _
from visio.domain.reminders import Kind
from visio.i18n import catalogue
from visio.usager_link import LinkKey, link

BRING = _("an identity document, your recent letters from this organisation, and your "
          "login details for its website if you have them")


@dataclass(frozen=True, slots=True)
class Facts:
    """What messages about one appointment say (read once per send)."""

    appointment_id: str
    version: int
    status: str
    start: datetime  # in the site's zone
    end: datetime
    zone: str
    operator: str
    theme_fr: str
    theme_nl: str
    #: Where the usager comes: the site and its address, or the bus and its stop.
    place: Message | Plain
    #: The name messages are signed with (the site, or the bus).
    site_name: str
    #: The site's number as its country dials it (« 03 28 68 00 00 »), if it has one.
    site_phone: str | None
    first_name: str
    last_initial: str
    usager_language: str
    usager_phone: str | None
    usager_email: str | None
    #: The bus stop (place and commune, the commune once) when the site is a bus.
    stop: str | None = None

    def theme(self, language: str) -> str:
        """The theme's label in ``language`` (French when there is no other)."""
        return self.theme_nl if language == "nl" and self.theme_nl else self.theme_fr

    def where(self, language: str) -> str:
        """The place in ``language``."""
        return catalogue(language).format_value(self.place)


async def load_facts(*, db: Database, appointment_id: str) -> Facts | None:
    """The facts of one appointment, or None if it does not exist."""
    async with db.read() as session:
        row = (await session.execute(
            sa.select(m.Appointment, m.Site, m.TourStop, m.Operator, m.Theme)
            .join(m.Site, m.Site.id == m.Appointment.site_id)
            .outerjoin(m.TourStop, m.TourStop.id == m.Appointment.stop_id)
            .join(m.Operator, m.Operator.id == m.Appointment.operator_id)
            .join(m.Theme, m.Theme.code == m.Appointment.theme)
            .where(m.Appointment.id == appointment_id))).one_or_none()
    if row is None:
        return None
    appointment, site, stop, operator, theme = row
    zone = ZoneInfo(site.timezone)
    place = (places.bus_place(site.name, stop.place, stop.commune) if stop is not None
             else Plain(places.site_place(site.name, site.address, site.commune)))
    return Facts(
        appointment_id=appointment.id, version=appointment.version,
        status=appointment.status, start=appointment.start.astimezone(zone),
        end=appointment.end.astimezone(zone), zone=site.timezone, operator=operator.name,
        theme_fr=theme.label_fr, theme_nl=theme.label_nl,
        place=place,
        site_name=site.name, site_phone=places.phone_display(site.phone, site.country),
        first_name=appointment.usager_first_name,
        last_initial=appointment.usager_last_name[:1].upper(),
        usager_language=appointment.usager_language, usager_phone=appointment.usager_phone,
        usager_email=appointment.usager_email,
        stop=places.stop_place(stop.place, stop.commune) if stop is not None else None)


@dataclass(frozen=True, slots=True)
class Email:
    """An e-mail's subject and bodies, and the invitation it carries (staff only)."""

    subject: str
    text: str
    html: str
    calendar: bytes | None = None
    method: str | None = None


def usager_url(facts: Facts, *, key: LinkKey, base_url: str) -> str:
    """The usager's link for this appointment (valid until its end)."""
    return link(base_url, key.issue(facts.appointment_id, facts.end))


def short_when(facts: Facts, language: str) -> str:
    """The start in few characters, for SMS (« lun. 30/11 09:00 »)."""
    return format_datetime(facts.start, "EEE d/MM HH:mm", tzinfo=facts.start.tzinfo,
                           locale=language)


_SUBJECTS: dict[str, Message] = {
    Kind.CONFIRMATION: _("Your video appointment with {operator} on {when}"),
    Kind.REMINDER: _("Reminder: your video appointment with {operator} on {when}"),
    Kind.SHORT_REMINDER: _("Reminder: your video appointment with {operator} on {when}"),
    Kind.RESCHEDULED: _("Your video appointment with {operator} has moved to {when}"),
    Kind.CANCELLED: _("Your video appointment with {operator} on {when} is cancelled"),
    Kind.STAFF_REQUEST: _("Video appointment: {theme}, {when}"),
    Kind.STAFF_CANCEL: _("Cancelled: video appointment {theme}, {when}"),
}
_INTROS: dict[str, Message] = {
    Kind.CONFIRMATION: _("Your video appointment is booked."),
    Kind.REMINDER: _("This is a reminder of your video appointment."),
    Kind.SHORT_REMINDER: _("This is a reminder of your video appointment."),
    Kind.RESCHEDULED: _("Your video appointment has moved to a new time."),
    Kind.CANCELLED: _("Your video appointment is cancelled. To book another one, come to "
                      "the France Services desk or call it."),
}
# An SMS is signed with the site's (or the bus's) name, then says when; the words are
# few so that, with the site's phone and the link, the confirmation and the reminder of
# the same day hold in one segment (the 48 h reminder may take two).
_SMS: dict[str, Message] = {
    Kind.CONFIRMATION: _("{sender}: appointment {when}."),
    Kind.REMINDER: _("{sender}: reminder, appointment {when}."),
    # Sent two hours before, or the evening before when that falls in the night: the
    # day is always written.
    Kind.SHORT_REMINDER: _("{sender}: reminder {when}."),
    Kind.RESCHEDULED: _("{sender}: your appointment moved to {when}."),
    Kind.CANCELLED: _("{sender}: your appointment of {when} is cancelled."),
}


def come(facts: Facts) -> Message:
    """Where to come, and when: the desk, or the bus at its stop."""
    if facts.stop is None:
        return _("Please come to the France Services desk a few minutes before the time.")
    return _("Please come to the bus stop a few minutes before the time: {stop}.",
             stop=Plain(facts.stop))


def call_the_desk(facts: Facts) -> Message | None:
    """The sentence giving the site's phone, if it has one (to rebook, once cancelled)."""
    if not facts.site_phone:
        return None
    if facts.status == "cancelled":
        return _("To book another appointment, call the desk on {phone}.",
                 phone=Plain(facts.site_phone))
    return _("If you cannot come, call the desk on {phone}.", phone=Plain(facts.site_phone))


def advice(facts: Facts) -> list[Message]:
    """What the usager's page and convocation tell them: where to come, whom to call."""
    said = [come(facts)] if facts.status == "booked" else []
    desk = call_the_desk(facts)
    return said + ([desk] if desk is not None else [])


def sms_text(facts: Facts, kind: str, language: str, url: str) -> str:
    """The SMS for ``kind``: in GSM-7, one segment when the essentials allow it.

    Essential: who writes, when, the bus stop, the site's phone and the link; the
    operator and what to bring go first when the segment is full.
    """
    cat = catalogue(language)
    parts = [cat.render(Message(_SMS[kind].msgid, {
        "sender": Plain(facts.site_name), "when": Plain(short_when(facts, language))}))]
    if facts.stop is not None and kind != Kind.CANCELLED:
        parts.append(cat.render(_("Stop: {stop}.", stop=Plain(facts.stop))))
    if facts.site_phone:
        parts.append(cat.render(_("Tel. {phone}", phone=Plain(facts.site_phone))))
    optional = [cat.render(_("With {operator}.", operator=Plain(facts.operator)))]
    if kind != Kind.CANCELLED:
        optional.append(cat.render(_("Bring ID and your letters.")))
    return gsm7.fit(" ".join(parts), optional, url)


def _paragraphs_html(lines: list[str], lang: str, title: str) -> str:
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head>"
            f'<body style="font-family:sans-serif;color:#111;background:#fff">{body}'
            "</body></html>")


def usager_email(facts: Facts, kind: str, language: str, url: str) -> Email:
    """The e-mail to the usager for ``kind``."""
    cat = catalogue(language)
    params: dict[str, Param] = {"operator": Plain(facts.operator), "when": facts.start}
    subject = cat.render(Message(_SUBJECTS[kind].msgid, params))
    lines = [cat.render(_("Hello {first_name},", first_name=Plain(facts.first_name))),
             cat.render(_INTROS[kind]),
             cat.render(_("When: {when}", when=facts.start)),
             cat.render(_("Where: {place}", place=facts.place)),
             cat.render(_("With: {operator}", operator=Plain(facts.operator)))]
    if kind != Kind.CANCELLED:
        lines.append(cat.render(come(facts)))
    desk = call_the_desk(dataclasses.replace(facts, status="cancelled")
                         if kind == Kind.CANCELLED else facts)
    if desk is not None:
        lines.append(cat.render(desk))
    if kind != Kind.CANCELLED:
        lines.append(cat.render(_("What to bring: {bring}", bring=BRING)))
        lines.append(cat.render(_("Your page (see, add to your calendar, cancel): {link}",
                                  link=Plain(url))))
    return Email(subject=subject, text="\n\n".join(lines) + "\n",
                 html=_paragraphs_html(lines, language, subject))


def staff_method(kind: str) -> Literal["REQUEST", "CANCEL"]:
    """The iTIP method of a staff message."""
    return "CANCEL" if kind == Kind.STAFF_CANCEL else "REQUEST"


def staff_email(facts: Facts, kind: str, language: str, *, calendar: bytes) -> Email:
    """The e-mail to the staff member, carrying ``calendar`` (the iTIP object) inline."""
    cat = catalogue(language)
    theme = facts.theme(language)
    subject = cat.render(Message(_SUBJECTS[kind].msgid,
                                 {"theme": Plain(theme), "when": facts.start}))
    cancelled = kind == Kind.STAFF_CANCEL
    lines = [cat.render(_("This video appointment is cancelled.") if cancelled
                        else _("A video appointment is booked with you.")),
             cat.render(_("When: {when}", when=facts.start)),
             cat.render(_("Where: {place}", place=facts.place)),
             cat.render(_("Theme: {theme}", theme=Plain(theme))),
             cat.render(_("Usager: {first_name} {initial}.",
                          first_name=Plain(facts.first_name),
                          initial=Plain(facts.last_initial)))]
    return Email(subject=subject, text="\n\n".join(lines) + "\n",
                 html=_paragraphs_html(lines, language, subject), calendar=calendar,
                 method=staff_method(kind))
