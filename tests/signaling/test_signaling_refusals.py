"""Refusals and protocol errors: every one with its own close code or error frame."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signaling import CallEvent, close_room
from tests.signaling.sigpeer import SignalingSocket
from tests.signaling.sigsupport import ORIGIN, FakeHost, Keys, ServerFactory, ws_url


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(room: str) -> dict[str, object]:
    now = int(datetime.now(UTC).timestamp())
    return {
        "aud": "visio-signaling",
        "sub": "agent-1",
        "apt": room,
        "role": "agent",
        "nbf": now - 60,
        "exp": now + 3600,
    }


async def _refused(server: TestServer, token: str) -> tuple[int | None, str]:
    sock = await SignalingSocket.open(ws_url(server))
    try:
        await sock.send({"type": "join", "token": token})
        code = await sock.wait_closed()
        assert not [f for f in sock.frames if f["type"] == "joined"]
        return code, sock.close_reason
    finally:
        await sock.close()


async def _joined(server: TestServer, token: str, **kw: bool) -> SignalingSocket:
    sock = await SignalingSocket.open(ws_url(server))
    await sock.join(token, **kw)
    return sock


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("bad_signature", 4401, "invalid"),
        ("malformed", 4401, "malformed"),
        ("hs256", 4402, "algorithm"),
        ("alg_none", 4402, "algorithm"),
        ("unknown_kid", 4403, "unknown key"),
        ("no_kid", 4403, "unknown key"),
        ("expired", 4404, "expired"),
        ("not_yet_valid", 4405, "not yet valid"),
        ("wrong_audience", 4401, "invalid"),
    ],
)
async def test_token_refusals(
    make_server: ServerFactory, keys: Keys, room: str, case: str, code: int, words: str
) -> None:
    server = await make_server()
    now = datetime.now(UTC)
    if case == "bad_signature":
        token = keys.token(room, "agent-1", private=Ed25519PrivateKey.generate())
    elif case == "malformed":
        token = "not.a.jwt"
    elif case == "hs256":
        # Key confusion attempt: HMAC keyed with something public.
        token = jwt.encode(
            _claims(room),
            "public-key-bytes-that-anyone-could-know",
            algorithm="HS256",
            headers={"kid": keys.kid},
        )
    elif case == "alg_none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': keys.kid})}.{_b64(_claims(room))}."
    elif case == "unknown_kid":
        token = keys.token(room, "agent-1", kid="0123456789abcdef")
    elif case == "no_kid":
        token = jwt.encode(_claims(room), keys.private, algorithm="EdDSA")
    elif case == "expired":
        token = keys.token(
            room,
            "agent-1",
            not_before=now - timedelta(hours=2),
            expires_at=now - timedelta(minutes=5),
        )
    elif case == "not_yet_valid":
        token = keys.token(room, "agent-1", not_before=now + timedelta(minutes=5))
    else:
        claims = _claims(room) | {"aud": "someone-else"}
        token = jwt.encode(claims, keys.private, algorithm="EdDSA", headers={"kid": keys.kid})
    got, reason = await _refused(server, token)
    assert got == code
    assert words in reason


async def test_cancelled_appointment_refused(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    server = await make_server()
    host.live.discard(room)
    host.cancelled.add(room)
    code, reason = await _refused(server, keys.token(room, "agent-1"))
    assert (code, reason) == (4406, "appointment is not live")
    assert host.kinds(room) == ["refused"]


async def test_unknown_room_refused_without_event_nor_traceback(
    make_server: ServerFactory, keys: Keys, host: FakeHost, caplog: pytest.LogCaptureFixture
) -> None:
    """A test-call token (its room is no appointment) is refused with 4406 and one log line."""
    server = await make_server()
    token = keys.token("test-call-test-u1", "test-u1", "test", version=None)
    with caplog.at_level(logging.DEBUG, logger="signaling"):
        assert (await _refused(server, token))[0] == 4406
    assert host.events == []
    records = [r for r in caplog.records if r.name.startswith("signaling")]
    assert len(records) == 1
    assert records[0].exc_info is None
    assert token not in records[0].getMessage()


async def test_token_of_an_older_version_refused(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    """After a reschedule (version 2), a token issued for version 1 is refused with 4413."""
    server = await make_server()
    host.versions[room] = 2
    code, reason = await _refused(server, keys.token(room, "agent-1", version=1))
    assert (code, reason) == (4413, "token outdated: the appointment changed, get a new one")
    assert (await _refused(server, keys.token(room, "agent-1", version=None)))[0] == 4413
    refused = [e.detail["reason"] for a, e in host.events if a == room and e.kind == "refused"]
    assert refused == ["outdated_token", "outdated_token"]
    sock = await _joined(server, keys.token(room, "agent-1", version=2))
    await sock.close()


async def test_a_failing_record_hook_logs_one_line(
    make_server: ServerFactory, keys: Keys, room: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A host whose record hook fails costs one warning per event, without its text."""

    class FailingHost(FakeHost):
        async def record(self, appointment_id: str, event: CallEvent) -> None:
            await super().record(appointment_id, event)  # to wait for the attempt
            raise RuntimeError("secret detail of the event")

    failing = FailingHost()
    failing.live.add(room)
    server = await make_server(hooks=failing)
    with caplog.at_level(logging.DEBUG, logger="signaling"):
        sock = await _joined(server, keys.token(room, "agent-1"))
        await sock.close()
        # The handler logs before it next yields, so before this wait returns.
        await failing.wait_event(lambda apt, e: e.kind == "leave")
    records = [r for r in caplog.records if r.name.startswith("signaling")]
    assert [r.getMessage() for r in records] == [
        "recording a join call event failed: RuntimeError",
        "recording a leave call event failed: RuntimeError",
    ]
    assert all(r.exc_info is None for r in records)


async def test_bad_origin_refused_before_upgrade(make_server: ServerFactory) -> None:
    server = await make_server()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await SignalingSocket.open(ws_url(server), origin="https://evil.example")
    assert info.value.status == 403


async def test_missing_origin_allowed_for_non_browsers(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    server = await make_server()
    sock = await SignalingSocket.open(ws_url(server), origin=None)
    try:
        assert (await sock.join(keys.token(room, "bot-1")))["peer_id"] == "bot-1"
    finally:
        await sock.close()
    strict = await make_server(allow_missing_origin=False)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await SignalingSocket.open(ws_url(strict), origin=None)


async def test_no_join_in_time(make_server: ServerFactory) -> None:
    server = await make_server(join_timeout=0.3)
    sock = await SignalingSocket.open(ws_url(server))
    try:
        assert await sock.wait_closed() == 4407
    finally:
        await sock.close()


async def test_first_frame_must_be_join(make_server: ServerFactory) -> None:
    server = await make_server()
    sock = await SignalingSocket.open(ws_url(server))
    try:
        await sock.send({"type": "ping"})
        assert await sock.wait_closed() == 4400
    finally:
        await sock.close()


async def test_frame_too_big(make_server: ServerFactory, keys: Keys, room: str) -> None:
    server = await make_server()
    sock = await _joined(server, keys.token(room, "agent-1"))
    try:
        await sock.send({"type": "ping", "pad": "x" * 70_000})
        assert await sock.wait_closed() == 1009
    finally:
        await sock.close()


async def test_flood_is_cut(make_server: ServerFactory, keys: Keys, room: str) -> None:
    server = await make_server()
    sock = await _joined(server, keys.token(room, "agent-1"))
    try:
        with pytest.raises((ConnectionError, RuntimeError)):  # noqa: PT012
            for _ in range(1000):
                await sock.send({"type": "ping"})
                if sock.closed.is_set():
                    break
            await sock.wait_closed()
            raise ConnectionError
        assert sock.close_code == 4429
    finally:
        await sock.close()


async def _flood(sock: SignalingSocket, send: Callable[[], Awaitable[None]]) -> int | None:
    """Send frames until the server closes the socket; return its close code."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        for _ in range(5000):
            await send()
            if sock.closed.is_set():
                break
    return await sock.wait_closed()


async def test_binary_flood_is_cut(make_server: ServerFactory, keys: Keys, room: str) -> None:
    """Binary frames count toward the flood limit like text ones: 4429, not an answer each."""
    server = await make_server()
    sock = await _joined(server, keys.token(room, "agent-1"))
    try:
        assert await _flood(sock, lambda: sock.ws.send_bytes(b"\x00")) == 4429
        errors = [f for f in sock.frames if f["type"] == "error"]
        assert 0 < len(errors) <= 100  # at most the burst was answered
    finally:
        await sock.close()


async def test_ping_flood_is_cut(make_server: ServerFactory, keys: Keys, room: str) -> None:
    """WebSocket pings count toward the flood limit too."""
    server = await make_server()
    sock = await _joined(server, keys.token(room, "agent-1"))
    try:
        assert await _flood(sock, lambda: sock.ws.ping(b"p")) == 4429
    finally:
        await sock.close()


async def test_pings_are_answered_before_and_after_join(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    """The server answers WebSocket pings itself (autoping is off so that they are counted)."""
    server = await make_server()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(ws_url(server), autoping=False, headers={"Origin": ORIGIN}) as ws,
    ):
        await ws.ping(b"before")
        pong = await ws.receive(timeout=5)
        assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"before")
        await ws.send_json({"type": "join", "token": keys.token(room, "agent-1")})
        assert (await ws.receive_json(timeout=5))["type"] == "joined"
        await ws.ping(b"after")
        pong = await ws.receive(timeout=5)
        assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"after")


async def test_steady_rate_is_not_cut(make_server: ServerFactory, keys: Keys, room: str) -> None:
    server = await make_server(rate_limit_per_second=50, rate_limit_burst=10)
    sock = await _joined(server, keys.token(room, "agent-1"))
    try:
        for _ in range(30):
            await sock.send({"type": "ping"})
            await sock.next("pong")
            await asyncio.sleep(0.025)
        assert not sock.closed.is_set()
    finally:
        await sock.close()


async def test_protocol_errors_leave_the_room_alone(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    server = await make_server()
    a = await _joined(server, keys.token(room, "agent-1"))
    b = await _joined(server, keys.token(room, "operator-1", "operator"))
    try:
        await a.ws.send_str("{not json")
        assert (await a.next("error"))["code"] == "bad_json"
        await a.send({"type": "dance"})
        assert (await a.next("error"))["code"] == "unknown_type"
        await a.send({"type": "sdp", "to": "operator-1"})
        assert (await a.next("error"))["code"] == "bad_field"
        await a.ws.send_str("[1, 2]")
        assert (await a.next("error"))["code"] == "bad_frame"
        await a.ws.send_bytes(b"\x00")
        assert (await a.next("error"))["code"] == "bad_frame"
        offer = {"type": "offer", "sdp": "v=0\r\n"}
        await a.send({"type": "sdp", "to": "stranger", "description": offer})
        err = await a.next("error")
        assert err["code"] == "unknown_peer"
        await a.send({"type": "sdp", "to": "agent-1", "description": offer})
        assert (await a.next("error"))["code"] == "unknown_peer"
        await a.send({"type": "join", "token": keys.token(room, "agent-1")})
        assert (await a.next("error"))["code"] == "already_joined"
        # The room still relays, and the server stamps "from" over the client's own.
        await a.send(
            {
                "type": "sdp",
                "to": "operator-1",
                "from": "admin",
                "role": "admin",
                "description": offer,
            }
        )
        relayed = await b.next("sdp")
        assert relayed == {"type": "sdp", "from": "agent-1", "description": offer}
        await a.send({"type": "ice", "to": "operator-1", "from": "x", "candidate": None})
        assert await b.next("ice") == {"type": "ice", "from": "agent-1", "candidate": None}
        await a.send({"type": "ping"})
        await a.next("pong")
        assert not [f for f in b.frames if f["type"] == "error"]
    finally:
        await a.close()
        await b.close()


async def test_silent_socket_closed(make_server: ServerFactory, keys: Keys, room: str) -> None:
    server = await make_server(silence_timeout=0.4, ping_interval=0.1)
    quiet = await _joined(server, keys.token(room, "agent-1"))
    chatty = await _joined(server, keys.token(room, "operator-1"))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.2
        while loop.time() < deadline:
            await chatty.send({"type": "ping"})
            await chatty.next("pong")
            await asyncio.sleep(0.1)
        assert await quiet.wait_closed() == 4411
        assert not chatty.closed.is_set()
        assert (await chatty.next("peer_left"))["peer_id"] == "agent-1"
    finally:
        await quiet.close()
        await chatty.close()


async def _race(servers: list[TestServer], keys: Keys, room: str) -> None:
    socks = [await SignalingSocket.open(ws_url(servers[i % len(servers)])) for i in range(5)]
    try:
        await asyncio.gather(
            *(
                s.send({"type": "join", "token": keys.token(room, f"p{i}")})
                for i, s in enumerate(socks)
            )
        )

        async def outcome(sock: SignalingSocket) -> str | int | None:
            async with asyncio.timeout(10):
                while True:
                    if any(f["type"] == "joined" for f in sock.frames):
                        return "joined"
                    if sock.closed.is_set():
                        return sock.close_code
                    await asyncio.sleep(0.01)

        results = await asyncio.gather(*(outcome(s) for s in socks))
        assert sorted(map(str, results)) == ["4408"] + ["joined"] * 4
    finally:
        await asyncio.gather(*(s.close() for s in socks))


async def test_fifth_participant_refused(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    await _race([await make_server()], keys, room)
    refused = [e for a, e in host.events if a == room and e.kind == "refused"]
    assert [e.detail["reason"] for e in refused] == ["room_full"]


async def test_fifth_participant_refused_across_instances(
    keys: Keys,
    room: str,
    make_redis_server: ServerFactory,
) -> None:
    one = await make_redis_server()
    two = await make_redis_server()
    await _race([one, two], keys, room)


async def _close_room_everywhere(servers: list[TestServer], keys: Keys, room: str) -> None:
    socks = [await _joined(servers[i % len(servers)], keys.token(room, f"p{i}")) for i in range(3)]
    try:
        await close_room(servers[0].app, room, "appointment cancelled")
        for sock in socks:
            assert (await sock.next("room_closed"))["reason"] == "appointment cancelled"
            assert await sock.wait_closed() == 4410
    finally:
        await asyncio.gather(*(s.close() for s in socks))


async def test_close_room(make_server: ServerFactory, keys: Keys, room: str) -> None:
    await _close_room_everywhere([await make_server()], keys, room)


async def test_close_room_across_instances(
    keys: Keys,
    room: str,
    make_redis_server: ServerFactory,
) -> None:
    one = await make_redis_server()
    two = await make_redis_server()
    await _close_room_everywhere([one, two], keys, room)


async def test_media_and_connection_reports_are_recorded(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    server = await make_server()
    a = await _joined(server, keys.token(room, "agent-1"))
    b = await _joined(server, keys.token(room, "operator-1", "operator"))
    try:
        await a.send({"type": "media", "audio": True, "video": False})
        assert await b.next("peer_media") == {
            "type": "peer_media",
            "from": "agent-1",
            "audio": True,
            "video": False,
            "seq": 1,  # the join order of the seat it comes from
        }
        await a.send(
            {
                "type": "connection",
                "state": "connected",
                "peer": "operator-1",
                "stats": {"rtt_ms": 12.5, "packet_loss": 0.01, "candidate_type": "relay"},
            }
        )
        stats = await host.wait_event(lambda apt, e: apt == room and e.kind == "stats")
        assert stats.detail == {
            "rtt_ms": 12.5,
            "packet_loss": 0.01,
            "candidate_type": "relay",
            "peer": "operator-1",
        }
        assert stats.at.tzinfo is not None
        media = await host.wait_event(lambda apt, e: apt == room and e.kind == "media")
        assert (media.peer_id, media.role) == ("agent-1", "agent")
        # A newcomer sees the stored mute state.
        c = await _joined(server, keys.token(room, "desk-2"))
        try:
            c.frames.clear()
        finally:
            await c.close()
    finally:
        await a.close()
        await b.close()


async def test_peers_list_carries_media_state(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    server = await make_server()
    a = await _joined(server, keys.token(room, "agent-1"), can_rollback=False)
    try:
        await a.send({"type": "media", "audio": False, "video": False})
        await a.send({"type": "ping"})
        await a.next("pong")
        b = await SignalingSocket.open(ws_url(server))
        try:
            joined = await b.join(keys.token(room, "operator-1"), can_rollback=True)
            assert joined["peers"] == [
                {
                    "peer_id": "agent-1",
                    "role": "agent",
                    "media": {"audio": False, "video": False},
                    "seq": 1,
                }
            ]
            assert joined["seq"] == 2
            # A browser (can roll back) meeting aiortc (cannot) is the polite side.
            assert joined["polite_toward"] == {"agent-1": True}
            assert (await a.next("peer_joined"))["polite"] is False
        finally:
            await b.close()
    finally:
        await a.close()


async def test_unknown_peer_across_instances(
    keys: Keys,
    room: str,
    make_redis_server: ServerFactory,
) -> None:
    one = await make_redis_server()
    two = await make_redis_server()
    a = await _joined(one, keys.token(room, "agent-1"))
    b = await _joined(two, keys.token(room, "operator-1", "operator"))
    try:
        offer = {"type": "offer", "sdp": "v=0\r\n"}
        await a.send({"type": "sdp", "to": "stranger", "from": "x", "description": offer})
        assert (await a.next("error"))["code"] == "unknown_peer"
        await a.send({"type": "sdp", "to": "operator-1", "from": "x", "description": offer})
        assert await b.next("sdp") == {"type": "sdp", "from": "agent-1", "description": offer}
    finally:
        await a.close()
        await b.close()
