"""The test call: the echo peer returns media and answers data-channel pings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from signaling import STATE_KEY
from signaling.echo import global_candidates_only
from tests.signaling.sigpeer import Counter, SyntheticVideoTrack
from tests.signaling.sigsupport import FakeHost, Keys, ServerFactory


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
            # Someone else's test call while this one runs exceeds echo_max_sessions=1.
            other = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            try:
                offer2 = await _offer(other)
                token2 = keys.token(room, "desk-2", "test")
                async with http.post(url, json={**offer2, "token": token2}) as resp:
                    assert resp.status == 503
                    assert resp.headers["Retry-After"] == "60"
                    problem = await resp.json(content_type="application/problem+json")
                    assert problem["code"] == "busy"
                    assert "Too many test calls are in progress" in problem["detail"]
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
                            # Refused while its own first one runs, until that one expires.
                            assert resp.status == 409
                        await asyncio.sleep(0.1)
            finally:
                await pc.close()


class _EchoCall:
    """An aiortc caller of the echo endpoint that counts the frames coming back."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.counter = Counter()
        self.states: list[str] = []
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            async def consume() -> None:
                try:
                    while True:
                        await self.counter.bump(track.kind, await track.recv())
                except MediaStreamError:
                    pass

            self._tasks.add(asyncio.create_task(consume()))

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            self.states.append(self.pc.connectionState)
            if self.pc.connectionState in ("closed", "failed"):
                self.closed.set()

    async def start(
        self, http: aiohttp.ClientSession, url: str, token: str, *, fps: int = 30,
        candidates: tuple[str, ...] = (),
    ) -> aiohttp.ClientResponse:
        """POST the offer (with ``candidates``, a=candidate lines, added to it)."""
        self.pc.addTrack(SyntheticVideoTrack(fps=fps))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        if candidates:
            sdp = sdp.replace("a=end-of-candidates",
                              "\r\n".join((*candidates, "a=end-of-candidates")))
        offer = {"type": "offer", "sdp": sdp, "token": token}
        async with http.post(url, json=offer) as resp:
            await resp.read()
            if resp.status == 200:
                await self.pc.setRemoteDescription(RTCSessionDescription(**await resp.json()))
            return resp

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_echo_returns_a_20_fps_camera_at_about_15_fps(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    """A 20 fps source comes back at the promised cap of 15 fps, not every other frame."""
    server = await make_server(echo_max_fps=15)
    call = _EchoCall()
    try:
        async with aiohttp.ClientSession() as http:
            resp = await call.start(
                http, str(server.make_url("/echo")), keys.token(room, "desk-1", "test"), fps=20
            )
            assert resp.status == 200
        await call.counter.wait_for("video", 20, within=30)  # warmed up
        loop = asyncio.get_running_loop()
        first, started = call.counter.counts["video"], loop.time()
        await call.counter.wait_for("video", first + 60, within=30)
        rate = (call.counter.counts["video"] - first) / (loop.time() - started)
        assert 13 <= rate <= 17, rate
    finally:
        await call.close()


async def test_a_second_test_call_of_the_same_participant_is_refused_while_the_first_runs(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    """One echo session per participant: a second one is a 409 with a sentence (one token
    cannot hold every place); once the first ends, the next one is answered."""
    server = await make_server(echo_max_sessions=2)
    url = str(server.make_url("/echo"))
    mine, again, later, theirs = _EchoCall(), _EchoCall(), _EchoCall(), _EchoCall()
    token = keys.token(room, "test-u1", "test", version=None)
    sessions = server.app[STATE_KEY].echo
    assert sessions is not None
    try:
        async with aiohttp.ClientSession() as http:
            assert (await mine.start(http, url, token)).status == 200
            await mine.counter.wait_for("video", 10, within=30)
            async with http.post(url, json={"type": "offer", "sdp": "v=0", "token": token}
                                 ) as resp:
                assert resp.status == 409
                problem = await resp.json(content_type="application/problem+json")
                assert problem["code"] == "already_running"
                assert "already running" in problem["detail"]
            resp = await again.start(http, url, token)
            assert resp.status == 409
            assert len(sessions.pcs) == 1
            # Someone else still has the other place.
            other = keys.token(room, "test-u2", "test", version=None)
            assert (await theirs.start(http, url, other)).status == 200
            # The first one ends (the caller closes it): the same participant may test again.
            await mine.close()
            async with asyncio.timeout(30):
                while True:
                    if sessions.owned_by("test-u1") is None:
                        break
                    await asyncio.sleep(0.05)
            assert (await later.start(http, url, token)).status == 200
            await later.counter.wait_for("video", 10, within=30)
    finally:
        for call in (mine, again, later, theirs):
            await call.close()


class _Listener(asyncio.DatagramProtocol):
    """A UDP socket's datagrams, and an event at the first."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []
        self.got = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.datagrams.append(data)
        self.got.set()


async def test_the_echo_peer_probes_no_address_the_offer_names_on_the_servers_network(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    """An offer naming 127.0.0.1:<port> as a candidate: unless private candidates are
    allowed (tests, a LAN), the echo peer sends nothing there; the call still works
    through the address the caller's packets come from."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.DatagramTransport] = []

    async def listening() -> tuple[_Listener, str]:
        """A UDP socket on the loopback, and an offer's candidate naming it."""
        transport, listener = await loop.create_datagram_endpoint(
            _Listener, local_addr=("127.0.0.1", 0))
        transports.append(transport)
        port = transport.get_extra_info("sockname")[1]
        # The highest priority: checked first, before a working pair ends the checks.
        return listener, f"a=candidate:9 1 udp 4294967295 127.0.0.1 {port} typ host"

    token = keys.token(room, "test-u1", "test", version=None)
    calls: list[_EchoCall] = []
    try:
        async with aiohttp.ClientSession() as http:
            # Allowed: the candidate is checked, so such a socket does hear probes.
            heard, probe = await listening()
            allowed = await make_server(echo_allow_private_candidates=True)
            calls.append(_EchoCall())
            assert (await calls[-1].start(http, str(allowed.make_url("/echo")), token,
                                          candidates=(probe,))).status == 200
            async with asyncio.timeout(30):
                await heard.got.wait()

            unheard, probe = await listening()
            refused = await make_server(echo_allow_private_candidates=False)
            calls.append(_EchoCall())
            assert (await calls[-1].start(http, str(refused.make_url("/echo")), token,
                                          candidates=(probe,))).status == 200
            await calls[-1].counter.wait_for("video", 10, within=30)
            assert unheard.datagrams == []
    finally:
        for call in calls:
            await call.close()
        for transport in transports:
            transport.close()


def test_only_global_address_candidates_are_kept() -> None:
    """Loopback, private, link-local, shared, reserved addresses and names are dropped."""
    lines = [f"a=candidate:1 1 udp 1 {address} 9 typ host" for address in (
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1", "100.64.0.1",
        "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "x.local", "evil.example",
        "255.255.255.255", "224.0.0.1")]
    kept = global_candidates_only("\r\n".join(
        ["v=0", *lines, "a=candidate:2 1 udp 1 8.8.8.8 9 typ host",
         "a=candidate:3 1 udp 1 2001:4860::8888 9 typ srflx", "a=end-of-candidates"]))
    assert kept.splitlines() == ["v=0", "a=candidate:2 1 udp 1 8.8.8.8 9 typ host",
                                 "a=candidate:3 1 udp 1 2001:4860::8888 9 typ srflx"]


async def _post(url: str, body: bytes, **headers: str) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        assert r.content_type == "application/problem+json"
        return r.status, dict(r.headers), await r.json(content_type=None)


async def test_echo_problems_carry_a_stable_code_in_english_by_default(
    make_server: ServerFactory, keys: Keys, room: str
) -> None:
    """A host without problem_text: English sentences, Content-Language en, a code to test."""
    server = await make_server()
    url = str(server.make_url("/echo"))
    status, headers, body = await _post(url, b"{not json")
    assert (status, body["code"], headers["Content-Language"]) == (400, "bad_json", "en")
    assert body["detail"] == "The request body is not valid JSON."
    status, headers, body = await _post(url, b'{"type": "offer", "sdp": "v=0"}')
    assert (status, body["code"]) == (401, "token_required")
    assert headers["WWW-Authenticate"] == "Bearer"
    now = datetime.now(UTC)
    expired = keys.token(
        room,
        "desk-1",
        "test",
        not_before=now - timedelta(hours=2),
        expires_at=now - timedelta(hours=1),
    )
    status, _, body = await _post(url, b"{}", Authorization=f"Bearer {expired}")
    assert (status, body["code"]) == (401, "token_expired")
    token = keys.token(room, "desk-1", "test")
    status, _, body = await _post(url, b'{"type": "answer"}', Authorization=f"Bearer {token}")
    assert (status, body["code"]) == (400, "bad_body")


async def test_echo_problems_are_worded_by_the_host(
    make_server: ServerFactory, host: FakeHost
) -> None:
    """The host's problem_text gets the code and Accept-Language, and its words are sent."""

    class WordyHost(FakeHost):
        def problem_text(self, code: str, accept_language: str | None) -> tuple[str, str, str]:
            return f"title {code}", f"detail {code} for {accept_language}", "nl"

    server = await make_server(hooks=WordyHost())
    status, headers, body = await _post(
        str(server.make_url("/echo")), b"[]", **{"Accept-Language": "nl-BE, fr;q=0.5"}
    )
    assert status == 400
    assert body == {
        "type": "about:blank",
        "title": "title bad_body",
        "status": 400,
        "detail": "detail bad_body for nl-BE, fr;q=0.5",
        "code": "bad_body",
    }
    assert headers["Content-Language"] == "nl"
