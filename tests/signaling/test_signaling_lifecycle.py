"""Lifetimes: shutdown closes sockets, Redis seats of a crashed instance expire."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from signaling import Member, RedisBroker, SignalingConfig, create_signaling_app
from tests.signaling.sigpeer import SignalingSocket
from tests.signaling.sigsupport import Keys, ServerFactory, ws_url


async def test_shutdown_closes_sockets(keys: Keys, host: object, room: str) -> None:
    """A stopping server closes its sockets with 1012: reconnect to the same URL."""
    from aiohttp.test_utils import TestServer

    config = SignalingConfig(public_keys=keys.public_keys, allowed_origins=("https://visio.test",))
    server = TestServer(create_signaling_app(config, host), host="127.0.0.1")  # type: ignore[arg-type]
    await server.start_server()
    sock = await SignalingSocket.open(ws_url(server))
    try:
        await sock.join(keys.token(room, "agent-1"))
        await server.close()
        assert await sock.wait_closed() == 1012
    finally:
        await sock.close()


async def test_seats_of_a_crashed_instance_expire(
    redis_url: str, redis_prefix: str, redis_cleanup: None
) -> None:
    crashed = RedisBroker(redis_url, instance_id="crashed", prefix=redis_prefix, presence_ttl=0.5)
    alive = RedisBroker(redis_url, instance_id="alive", prefix=redis_prefix, presence_ttl=30)

    async def ignore(envelope: object) -> None:
        return None

    await crashed.start(ignore)
    await alive.start(ignore)
    try:
        for i in range(4):
            member = Member(f"p{i}", "agent", f"c{i}", "crashed", can_rollback=True)
            assert (await crashed.join("room", member, 4)).admitted
        newcomer = Member("late", "agent", "c9", "alive", can_rollback=True)
        assert not (await alive.join("room", newcomer, 4)).admitted
        # Nobody refreshes the crashed instance's seats: they expire and free the room.
        # The four seats expire one by one (on a loaded machine their joins are spread out):
        # once one has, the newcomer is admitted, and joining again (replacing its own seat)
        # shows the others that remain, until none does.
        for _ in range(300):  # polls Redis state, at most 30 s
            result = await alive.join("room", newcomer, 4)
            if result.admitted and result.others == []:
                break
            await asyncio.sleep(0.1)
        assert result.admitted
        assert result.others == []
        # A refreshed seat does not expire.
        await alive.refresh("room", [result.member])
        assert not await alive.leave("room", "late", "other-connection")
        assert await alive.leave("room", "late", "c9")
    finally:
        await crashed.close()
        await alive.close()


async def test_seats_redis_lost_are_put_back_with_the_numbering_ahead(
    redis_url: str, redis_prefix: str, redis_cleanup: None
) -> None:
    """Redis restarted empty: the next presence refresh puts back the seats this instance
    holds, and the room's next event is numbered after everything its clients have seen."""
    broker = RedisBroker(redis_url, instance_id="one", prefix=redis_prefix, presence_ttl=30)

    async def ignore(envelope: object) -> None:
        return None

    await broker.start(ignore)
    try:
        seats = []
        for i in range(2):
            member = Member(f"p{i}", "agent", f"c{i}", "one", can_rollback=True)
            seats.append((await broker.join("room", member, 4)).member)
        client = redis.from_url(redis_url)
        try:
            lost = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
            assert lost
            await client.delete(*lost)  # what a restart without persistence leaves
        finally:
            await client.aclose()
        await broker.refresh("room", seats)
        newcomer = Member("p2", "agent", "c2", "one", can_rollback=True)
        result = await broker.join("room", newcomer, 4)
        assert result.admitted
        assert sorted(m.peer_id for m in result.others) == ["p0", "p1"]
        assert result.member.seq > max(seat.seq for seat in seats)
    finally:
        await broker.close()


async def test_same_instance_reconnect_keeps_delivery(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    server = await make_server()
    a = await SignalingSocket.open(ws_url(server))
    b = await SignalingSocket.open(ws_url(server))
    b2 = await SignalingSocket.open(ws_url(server))
    try:
        await a.join(keys.token(room, "agent-1"))
        await b.join(keys.token(room, "operator-1"))
        await b2.join(keys.token(room, "operator-1"))
        assert await b.wait_closed() == 4409
        offer = {"type": "offer", "sdp": "v=0\r\n"}
        await a.send({"type": "sdp", "to": "operator-1", "description": offer})
        assert (await b2.next("sdp"))["from"] == "agent-1"
    finally:
        for s in (a, b, b2):
            await s.close()
