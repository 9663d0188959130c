"""Idempotency-Key handling (IETF draft): claim a key, store the answer with the change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from visio import models as m
from visio.db import Database
from visio.domain.messages import _
from visio.errors import IdempotencyKeyReused, InvalidInput, RequestInFlight

KEY_LIFETIME = timedelta(hours=24)
# A claim older than this whose request never finished (the process died) is taken over.
ABANDONED_AFTER = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class IdempotencyRequest:
    user_id: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class Claim:
    """This request owns the key until it records its answer or releases it."""

    row_id: str


@dataclass(frozen=True, slots=True)
class Replay:
    """The stored answer of an earlier request with the same key and body."""

    status: int
    body: str


def check_key(key: str | None) -> str:
    """Validate the header value."""
    if key is None or not key.strip():
        raise InvalidInput(_("The Idempotency-Key header is required to book."))
    if len(key) > 255:
        raise InvalidInput(_("The Idempotency-Key header must be at most 255 characters."))
    return key.strip()


async def claim(*, db: Database, request: IdempotencyRequest, now: datetime) -> Claim | Replay:
    """Claim the caller's key, or return the stored answer, or refuse (in flight, reused)."""
    for _attempt in range(2):
        try:
            async with db.write() as session:
                row = await session.scalar(
                    sa.select(m.IdempotencyKey).where(
                        m.IdempotencyKey.user_id == request.user_id,
                        m.IdempotencyKey.key == request.key,
                    ).with_for_update()
                )
                if row is not None and row.expires_at <= now:
                    await session.delete(row)
                    await session.flush()
                    row = None
                if row is None:
                    new = m.IdempotencyKey(
                        user_id=request.user_id, key=request.key,
                        request_hash=request.request_hash, state="in_flight",
                        created_at=now, expires_at=now + KEY_LIFETIME,
                    )
                    session.add(new)
                    await session.flush()
                    return Claim(row_id=new.id)
                if row.request_hash != request.request_hash:
                    raise IdempotencyKeyReused(
                        _("This Idempotency-Key was already used with a different request; "
                          "use a new key for a new booking.")
                    )
                if row.state == "done":
                    assert row.response_status is not None
                    assert row.response_body is not None
                    return Replay(status=row.response_status, body=row.response_body)
                if row.created_at > now - ABANDONED_AFTER:
                    raise RequestInFlight(_(
                        "A request with this Idempotency-Key is still being processed; "
                        "retry in a moment."
                    ))
                row.created_at = now
                return Claim(row_id=row.id)
        except IntegrityError:
            # Another request inserted the same key at the same moment: read its state.
            continue
    raise RequestInFlight(
        _("A request with this Idempotency-Key is still being processed; retry in a moment.")
    )


async def record(*, session: AsyncSession, claim: Claim, status: int, body: str) -> None:
    """Store the answer in the caller's transaction, so it commits with the change."""
    await session.execute(
        sa.update(m.IdempotencyKey).where(m.IdempotencyKey.id == claim.row_id)
        .values(state="done", response_status=status, response_body=body)
    )


async def release(*, db: Database, claim: Claim) -> None:
    """Forget a claim whose request failed, so that a retry runs again."""
    async with db.write() as session:
        await session.execute(
            sa.delete(m.IdempotencyKey).where(
                m.IdempotencyKey.id == claim.row_id, m.IdempotencyKey.state == "in_flight"
            )
        )


async def answered(*, db: Database, user_id: str, key: str, now: datetime) -> bool:
    """Whether the caller's key already has its answer stored (a retry will replay it)."""
    async with db.read() as session:
        found = await session.scalar(sa.select(m.IdempotencyKey.id).where(
            m.IdempotencyKey.user_id == user_id, m.IdempotencyKey.key == key,
            m.IdempotencyKey.state == "done", m.IdempotencyKey.expires_at > now))
    return found is not None


async def purge_expired(*, db: Database, now: datetime) -> int:
    """Delete the keys whose lifetime has passed; they hold usagers' names and phones."""
    async with db.write() as session:
        result = await session.execute(
            sa.delete(m.IdempotencyKey).where(m.IdempotencyKey.expires_at <= now)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
