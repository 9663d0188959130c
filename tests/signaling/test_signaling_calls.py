"""Real calls: aiortc peers negotiating through the signaling server, on one or two instances."""

from __future__ import annotations

import asyncio

from tests.signaling.sigpeer import RtcPeer, SignalingSocket
from tests.signaling.sigsupport import FakeHost, Keys, ServerFactory, ws_url

FRAMES = 30


async def _call(url_a: str, url_b: str, keys: Keys, room: str) -> tuple[RtcPeer, RtcPeer]:
    a = RtcPeer(await SignalingSocket.open(url_a))
    b = RtcPeer(await SignalingSocket.open(url_b))
    await a.join(keys.token(room, "agent-1", "agent"))
    joined = await b.join(keys.token(room, "operator-1", "operator"))
    assert [p["peer_id"] for p in joined["peers"]] == ["agent-1"]
    # Both are aiortc (can_rollback false): the newcomer offers, the existing peer waits.
    assert joined["polite_toward"] == {"agent-1": False}
    seen = await a.sock.next("peer_joined", peer_id="operator-1")
    assert seen["polite"] is True
    assert seen["reconnected"] is False
    return a, b


async def _frames_flow(a: RtcPeer, b: RtcPeer) -> None:
    await asyncio.gather(
        a.counter(b.peer_id).wait_for("video", FRAMES),
        b.counter(a.peer_id).wait_for("video", FRAMES),
        a.counter(b.peer_id).wait_for("audio", FRAMES),
        b.counter(a.peer_id).wait_for("audio", FRAMES),
    )


async def test_two_peers_exchange_audio_and_video(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    server = await make_server()
    a, b = await _call(ws_url(server), ws_url(server), keys, room)
    try:
        await _frames_flow(a, b)
        assert a.states["operator-1"] == "connected"
        await host.wait_event(
            lambda apt, e: (
                apt == room
                and e.kind == "connection_state"
                and e.detail.get("state") == "connected"
            )
        )
        assert host.kinds(room).count("join") == 2
    finally:
        await a.close()
        await b.close()
    await host.wait_event(lambda apt, e: apt == room and e.kind == "leave")


async def test_two_instances_over_redis(
    keys: Keys,
    room: str,
    make_redis_server: ServerFactory,
) -> None:
    one = await make_redis_server()
    two = await make_redis_server()
    a, b = await _call(ws_url(one), ws_url(two), keys, room)
    try:
        await _frames_flow(a, b)
        # Media state fans out across instances too.
        await a.sock.send({"type": "media", "audio": False, "video": True})
        media = await b.sock.next("peer_media")
        seq = media.pop("seq")
        assert media == {"type": "peer_media", "from": "agent-1", "audio": False, "video": True}
        assert isinstance(seq, int)
    finally:
        await a.close()
    left = await b.sock.next("peer_left")
    assert left["peer_id"] == "agent-1"
    await b.close()


async def test_reconnect_gets_the_call_back(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    server = await make_server()
    url = ws_url(server)
    a, b = await _call(url, url, keys, room)
    b2: RtcPeer | None = None
    try:
        await _frames_flow(a, b)
        # The operator's network drops; it reconnects with a new socket and a new
        # RTCPeerConnection while the old socket is still open.
        b2 = RtcPeer(await SignalingSocket.open(url))
        joined = await b2.join(keys.token(room, "operator-1", "operator"))
        assert joined["peer_id"] == "operator-1"
        assert await b.sock.wait_closed() == 4409
        assert "replaced" in b.sock.close_reason
        left = await a.sock.next("peer_left")
        assert left["peer_id"] == "operator-1"
        again = await a.sock.next("peer_joined")
        assert again["reconnected"] is True
        assert again["polite"] is True
        await asyncio.gather(
            a.counter("operator-1").wait_for(
                "video", a.counter("operator-1").counts["video"] + FRAMES
            ),
            b2.counter("agent-1").wait_for("video", FRAMES),
        )
    finally:
        await a.close()
        await b.close()
        if b2 is not None:
            await b2.close()


async def test_reconnect_after_drop(make_server: ServerFactory, keys: Keys, room: str) -> None:
    server = await make_server()
    url = ws_url(server)
    a, b = await _call(url, url, keys, room)
    try:
        await _frames_flow(a, b)
        await b.close()
        assert (await a.sock.next("peer_left"))["peer_id"] == "operator-1"
        b = RtcPeer(await SignalingSocket.open(url))
        await b.join(keys.token(room, "operator-1", "operator"))
        joined = await a.sock.next("peer_joined")
        assert joined["reconnected"] is False
        await b.counter("agent-1").wait_for("video", FRAMES)
    finally:
        await a.close()
        await b.close()
