"""Agenda feeds: secret addresses serving a staff member's, a desk's or a site's agenda.

The token is shown once, at creation, and stored as its SHA-256 digest. A feed answers
only while its owner could still create it (account active, same staff member, desk or
site); otherwise, and when unknown or revoked, it does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.access import Principal
from visio.calendars.feed import feed_ics
from visio.calendars.invitations import facts_where
from visio.db import Database
from visio.domain.messages import Message, Plain, _
from visio.errors import Forbidden, NotFound
from visio.security import digest, new_api_token
from visio.services import audit
from visio.services.accounts import _principal as principal_of_user

PAST = timedelta(weeks=2)
AHEAD = timedelta(weeks=8)
SCOPES = ("staff", "desk", "site")


@dataclass(frozen=True, slots=True)
class CreatedFeed:
    """A new feed and its token, which is never shown again."""

    feed: m.CalendarFeed
    token: str


def feed_path(token: str) -> str:
    """Where a feed is served, outside /api/v1."""
    return f"/calendars/{token}.ics"


async def _target(session: AsyncSession, scope: str,
                  target_id: str) -> tuple[Message, str] | None:
    """The feed's name and time zone, or None when its target does not exist."""
    if scope == "site":
        site = await session.get(m.Site, target_id)
        if site is None:
            return None
        return _("Video appointments at {site}", site=Plain(site.name)), site.timezone
    if scope == "desk":
        row = (await session.execute(
            sa.select(m.Desk.name, m.Operator.name, m.Operator.timezone)
            .join(m.Operator, m.Operator.id == m.Desk.operator_id)
            .where(m.Desk.id == target_id))).one_or_none()
        if row is None:
            return None
        return _("Video appointments of {desk} ({operator})", desk=Plain(row[0]),
                 operator=Plain(row[1])), row[2]
    person = (await session.execute(
        sa.select(m.StaffMember.display_name, m.Operator.timezone)
        .join(m.Desk, m.Desk.id == m.StaffMember.desk_id)
        .join(m.Operator, m.Operator.id == m.Desk.operator_id)
        .where(m.StaffMember.id == target_id))).one_or_none()
    if person is None:
        return None
    return _("Video appointments of {name}", name=Plain(person[0])), person[1]


async def create_feed(*, db: Database, principal: Principal, scope: str, target_id: str,
                      language: str, now: datetime) -> CreatedFeed:
    """A new feed for a staff member, a desk or a site the caller may subscribe to."""
    if not principal.may_subscribe(scope, target_id):
        raise Forbidden(_("You may not subscribe to this agenda."),
                        extra={"reason": "not_allowed"})
    token = new_api_token()
    async with db.write() as session:
        if await _target(session, scope, target_id) is None:
            raise NotFound(_("There is nothing to subscribe to at {id}.", id=target_id))
        feed = m.CalendarFeed(user_id=principal.user_id, scope=scope, target_id=target_id,
                              token_hash=digest(token), language=language, created_at=now)
        session.add(feed)
        await session.flush()
        audit.record(session, at=now, actor=audit.actor_of(principal), action="feed.created",
                     target_kind="feed", target_id=feed.id,
                     site_id=target_id if scope == "site" else None,
                     detail={"scope": scope, "of": target_id})
    return CreatedFeed(feed, token)


async def list_feeds(*, db: Database, principal: Principal) -> list[m.CalendarFeed]:
    """The caller's live feeds, newest first (without tokens: only digests are kept)."""
    async with db.read() as session:
        return list((await session.scalars(
            sa.select(m.CalendarFeed)
            .where(m.CalendarFeed.user_id == principal.user_id,
                   m.CalendarFeed.revoked_at.is_(None))
            .order_by(m.CalendarFeed.created_at.desc(), m.CalendarFeed.id))).all())


async def revoke_feed(*, db: Database, principal: Principal, feed_id: str,
                      now: datetime) -> None:
    """Revoke one of the caller's feeds (admins: any); its address answers 404 from now."""
    async with db.write() as session:
        feed = await session.get(m.CalendarFeed, feed_id)
        if feed is None or feed.revoked_at is not None or (
                feed.user_id != principal.user_id and not principal.is_admin):
            raise NotFound(_("There is no agenda feed {id}.", id=feed_id))
        feed.revoked_at = now
        audit.record(session, at=now, actor=audit.actor_of(principal), action="feed.revoked",
                     target_kind="feed", target_id=feed.id,
                     site_id=feed.target_id if feed.scope == "site" else None,
                     detail={"scope": feed.scope, "of": feed.target_id})


def _scope_filter(feed: m.CalendarFeed) -> sa.ColumnElement[bool]:
    column = {"staff": m.Appointment.staff_id, "desk": m.Appointment.desk_id,
              "site": m.Appointment.site_id}[feed.scope]
    return column == feed.target_id


async def render_feed(*, db: Database, token: str, now: datetime, base_url: str,
                      organizer: str) -> bytes | None:
    """The feed's iCalendar text, or None when there is no live feed for this token."""
    async with db.read() as session:
        feed = (await session.scalars(sa.select(m.CalendarFeed).where(
            m.CalendarFeed.token_hash == digest(token),
            m.CalendarFeed.revoked_at.is_(None)))).one_or_none()
        if feed is None:
            return None
        owner = await session.get(m.User, feed.user_id)
        if owner is None or not owner.active:
            return None
        principal = await principal_of_user(session=session, user=owner)
        if not principal.may_subscribe(feed.scope, feed.target_id):
            return None
        target = await _target(session, feed.scope, feed.target_id)
        if target is None:
            return None
        name, zone = target
        facts = await facts_where(session, sa.and_(
            _scope_filter(feed),
            m.Appointment.start >= now - PAST, m.Appointment.start < now + AHEAD,
            # Cancelled appointments stay (STATUS:CANCELLED) until they are past.
            sa.or_(m.Appointment.status != "cancelled", m.Appointment.end > now),
        ), base_url=base_url)
    return feed_ics(facts=facts, language=feed.language, organizer=organizer, name=name,
                    zone=zone, now=now)
