"""Staff members' own calendars: registered, fetched in the background, read as busy time.

The busy time is stored as ``BusyPeriod`` rows with source ``cal:<calendar id>``, which
slot search and booking already subtract (``visio.services.calendars.load_staff``);
a booking never waits on a fetch. A fetch that fails keeps the last good rows and
records its error code. Credentials are stored encrypted (Fernet) and never leave this
module but to authenticate the fetch. Each fetch first claims its calendar
(``fetching_until``), so that instances sharing the database fetch a calendar once at a
time; a claim left by an instance that died lapses.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic

import aiohttp
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from visio import models as m
from visio.access import Principal
from visio.calendars.busy import CalendarUnreadable
from visio.calendars.expand import Expander
from visio.calendars.fetch import (
    MAX_REDIRECTS,
    RESOLVE_SECONDS,
    TIMEOUT,
    FetchRefused,
    check_url,
    client_session,
    fetch,
)
from visio.db import Database
from visio.domain.messages import Message, _
from visio.errors import NotFound, Unprocessable
from visio.services import audit
from visio.settings import Settings

log = logging.getLogger("visio.calendars")

DEFAULT_HORIZON_DAYS = 56
FETCH_CONCURRENCY = 4
REEXPAND_AFTER = timedelta(hours=12)
#: How long a fetch may hold its calendar, besides the expansion's time: every redirect's
#: resolution and request at their timeouts, and a margin.
FETCH_LEASE = timedelta(seconds=(RESOLVE_SECONDS + (TIMEOUT.total or 30)) * (MAX_REDIRECTS + 1)
                        + 60)


def source_of(calendar_id: str) -> str:
    """The ``BusyPeriod.source`` of a calendar's busy time (fits its 40 characters)."""
    return f"cal:{calendar_id}"


def cipher(settings: Settings) -> Fernet:
    """The credentials cipher: VISIO_CALENDAR_KEY, or a key derived from the secret."""
    if settings.calendar_key:
        return Fernet(settings.calendar_key.encode())
    derived = hmac.new(settings.secret_key.encode(), b"visio calendar credentials",
                       hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never printed, even by a traceback's locals
        return "Credentials(…)"


def _seal(settings: Settings, username: str | None, password: str | None) -> str | None:
    if username is None and password is None:
        return None
    raw = json.dumps({"u": username or "", "p": password or ""}).encode()
    return cipher(settings).encrypt(raw).decode()


def _open(settings: Settings, sealed: str | None) -> Credentials | None:
    if sealed is None:
        return None
    try:
        values = json.loads(cipher(settings).decrypt(sealed.encode()))
    except InvalidToken as err:
        raise FetchRefused("credentials_unreadable") from err
    return Credentials(values["u"], values["p"])


async def _staff_exists(db: Database, staff_id: str) -> bool:
    async with db.read() as session:
        return await session.get(m.StaffMember, staff_id) is not None


async def register(*, db: Database, principal: Principal, settings: Settings, staff_id: str,
                   url: str, username: str | None, password: str | None,
                   now: datetime) -> m.ImportedCalendar:
    """Register a calendar; its address must not reach loopback, private or metadata hosts."""
    if not principal.may_import_calendars(staff_id):
        # As for availability: someone else's calendars do not exist for the caller.
        raise NotFound(_("There is no staff member {staff_id} you can see.", staff_id=staff_id))
    if not await _staff_exists(db, staff_id):
        raise NotFound(_("There is no staff member {staff_id}.", staff_id=staff_id))
    try:
        await check_url(url, allow_private=settings.calendar_allow_private)
    except FetchRefused as err:
        # (An address the pattern lets through but no URL parser reads, such as a broken
        # IPv6 literal, is refused here too: a business refusal, as the document cannot
        # say it.)
        raise Unprocessable(
            _("This calendar address cannot be used: it must be a public http(s) address, "
              "without a name or password in it."),
            extra={"field": "url", "reason": err.code}) from err
    async with db.write() as session:
        # Each calendar is fetched and expanded every round: their number is bounded.
        registered = await session.scalar(
            sa.select(sa.func.count()).select_from(m.ImportedCalendar)
            .where(m.ImportedCalendar.staff_id == staff_id))
        if (registered or 0) >= settings.calendars_per_staff:
            raise Unprocessable(
                _("A staff member may register at most {count} calendars: remove one "
                  "before adding another.", count=settings.calendars_per_staff),
                extra={"field": "url", "reason": "too_many_calendars"})
        calendar = m.ImportedCalendar(
            staff_id=staff_id, url=url, credentials=_seal(settings, username, password),
            status="pending", created_at=now, busy_count=0)
        session.add(calendar)
        await session.flush()
        # The address and credentials are the staff member's: named, not copied.
        audit.record(session, at=now, actor=audit.actor_of(principal),
                     action="calendar.imported", target_kind="calendar",
                     target_id=calendar.id,
                     fields=("url",) + (("credentials",) if calendar.credentials else ()),
                     detail={"staff_id": staff_id})
    return calendar


async def list_calendars(*, db: Database, principal: Principal,
                         staff_id: str) -> list[m.ImportedCalendar]:
    """A staff member's imported calendars, oldest first."""
    if not principal.may_import_calendars(staff_id):
        # As for availability: someone else's calendars do not exist for the caller.
        raise NotFound(_("There is no staff member {staff_id} you can see.", staff_id=staff_id))
    if not await _staff_exists(db, staff_id):
        raise NotFound(_("There is no staff member {staff_id}.", staff_id=staff_id))
    async with db.read() as session:
        return list((await session.scalars(
            sa.select(m.ImportedCalendar).where(m.ImportedCalendar.staff_id == staff_id)
            .order_by(m.ImportedCalendar.created_at, m.ImportedCalendar.id))).all())


async def remove(*, db: Database, principal: Principal, staff_id: str,
                 calendar_id: str) -> None:
    """Remove a calendar and the busy time it brought."""
    if not principal.may_import_calendars(staff_id):
        # As for availability: someone else's calendars do not exist for the caller.
        raise NotFound(_("There is no staff member {staff_id} you can see.", staff_id=staff_id))
    async with db.write() as session:
        calendar = await session.get(m.ImportedCalendar, calendar_id)
        if calendar is None or calendar.staff_id != staff_id:
            raise NotFound(_("There is no imported calendar {id}.", id=calendar_id))
        await session.execute(sa.delete(m.BusyPeriod).where(
            m.BusyPeriod.staff_id == staff_id, m.BusyPeriod.source == source_of(calendar_id)))
        await session.delete(calendar)
        audit.record(session, actor=audit.actor_of(principal), action="calendar.removed",
                     target_kind="calendar", target_id=calendar_id,
                     detail={"staff_id": staff_id})


def why_unread(code: str) -> Message:
    """The sentence shown to the staff member for a calendar's error code."""
    if code.startswith("http_"):
        return _("Its server refused to give it (HTTP status {status}).",
                 status=code.removeprefix("http_"))
    match code:
        case "too_many_events":
            return _("It asks for too many occurrences to be read (for example an event "
                     "repeated every minute or every second).")
        case "timeout":
            return _("Reading it took too long: its server answered too slowly, or its "
                     "repetition rules take too long to work out.")
        case "too_many_zones":
            return _("It declares too many time zones.")
        case "too_large":
            return _("It is larger than 5 MB.")
        case "broken":
            return _("It is not a valid iCalendar file.")
        case "not_ics":
            return _("The address does not give an iCalendar file (perhaps a sign-in page).")
        case "address_refused" | "bad_url" | "credentials_in_url" | "unresolvable":
            return _("Its address cannot be used: it must be a public http(s) address that "
                     "exists.")
        case "unreachable":
            return _("Its server could not be reached.")
        case "too_many_redirects":
            return _("Its server sends the request on too many times.")
        case "credentials_unreadable":
            return _("Its stored user name and password can no longer be read: remove the "
                     "calendar and register it again.")
    return _("It could not be read ({code}).", code=code)


# ---------------------------------------------------------------- fetching


@dataclass(frozen=True, slots=True)
class _Due:
    id: str
    staff_id: str
    url: str
    credentials: str | None
    etag: str | None
    last_modified: str | None
    zone: str
    horizon_days: int
    lease_until: datetime | None = None  # this instance's claim, once taken


async def _due(db: Database, *, now: datetime, every: timedelta,
               only: str | None = None) -> list[_Due]:
    horizon = (sa.select(sa.func.max(m.Service.horizon_days))
               .where(m.Service.operator_id == m.Desk.operator_id).scalar_subquery())
    query = (sa.select(m.ImportedCalendar, m.Operator.timezone, horizon)
             .join(m.StaffMember, m.StaffMember.id == m.ImportedCalendar.staff_id)
             .join(m.Desk, m.Desk.id == m.StaffMember.desk_id)
             .join(m.Operator, m.Operator.id == m.Desk.operator_id))
    if only is not None:
        query = query.where(m.ImportedCalendar.id == only)
    else:
        query = query.where(sa.or_(m.ImportedCalendar.last_attempt_at.is_(None),
                                   m.ImportedCalendar.last_attempt_at <= now - every))
    async with db.read() as session:
        rows = (await session.execute(query.order_by(m.ImportedCalendar.id))).all()
    due = []
    for calendar, zone, horizon in rows:
        # Conditional requests only while the last expansion is recent: the booking
        # horizon moves on even when the calendar does not change.
        fresh = calendar.last_success_at is not None \
            and calendar.last_success_at > now - REEXPAND_AFTER
        due.append(_Due(calendar.id, calendar.staff_id, calendar.url, calendar.credentials,
                        calendar.etag if fresh else None,
                        calendar.last_modified if fresh else None, zone,
                        horizon or DEFAULT_HORIZON_DAYS))
    return due


async def _store_busy(db: Database, due: _Due, intervals: list[tuple[datetime, datetime]],
                      fetched_etag: str | None, fetched_modified: str | None,
                      now: datetime) -> None:
    """Replace the calendar's busy time in one transaction: what vanished is freed."""
    async with db.write() as session:
        calendar = await session.get(m.ImportedCalendar, due.id)
        if calendar is None:
            return  # removed meanwhile
        source = source_of(due.id)
        await session.execute(sa.delete(m.BusyPeriod).where(
            m.BusyPeriod.staff_id == due.staff_id, m.BusyPeriod.source == source))
        if intervals:
            await session.execute(sa.insert(m.BusyPeriod), [
                {"id": m.new_id(), "staff_id": due.staff_id, "start": start, "end": end,
                 "source": source, "reason": ""} for start, end in intervals])
        calendar.status = "ok"
        calendar.last_attempt_at = calendar.last_success_at = now
        calendar.last_error = None
        calendar.etag = (fetched_etag or "")[:200] or None
        calendar.last_modified = (fetched_modified or "")[:100] or None
        calendar.busy_count = len(intervals)
        _release(calendar, due)


def _release(calendar: m.ImportedCalendar, due: _Due) -> None:
    # Only this instance's claim: one that lapsed may be another's by now.
    if due.lease_until is not None and calendar.fetching_until == due.lease_until:
        calendar.fetching_until = None


async def _claim(db: Database, due: _Due, *, now: datetime, until: datetime,
                 due_before: datetime | None) -> bool:
    """Take the calendar's fetch for this instance until ``until``; False when another
    instance holds it, or fetched it meanwhile (``due_before``)."""
    claimable = sa.or_(m.ImportedCalendar.fetching_until.is_(None),
                       m.ImportedCalendar.fetching_until <= now)
    if due_before is not None:
        claimable = sa.and_(claimable, sa.or_(
            m.ImportedCalendar.last_attempt_at.is_(None),
            m.ImportedCalendar.last_attempt_at <= due_before))
    async with db.write() as session:
        # One statement: on PostgreSQL a concurrent claim waits for this one's commit,
        # then finds the row taken; on SQLite writes take turns.
        result = await session.execute(
            sa.update(m.ImportedCalendar)
            .where(m.ImportedCalendar.id == due.id, claimable)
            .values(fetching_until=until)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def _record(db: Database, due: _Due, *, now: datetime, error: str | None) -> None:
    async with db.write() as session:
        calendar = await session.get(m.ImportedCalendar, due.id)
        if calendar is None:
            return
        _release(calendar, due)
        calendar.last_attempt_at = now
        if error is None:  # 304: the stored busy time is still right
            calendar.status, calendar.last_success_at, calendar.last_error = "ok", now, None
        else:  # the last good busy time stays
            calendar.status, calendar.last_error = "error", error


async def refresh(*, db: Database, http: aiohttp.ClientSession, settings: Settings,
                  expander: Expander, due: _Due, now: datetime) -> str | None:
    """Fetch one calendar and store its busy time; the error code, or None on success."""
    try:
        credentials = _open(settings, due.credentials)
        authorization = (aiohttp.encode_basic_auth(credentials.username, credentials.password)
                         if credentials else None)
        fetched = await fetch(http, due.url, allow_private=settings.calendar_allow_private,
                              authorization=authorization, etag=due.etag,
                              last_modified=due.last_modified)
        if fetched.body is None:
            await _record(db, due, now=now, error=None)
            return None
        window_start = now - timedelta(days=1)
        window_end = now + timedelta(days=due.horizon_days + 1)
        # In a child process with a memory limit and a time budget: a recurrence bomb
        # costs that child, never the server.
        intervals = await expander.busy(fetched.body, start=window_start, end=window_end,
                                        zone=due.zone)
    except (FetchRefused, CalendarUnreadable) as err:
        if err.code == "stopped":
            raise  # the server is stopping: this calendar is not at fault
        # Only the calendar's id and a code: URLs may hold secrets (Google's do).
        log.warning("calendar %s not refreshed: %s", due.id, err.code)
        await _record(db, due, now=now, error=err.code)
        return err.code
    await _store_busy(db, due, intervals, fetched.etag, fetched.last_modified, now)
    return None


async def refresh_due(*, db: Database, settings: Settings, now: datetime,
                      only: str | None = None,
                      expander: Expander | None = None) -> dict[str, str | None]:
    """Fetch every calendar due (or just ``only``); each calendar's error code or None.

    ``expander`` is the application's (whose children die with the server); without one,
    a new one with the settings' limits serves this call alone.
    """
    every = timedelta(minutes=settings.calendar_fetch_minutes)
    due = await _due(db, now=now, every=every, only=only)
    results: dict[str, str | None] = {}
    if not due:
        return results
    chosen = expander or Expander.from_settings(settings)
    started = monotonic()
    gate = asyncio.Semaphore(FETCH_CONCURRENCY)
    try:
        async with client_session(allow_private=settings.calendar_allow_private) as http:

            async def one(item: _Due) -> None:
                async with gate:
                    # The job's instant, moved on by its wait at the gate.
                    at = now + timedelta(seconds=monotonic() - started)
                    until = at + FETCH_LEASE + timedelta(seconds=chosen.seconds)
                    if not await _claim(db, item, now=at, until=until,
                                        due_before=None if only else now - every):
                        return  # another instance is fetching it, or just did
                    results[item.id] = await refresh(
                        db=db, http=http, settings=settings, expander=chosen,
                        due=dataclasses.replace(item, lease_until=until), now=now)

            await asyncio.gather(*(one(item) for item in due))
    finally:
        if expander is None:
            chosen.close()
    return results
