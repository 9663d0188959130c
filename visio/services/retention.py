"""Personal data kept only as long as needed: one policy, one purge, in small batches.

What goes, and when (the README's "Retention" section gives each reason):

- ``usager_details``: the usager's name, phone, e-mail and the note for the operator,
  ``retention_usager_days`` after the appointment's end. The appointment row stays, with
  its site, operator, theme, times, status and who cancelled it: the figures need them.
- ``call_events``: a call's event log, ``retention_call_log_days`` after the event.
- ``messages``: a handled message's record (its recipient's address, the provider's
  answer), ``retention_message_days`` after it was sent, failed or dropped.
- ``idempotency_keys``: the stored booking answer (it holds the usager's details),
  24 hours after the request.
- ``login_failures``: failed logins (an address), once out of the throttling window.
- ``login_successes``: addresses known to an account, ``login_remember_days`` on.

Each batch is its own short transaction: ``purge_batch_size`` rows, chosen oldest first
(skipping rows another transaction holds, on PostgreSQL), then changed by primary key.
A booking never waits on the purge for longer than one batch, and the purge never
touches a booked time, so the slot search's caches stay valid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.db import Database
from visio.services import audit
from visio.settings import Settings

KINDS = ("usager_details", "call_events", "messages", "idempotency_keys", "login_failures",
         "login_successes")
#: Whatever is left of an erased usager's name.
ERASED = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """How long each kind of personal data is kept."""

    usager_details: timedelta
    call_events: timedelta
    messages: timedelta
    login_window: timedelta
    login_remember: timedelta
    batch: int = 500

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy the settings declare."""
        return cls(usager_details=timedelta(days=settings.retention_usager_days),
                   call_events=timedelta(days=settings.retention_call_log_days),
                   messages=timedelta(days=settings.retention_message_days),
                   login_window=timedelta(seconds=settings.login_window_seconds),
                   login_remember=timedelta(days=settings.login_remember_days),
                   batch=max(1, settings.purge_batch_size))


@dataclass(frozen=True, slots=True)
class _Kind:
    """A kind of data: its rows due at ``now``, and what the purge does to a batch."""

    table: Any
    key: Any
    due: Callable[[Policy, datetime], sa.ColumnElement[bool]]
    order: Any
    erase: dict[str, Any] | None = None  # None: the rows are deleted


_ERASE_USAGER = {"usager_first_name": ERASED, "usager_last_name": ERASED,
                 "usager_phone": None, "usager_email": None, "note": None,
                 "usager_search": ""}

_KINDS: dict[str, _Kind] = {
    "usager_details": _Kind(
        m.Appointment, m.Appointment.id,
        lambda p, now: sa.and_(m.Appointment.usager_erased_at.is_(None),
                               m.Appointment.end <= now - p.usager_details),
        m.Appointment.end, erase=_ERASE_USAGER),
    "call_events": _Kind(m.CallEventRow, m.CallEventRow.id,
                         lambda p, now: m.CallEventRow.at <= now - p.call_events,
                         m.CallEventRow.at),
    "messages": _Kind(m.OutboxRow, m.OutboxRow.id,
                      lambda p, now: m.OutboxRow.finished_at <= now - p.messages,
                      m.OutboxRow.finished_at),
    "idempotency_keys": _Kind(m.IdempotencyKey, m.IdempotencyKey.id,
                              lambda p, now: m.IdempotencyKey.expires_at <= now,
                              m.IdempotencyKey.expires_at),
    "login_failures": _Kind(m.LoginFailure, m.LoginFailure.id,
                            lambda p, now: m.LoginFailure.at <= now - p.login_window,
                            m.LoginFailure.at),
    "login_successes": _Kind(m.LoginSuccess, m.LoginSuccess.id,
                             lambda p, now: m.LoginSuccess.at <= now - p.login_remember,
                             m.LoginSuccess.at),
}


async def due(*, db: Database, policy: Policy, now: datetime) -> dict[str, int]:
    """How many rows of each kind a purge at ``now`` would erase or delete (a dry run)."""
    counts: dict[str, int] = {}
    async with db.read() as session:
        for name in KINDS:
            kind = _KINDS[name]
            counts[name] = int(await session.scalar(
                sa.select(sa.func.count()).select_from(kind.table)
                .where(kind.due(policy, now))) or 0)
    return counts


async def purge(*, db: Database, policy: Policy, now: datetime,
                kinds: tuple[str, ...] = KINDS) -> dict[str, int]:
    """Erase or delete what the policy no longer keeps; how many rows of each kind."""
    done: dict[str, int] = {}
    for name in kinds:
        done[name] = 0
        while True:
            async with db.write() as session:
                count = await _batch(session, _KINDS[name], policy, now, db.dialect)
            done[name] += count
            if count < policy.batch:
                break
            await asyncio.sleep(0)  # let the requests waiting on this process run
    if any(done.values()):
        async with db.write() as session:
            audit.record(session, at=now, actor=audit.THE_SYSTEM, action="retention.purged",
                         detail={k: v for k, v in done.items() if v})
    return done


async def _batch(session: AsyncSession, kind: _Kind, policy: Policy, now: datetime,
                 dialect: str) -> int:
    chosen = sa.select(kind.key).where(kind.due(policy, now)).order_by(kind.order) \
        .limit(policy.batch)
    if dialect == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    ids = list((await session.scalars(chosen)).all())
    if not ids:
        return 0
    if kind.erase is None:
        await session.execute(sa.delete(kind.table).where(kind.key.in_(ids)))
    else:
        await session.execute(sa.update(kind.table).where(kind.key.in_(ids))
                              .values(**kind.erase, usager_erased_at=now))
    return len(ids)
