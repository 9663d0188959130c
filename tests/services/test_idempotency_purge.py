"""Idempotency keys, which hold the usager's details, are deleted once their 24 hours pass."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from tests.conftest import DEFAULT_NOW
from tests.factories import make_site, make_user
from visio import models as m
from visio.db import Database
from visio.services import idempotency
from visio.services.idempotency import Claim, IdempotencyRequest, Replay

ANSWER = '{"id": "a-1", "usager": {"first_name": "Jeanne", "phone": "+33612345678"}}'


async def booked(db: Database, user_id: str, key: str, minutes: int = 0) -> None:
    """A key whose booking answered 201, ``minutes`` after DEFAULT_NOW."""
    request = IdempotencyRequest(user_id=user_id, key=key, request_hash="h" * 64)
    claim = await idempotency.claim(db=db, request=request,
                                    now=DEFAULT_NOW + timedelta(minutes=minutes))
    assert isinstance(claim, Claim)
    async with db.write() as session:
        await idempotency.record(session=session, claim=claim, status=201, body=ANSWER)


async def keys(db: Database) -> list[str]:
    async with db.read() as session:
        return sorted((await session.scalars(sa.select(m.IdempotencyKey.key))).all())


async def test_purge_deletes_only_keys_past_their_24_hours(db: Database) -> None:
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    await booked(db, agent.id, "early")
    await booked(db, agent.id, "later", minutes=30)

    just_before = DEFAULT_NOW + idempotency.KEY_LIFETIME - timedelta(seconds=1)
    assert await idempotency.purge_expired(db=db, now=just_before) == 0
    assert await keys(db) == ["early", "later"]

    assert await idempotency.purge_expired(db=db, now=DEFAULT_NOW + timedelta(hours=24)) == 1
    assert await keys(db) == ["later"]
    assert await idempotency.purge_expired(db=db, now=DEFAULT_NOW + timedelta(days=2)) == 1
    assert await keys(db) == []


async def test_a_replay_answers_the_stored_201_until_the_purge_then_the_key_is_new(
    db: Database,
) -> None:
    agent = await make_user(db, role="agent", sites=[await make_site(db)])
    await booked(db, agent.id, "k")
    request = IdempotencyRequest(user_id=agent.id, key="k", request_hash="h" * 64)

    replay = await idempotency.claim(db=db, request=request,
                                     now=DEFAULT_NOW + timedelta(hours=23))
    assert replay == Replay(status=201, body=ANSWER)

    later = DEFAULT_NOW + timedelta(hours=25)
    assert await idempotency.purge_expired(db=db, now=later) == 1
    assert isinstance(await idempotency.claim(db=db, request=request, now=later), Claim)
