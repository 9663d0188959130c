"""The test call: the echo peer returns media and answers data-channel pings."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from tests.signaling.sigpeer import Counter, SyntheticVideoTrack
from tests.signaling.sigsupport import Keys, ServerFactory


async def _offer(pc: RTCPeerConnection, *, big: bool = False) -> dict[str, str]:
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(SyntheticVideoTrack(800, 600) if big else SyntheticVideoTrack())
    await pc.setLocalDescription(await pc.createOffer())
    return {"type": "offer", "sdp": pc.localDescription.sdp}


async def test_echo_returns_frames(make_server: ServerFactory, keys: Keys, room: str) -> None:
    server = await make_server(echo_max_sessions=1)
    url = str(server.make_url("/echo"))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = Counter()
    tasks: set[asyncio.Task[Any]] = set()
    pongs: asyncio.Queue[str] = asyncio.Queue()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def consume() -> None:
            try:
                while True:
                    await counter.bump(track.kind, await track.recv())
            except MediaStreamError:
                pass

        tasks.add(asyncio.create_task(consume()))

    channel = pc.createDataChannel("ping")
    channel.on("message", pongs.put_nowait)
    opened = asyncio.Event()
    channel.on("open", opened.set)
    try:
        offer = await _offer(pc, big=True)
        token = keys.token(room, "desk-1", "test")
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=offer) as resp:
                assert resp.status == 401
                assert resp.content_type == "application/problem+json"
            async with http.post(
                url, json=offer, headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 200, await resp.text()
                answer = await resp.json()
            await pc.setRemoteDescription(RTCSessionDescription(**answer))
            await counter.wait_for("video", 30, within=30)
            await counter.wait_for("audio", 30)
            # Frames come back capped at 640x480 (sent at 800x600).
            assert max(counter.sizes) <= (640, 480)
            assert counter.sizes[-1] == (640, 480)
            async with asyncio.timeout(10):
                await opened.wait()
            channel.send("ping 1")
            async with asyncio.timeout(10):
                assert await pongs.get() == "pong 1"
            # A second test call while one runs exceeds echo_max_sessions=1.
            other = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                offer2 = await _offer(other)
                async with http.post(url, json={**offer2, "token": token}) as resp:
                    assert resp.status == 503
                    assert resp.headers["Retry-After"] == "60"
                    problem = await resp.json(content_type="application/problem+json")
                    assert "too many test calls in progress" in problem["detail"]
            finally:
                await other.close()
    finally:
        await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_echo_sessions_end_after_max_duration(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    server = await make_server(echo_max_sessions=1, echo_max_duration=0.5)
    url = str(server.make_url("/echo"))
    token = keys.token(room, "desk-1", "test")
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                offer = await _offer(pc)
                async with asyncio.timeout(10):
                    while True:
                        async with http.post(url, json={**offer, "token": token}) as resp:
                            if resp.status == 200:
                                break
                            assert resp.status == 503
                        await asyncio.sleep(0.1)
            finally:
                await pc.close()
