"""The audit trail: one way to write an entry, the hash chain, its check, and its reading.

Every change is written with ``record`` in the transaction that makes it. Entries added
directly as ``m.AuditEntry`` are chained just the same: at flush, ``_chain`` locks the
chain head, gives each new entry its ``seq``, the previous entry's hash and its own
(``visio.domain.audit_chain``), stamps the request id, and moves the head. The lock is
held to the end of the writing transaction, so appends are serialised and the chain
never forks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from visio import models as m
from visio.access import Principal, audit_filter, may_read_audit
from visio.clock import utcnow
from visio.db import Database
from visio.domain.audit_chain import GENESIS, Link, digest

#: How the trail names who acted when nobody signed in did.
SYSTEM = "system"
USAGER = "usager"  # by the link of their messages
_HEAD = 1
_VERIFY_BATCH = 5000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: an account and its role, the usager by their link, or the system."""

    kind: str
    user_id: str | None = None


THE_SYSTEM = Actor(SYSTEM)
THE_USAGER = Actor(USAGER)


def may_read(principal: Principal) -> bool:
    """Whether the caller reads any of the trail (see ``visio.access``)."""
    return may_read_audit(principal)


def actor_of(principal: Principal) -> Actor:
    """A signed-in caller as the trail names them: their account and role."""
    return Actor(principal.role.value, principal.user_id)


def record(session: AsyncSession, *, action: str, actor: Actor, at: datetime | None = None,
           appointment_id: str | None = None, target_kind: str | None = None,
           target_id: str | None = None, site_id: str | None = None,
           fields: Iterable[str] = (), detail: Mapping[str, Any] | None = None,
           ) -> m.AuditEntry:
    """Append an entry to the trail in the caller's transaction (chained at flush).

    ``fields`` are the NAMES of what changed, never their values; ``detail`` holds what
    is no personal data (a version, a time, a reason code).
    """
    body = dict(detail or {})
    names = sorted(set(fields))
    if names:
        body["fields"] = names
    entry = m.AuditEntry(at=at or utcnow(), actor_id=actor.user_id, actor_kind=actor.kind,
                         action=action, appointment_id=appointment_id,
                         target_kind=target_kind, target_id=target_id, site_id=site_id,
                         detail=body)
    session.add(entry)
    return entry


def given(data: msgspec.Struct) -> list[str]:
    """The names of a request's fields that were given (not None): what it changes."""
    return [name for name in data.__struct_fields__ if getattr(data, name) is not None]


def link_of(entry: m.AuditEntry) -> Link:
    """What an entry's hash covers."""
    return Link(id=entry.id, at=entry.at, actor_id=entry.actor_id,
                actor_kind=entry.actor_kind, action=entry.action,
                appointment_id=entry.appointment_id, target_kind=entry.target_kind,
                target_id=entry.target_id, site_id=entry.site_id,
                request_id=entry.request_id, detail=entry.detail or {},
                prev_hash=entry.prev_hash or "")


def _request_id() -> str | None:
    # Imported here: the observability module sits above the services.
    from visio.observability import REQUEST_ID

    value = REQUEST_ID.get()
    return None if value == "-" else value[:64]


@event.listens_for(Session, "before_flush")
def _chain(session: Session, _context: UOWTransaction, _instances: object) -> None:
    """Chain the entries about to be inserted, in the order they were added."""
    new = [o for o in session.new if isinstance(o, m.AuditEntry) and o.hash is None]
    if not new:
        return
    head = session.execute(
        sa.select(m.AuditChain.seq, m.AuditChain.hash).where(m.AuditChain.id == _HEAD)
        .with_for_update()).one_or_none()
    seq, previous = (head.seq, head.hash) if head is not None else (0, GENESIS)
    request_id = _request_id()
    for entry in new:
        if entry.id is None:
            entry.id = m.new_id()
        if entry.at is None:
            entry.at = utcnow()
        if entry.detail is None:
            entry.detail = {}
        if entry.request_id is None:
            entry.request_id = request_id
        seq += 1
        entry.seq = seq
        entry.prev_hash = previous
        entry.hash = previous = digest(link_of(entry))
    if head is None:
        session.execute(sa.insert(m.AuditChain).values(id=_HEAD, seq=seq, hash=previous))
    else:
        session.execute(sa.update(m.AuditChain).where(m.AuditChain.id == _HEAD)
                        .values(seq=seq, hash=previous))


# ------------------------------------------------------------------ verification


@dataclass(frozen=True, slots=True)
class Problem:
    """Where the chain does not hold: the entry (by seq and id) and what is wrong."""

    seq: int
    entry_id: str | None
    kind: str  # changed, removed, reordered, unchained
    message: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``verify`` found: entries checked, the head, and every problem."""

    checked: int
    head_seq: int
    head_hash: str
    problems: tuple[Problem, ...]

    @property
    def intact(self) -> bool:
        """True when nothing was changed, removed or reordered."""
        return not self.problems


async def verify(*, db: Database, limit: int = 100) -> Verdict:
    """Walk the chain in ``seq`` order and say where it breaks (at most ``limit`` problems).

    An entry whose hash is not that of its content was *changed*; one whose previous hash
    is another entry's was *reordered*; a gap in ``seq``, a previous hash no entry has, or
    a head beyond the last entry means entries were *removed*.
    """
    problems: list[Problem] = []
    checked = 0
    async with db.read() as session:
        head = (await session.execute(sa.select(m.AuditChain.seq, m.AuditChain.hash)
                                      .where(m.AuditChain.id == _HEAD))).one_or_none()
        head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
        unchained = await session.scalar(
            sa.select(sa.func.count()).select_from(m.AuditEntry)
            .where(m.AuditEntry.seq.is_(None))) or 0
        if unchained:
            problems.append(Problem(0, None, "unchained",
                                    f"{unchained} entries carry no place in the chain"))
        last_seq, last_hash = 0, GENESIS
        while len(problems) < limit:
            batch = (await session.scalars(
                sa.select(m.AuditEntry).where(m.AuditEntry.seq > last_seq)
                .order_by(m.AuditEntry.seq).limit(_VERIFY_BATCH))).all()
            if not batch:
                break
            for entry in batch:
                assert entry.seq is not None
                checked += 1
                if digest(link_of(entry)) != entry.hash:
                    problems.append(Problem(entry.seq, entry.id, "changed",
                                            f"entry {entry.seq} ({entry.id}) was changed "
                                            "after it was written"))
                if entry.prev_hash != last_hash:
                    problems.append(await _misplaced(session, entry, last_seq))
                elif entry.seq != last_seq + 1:
                    problems.append(Problem(entry.seq, entry.id, "removed",
                                            f"entries {last_seq + 1} to {entry.seq - 1} "
                                            f"are missing before entry {entry.seq}"))
                last_seq, last_hash = entry.seq, entry.hash or ""
            session.expunge_all()
        if len(problems) < limit and (last_seq, last_hash) != (head_seq, head_hash):
            problems.append(Problem(last_seq, None, "removed",
                                    f"the chain's head is entry {head_seq}; the entries "
                                    f"after {last_seq} are missing"))
    return Verdict(checked=checked, head_seq=head_seq, head_hash=head_hash,
                   problems=tuple(problems[:limit]))


async def _misplaced(session: AsyncSession, entry: m.AuditEntry, last_seq: int) -> Problem:
    assert entry.seq is not None
    other = await session.scalar(sa.select(m.AuditEntry.seq)
                                 .where(m.AuditEntry.hash == entry.prev_hash).limit(1))
    if other is not None:
        return Problem(entry.seq, entry.id, "reordered",
                       f"entry {entry.seq} ({entry.id}) was written after entry {other}, "
                       f"not after entry {last_seq}: the entries were reordered")
    return Problem(entry.seq, entry.id, "removed",
                   f"the entry written before entry {entry.seq} ({entry.id}) is missing")


# ------------------------------------------------------------------ reading


@dataclass(frozen=True, slots=True)
class Query:
    """Which entries to read: a period, an actor, a target, a page."""

    start: datetime | None = None
    end: datetime | None = None
    actor: str | None = None  # an account id, or "system" / "usager"
    target: str | None = None  # an appointment, or any other target's id
    after: int = 0  # the seq of the last entry of the previous page
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Row:
    """One entry as an auditor reads it."""

    seq: int
    id: str
    at: datetime
    actor_id: str | None
    actor_kind: str | None
    actor_name: str | None
    action: str
    appointment_id: str | None
    target_kind: str | None
    target_id: str | None
    site_id: str | None
    request_id: str | None
    fields: tuple[str, ...]
    detail: dict[str, Any]
    hash: str


async def entries(*, db: Database, principal: Principal, query: Query) -> list[Row]:
    """The entries the caller may read, in chain order, one page (``limit`` at most)."""
    entry, user = m.AuditEntry, m.User
    site = sa.func.coalesce(entry.site_id, m.Appointment.site_id)
    statement = (
        sa.select(entry, user.display_name)
        .outerjoin(m.Appointment, m.Appointment.id == entry.appointment_id)
        .outerjoin(user, user.id == entry.actor_id)
        .where(entry.seq > query.after, audit_filter(principal, site))
        .order_by(entry.seq).limit(query.limit))
    if query.start is not None:
        statement = statement.where(entry.at >= query.start)
    if query.end is not None:
        statement = statement.where(entry.at < query.end)
    if query.actor in (SYSTEM, USAGER):
        statement = statement.where(entry.actor_kind == query.actor)
    elif query.actor:
        statement = statement.where(entry.actor_id == query.actor)
    if query.target:
        statement = statement.where(sa.or_(entry.appointment_id == query.target,
                                           entry.target_id == query.target))
    async with db.read() as session:
        found = (await session.execute(statement)).all()
    return [_row(e, name) for e, name in found]


def _row(entry: m.AuditEntry, name: str | None) -> Row:
    detail = dict(entry.detail or {})
    fields = tuple(str(f) for f in detail.pop("fields", ()) or ())
    return Row(seq=entry.seq or 0, id=entry.id, at=entry.at, actor_id=entry.actor_id,
               actor_kind=entry.actor_kind or (None if entry.actor_id else SYSTEM),
               actor_name=name, action=entry.action, appointment_id=entry.appointment_id,
               target_kind=entry.target_kind or ("appointment" if entry.appointment_id
                                                 else None),
               target_id=entry.target_id or entry.appointment_id, site_id=entry.site_id,
               request_id=entry.request_id, fields=fields, detail=detail,
               hash=entry.hash or "")
