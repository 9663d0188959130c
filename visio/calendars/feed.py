"""A subscribable agenda (RFC 5545 with RFC 7986's REFRESH-INTERVAL): one VEVENT per
appointment, as the invitations write it, so a feed and a mailed invitation agree."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from icalendar import Calendar, vDuration

from visio.calendars.invitations import InvitationFacts, invitation_event
from visio.calendars.zones import vtimezone
from visio.domain.messages import Message
from visio.i18n import catalogue

PRODID = "-//visio//visio agenda//EN"
REFRESH = timedelta(minutes=15)


def feed_ics(*, facts: Sequence[InvitationFacts], language: str, organizer: str,
             name: Message, zone: str, now: datetime) -> bytes:
    """The agenda; the same appointments give the same bytes (DTSTAMP is their last change)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", catalogue(language).render(name))
    calendar.add("name", catalogue(language).render(name))
    calendar.add("x-wr-timezone", zone)
    refresh = vDuration(REFRESH)
    refresh.params["VALUE"] = "DURATION"
    calendar.add("refresh-interval", refresh)
    calendar.add("x-published-ttl", vDuration(REFRESH))
    for tzid in sorted({zone, *(f.zone for f in facts)}):
        calendar.add_component(vtimezone(tzid))
    for fact in facts:
        # A feed address can leak: it never carries the usager's e-mail.
        shown = dataclasses.replace(fact, usager_email=None)
        calendar.add_component(invitation_event(
            facts=shown, language=language, organizer=organizer,
            dtstamp=fact.changed_at or now, cancelled=fact.status == "cancelled"))
    return bytes(calendar.to_ical())
