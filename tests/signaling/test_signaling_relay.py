"""Relay of bursts: order, content and frame sizes, on one instance and across Redis."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer

from signaling.rooms import text_frame_header
from tests.signaling.sigpeer import SignalingSocket
from tests.signaling.sigsupport import Keys, ServerFactory, ws_url

FAST = {"rate_limit_per_second": 10_000, "rate_limit_burst": 10_000}


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_text_frame_header(length: int, header: bytes) -> None:
    assert text_frame_header(length) == header


async def _joined(server: TestServer, token: str) -> SignalingSocket:
    sock = await SignalingSocket.open(ws_url(server))
    await sock.join(token)
    return sock


async def _burst(one: TestServer, two: TestServer, keys: Keys, room: str) -> None:
    """A burst mixing small candidates and SDPs of every header size arrives intact, in order."""
    a = await _joined(one, keys.token(room, "agent-1"))
    b = await _joined(two, keys.token(room, "operator-1", "operator"))
    try:
        await a.next("peer_joined")
        sent: list[dict[str, object]] = []
        for i in range(400):
            if i % 100 == 50:
                sdp = "v=0\r\n" + "a=x\r\n" * (i * 25)  # 0.6 KiB to 44 KiB
                frame: dict[str, object] = {
                    "type": "sdp",
                    "to": "operator-1",
                    "description": {"type": "offer", "sdp": sdp},
                }
                expected = {"type": "sdp", "from": "agent-1", "description": frame["description"]}
            else:
                cand = {
                    "candidate": f"candidate:{i} 1 udp 1 10.0.0.1 {i} typ host é",
                    "sdpMid": "0",
                }
                frame = {"type": "ice", "to": "operator-1", "candidate": cand}
                expected = {
                    "type": "ice",
                    "from": "agent-1",
                    "candidate": {**cand, "sdpMLineIndex": None},
                }
            sent.append(expected)
            await a.send(frame)
        for expected in sent:  # each type in order, and every frame intact
            assert await b.next(str(expected["type"]), within=20) == expected
        await asyncio.sleep(0.1)
        assert b.frames == []
    finally:
        await a.close()
        await b.close()


async def test_burst_one_instance(make_server: ServerFactory, keys: Keys, room: str) -> None:
    server = await make_server(**FAST)
    await _burst(server, server, keys, room)


async def test_burst_across_instances(
    keys: Keys,
    room: str,
    make_redis_server: ServerFactory,
) -> None:
    one = await make_redis_server(**FAST)
    two = await make_redis_server(**FAST)
    await _burst(one, two, keys, room)
