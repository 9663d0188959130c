"""When each notification of an appointment is due, and whether it is still worth sending.

Pure rules, no database: the outbox service plans rows with ``plan`` in the transaction
of the booking change, and the dispatcher asks ``verdict`` just before sending.

- Usagers hear from visio between 08:00 and 20:00 at the site (quiet hours outside).
  A notice (confirmation, change, cancellation) written in quiet hours waits for the
  next 08:00, unless that is after the start: then it goes at once (it is urgent).
  A reminder that would fall in quiet hours is moved *earlier*, to 19:30 the evening
  before (or the same evening), never before the booking and never so early that it no
  longer reminds: the 2 h SMS at most 14 h before the start.
- Staff members get their invitation at once, whatever the hour (it is their calendar).
- Nothing is sent for an appointment that has ended, nor a usager reminder after start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

QUIET_ENDS = time(8, 0)  # first minute usagers may hear from us
QUIET_STARTS = time(20, 0)  # from here on, nothing to usagers
MOVED_TO = time(19, 30)  # where an out-of-hours reminder is moved, the evening before
REMINDER_BEFORE = timedelta(hours=48)
SMS_BEFORE = timedelta(hours=2)
SMS_MOVED_AT_MOST = timedelta(hours=14)


class Kind(StrEnum):
    """What a message is about."""

    CONFIRMATION = "confirmation"
    REMINDER = "reminder"  # 48 h before
    SHORT_REMINDER = "short_reminder"  # SMS, 2 h before
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    STAFF_REQUEST = "staff_request"  # invitation, iTIP REQUEST
    STAFF_CANCEL = "staff_cancel"  # iTIP CANCEL


class Channel(StrEnum):
    """How it travels."""

    EMAIL = "email"
    SMS = "sms"


class Audience(StrEnum):
    """Who reads it."""

    USAGER = "usager"
    STAFF = "staff"


class Verdict(StrEnum):
    """What the dispatcher does with a claimed row."""

    SEND = "send"
    RETIRED = "retired"  # the appointment changed or was cancelled: this row is stale
    SKIPPED = "skipped"  # too late to be useful


@dataclass(frozen=True, slots=True)
class Planned:
    """One message to write to the outbox."""

    kind: Kind
    channel: Channel
    audience: Audience
    due: datetime


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone)


def in_quiet_hours(instant: datetime, zone: str) -> bool:
    """Whether ``instant`` falls outside 08:00–20:00 at the site."""
    clock = _local(instant, ZoneInfo(zone)).time()
    return not (QUIET_ENDS <= clock < QUIET_STARTS)


def earlier_in_window(instant: datetime, zone: str) -> datetime:
    """``instant`` if in the window, else 19:30 of the evening before it."""
    if not in_quiet_hours(instant, zone):
        return instant
    tz = ZoneInfo(zone)
    local = _local(instant, tz)
    day = local.date() if local.time() >= QUIET_STARTS else local.date() - timedelta(days=1)
    return datetime.combine(day, MOVED_TO, tzinfo=tz).astimezone(instant.tzinfo)


def later_in_window(instant: datetime, zone: str) -> datetime:
    """``instant`` if in the window, else the next 08:00."""
    if not in_quiet_hours(instant, zone):
        return instant
    tz = ZoneInfo(zone)
    local = _local(instant, tz)
    day = local.date() if local.time() < QUIET_ENDS else local.date() + timedelta(days=1)
    return datetime.combine(day, QUIET_ENDS, tzinfo=tz).astimezone(instant.tzinfo)


def notice_due(*, now: datetime, start: datetime, zone: str) -> datetime:
    """When a usager notice written ``now`` goes: now, or 08:00 if that is still before."""
    later = later_in_window(now, zone)
    return later if later < start else now


def _channels(phone: bool, email: bool) -> list[Channel]:
    return [c for c, ok in ((Channel.SMS, phone), (Channel.EMAIL, email)) if ok]


def reminders(*, now: datetime, start: datetime, zone: str, phone: bool,
              email: bool) -> list[Planned]:
    """The reminders of an appointment at ``start`` booked (or moved) ``now``."""
    planned: list[Planned] = []
    target = earlier_in_window(start - REMINDER_BEFORE, zone)
    # A reminder 48 h before makes no sense for a booking made less than 48 h before.
    if start - now > REMINDER_BEFORE and target > now:
        planned += [Planned(Kind.REMINDER, c, Audience.USAGER, target)
                    for c in _channels(phone, email)]
    if phone:
        target = earlier_in_window(start - SMS_BEFORE, zone)
        if target > now and start - target <= SMS_MOVED_AT_MOST:
            planned.append(Planned(Kind.SHORT_REMINDER, Channel.SMS, Audience.USAGER, target))
    return planned


def plan_booked(*, now: datetime, start: datetime, zone: str, phone: bool, email: bool,
                staff: bool) -> list[Planned]:
    """Everything a new booking sends: confirmation, reminders, the staff invitation."""
    due = notice_due(now=now, start=start, zone=zone)
    planned = [Planned(Kind.CONFIRMATION, c, Audience.USAGER, due)
               for c in _channels(phone, email)]
    planned += reminders(now=now, start=start, zone=zone, phone=phone, email=email)
    if staff:
        planned.append(Planned(Kind.STAFF_REQUEST, Channel.EMAIL, Audience.STAFF, now))
    return planned


def plan_rescheduled(*, now: datetime, start: datetime, zone: str, phone: bool,
                     email: bool, staff: bool) -> list[Planned]:
    """What a move sends: a notice, the new reminders, the updated invitation."""
    due = notice_due(now=now, start=start, zone=zone)
    planned = [Planned(Kind.RESCHEDULED, c, Audience.USAGER, due)
               for c in _channels(phone, email)]
    planned += reminders(now=now, start=start, zone=zone, phone=phone, email=email)
    if staff:
        planned.append(Planned(Kind.STAFF_REQUEST, Channel.EMAIL, Audience.STAFF, now))
    return planned


def plan_cancelled(*, now: datetime, start: datetime, zone: str, phone: bool, email: bool,
                   staff: bool) -> list[Planned]:
    """What a cancellation sends: a notice to the usager and CANCEL to the staff member."""
    planned: list[Planned] = []
    if now < start:
        due = notice_due(now=now, start=start, zone=zone)
        planned += [Planned(Kind.CANCELLED, c, Audience.USAGER, due)
                    for c in _channels(phone, email)]
    if staff:
        planned.append(Planned(Kind.STAFF_CANCEL, Channel.EMAIL, Audience.STAFF, now))
    return planned


def verdict(*, kind: str, audience: str, row_version: int, version: int, cancelled: bool,
            start: datetime, end: datetime, now: datetime) -> Verdict:
    """Whether a claimed row is sent, retired (stale version) or skipped (no longer useful)."""
    if row_version != version:
        return Verdict.RETIRED
    if cancelled and kind not in (Kind.CANCELLED, Kind.STAFF_CANCEL):
        return Verdict.RETIRED
    if now >= end:
        return Verdict.SKIPPED
    if audience == Audience.USAGER and now >= start:
        return Verdict.SKIPPED
    return Verdict.SEND


def backoff(attempts: int, *, base: float, cap: float) -> timedelta:
    """The wait before retry number ``attempts`` (1, 2…): doubling from ``base``, capped."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))
