"""Test client: an aiortc peer speaking the signaling protocol over aiohttp's WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from aiortc.sdp import candidate_from_sdp
from av import VideoFrame

VIDEO_RATE = 90000
FPS = 30


class SyntheticVideoTrack(MediaStreamTrack):
    """Small changing frames at a steady rate (30 fps unless told)."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = FPS) -> None:
        super().__init__()
        self._size = (width, height)
        self._fps = fps
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            await asyncio.sleep(max(0.0, self._start + self._count / self._fps - loop.time()))
        if self.readyState != "live":
            raise MediaStreamError
        frame = VideoFrame(width=self._size[0], height=self._size[1])
        shade = (self._count * 7) % 256
        for plane in frame.planes:
            plane.update(bytes([shade]) * plane.buffer_size)
        frame.pts = self._count * (VIDEO_RATE // self._fps)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        self._count += 1
        return frame


class Counter:
    """Counts frames received on a track and lets tests wait for a number of them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {"audio": 0, "video": 0}
        self.sizes: list[tuple[int, int]] = []
        self._changed = asyncio.Condition()

    async def bump(self, kind: str, frame: Any) -> None:
        self.counts[kind] += 1
        if kind == "video" and len(self.sizes) < 200:
            self.sizes.append((frame.width, frame.height))
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, kind: str, n: int, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: self.counts[kind] >= n)


def to_ice_servers(servers: list[dict[str, Any]]) -> list[RTCIceServer]:
    return [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in servers
    ]


class SignalingSocket:
    """A WebSocket to the signaling server with a typed inbox of received frames."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session = session
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.handlers: list[Callable[[dict[str, Any]], Any]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, url: str, *, origin: str | None = "https://visio.test", session: Any = None
    ) -> SignalingSocket:
        own = session is None
        session = session or aiohttp.ClientSession()
        headers = {"Origin": origin} if origin else {}
        try:
            ws = await session.ws_connect(url, headers=headers, autoping=True)
        except BaseException:
            if own:
                await session.close()
            raise
        sock = cls(session, ws)
        sock._own_session = own
        return sock

    _own_session = False

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    self.close_reason = msg.extra or ""
                    await self.ws.close()
                    break
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                async with self._arrived:
                    self.frames.append(frame)
                    self._arrived.notify_all()
                for handler in list(self.handlers):
                    result = handler(frame)
                    if asyncio.iscoroutine(result):
                        await result
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def next(self, kind: str, within: float = 10.0, **match: Any) -> dict[str, Any]:
        """Wait for (and consume) the first received frame of a type matching fields."""

        def find() -> dict[str, Any] | None:
            for frame in self.frames:
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame
            return None

        async with asyncio.timeout(within):
            async with self._arrived:
                await self._arrived.wait_for(lambda: find() is not None or self.closed.is_set())
                found = find()
                if found is None:
                    raise AssertionError(
                        f"socket closed ({self.close_code}) before a {kind} frame: {self.frames}"
                    )
                self.frames.remove(found)
                return found

    async def join(self, token: str, *, can_rollback: bool = True) -> dict[str, Any]:
        await self.send({"type": "join", "token": token, "can_rollback": can_rollback})
        return await self.next("joined")

    async def wait_closed(self, within: float = 10.0) -> int | None:
        async with asyncio.timeout(within):
            await self.closed.wait()
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        if self._own_session:
            await self.session.close()


class RtcPeer:
    """An aiortc participant doing perfect negotiation as the server assigns it."""

    def __init__(
        self, sock: SignalingSocket, *, relay_only: bool = False, can_rollback: bool = False
    ) -> None:
        self.sock = sock
        self.relay_only = relay_only
        self.can_rollback = can_rollback
        self.peer_id = ""
        self.ice_servers: list[dict[str, Any]] = []
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.counters: dict[str, Counter] = {}
        self.states: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        #: Peers this side leads the negotiation with (it offered), their video flag, and
        #: those owed a new offer once the answer to the one in flight is in.
        self._leading: set[str] = set()
        self._video: dict[str, bool] = {}
        self._offer_again: set[str] = set()
        #: Set by close(): a description still arriving meets closed connections, and is
        #: dropped, as a browser's page being left drops it.
        self._closing = False
        sock.handlers.append(self._on_frame)

    def counter(self, peer_id: str) -> Counter:
        return self.counters.setdefault(peer_id, Counter())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def join(self, token: str) -> dict[str, Any]:
        joined = await self.sock.join(token, can_rollback=self.can_rollback)
        self.peer_id = joined["peer_id"]
        self.ice_servers = joined["ice_servers"]
        for peer in joined["peers"]:
            self._video[peer["peer_id"]] = bool(peer.get("media", {}).get("video", True))
            if not joined["polite_toward"][peer["peer_id"]]:
                await self._offer(peer["peer_id"])
        self._spawn(self._ping())
        return joined

    async def _ping(self) -> None:
        while not self.sock.closed.is_set():
            with contextlib.suppress(Exception):
                await self.sock.send({"type": "ping"})
            await asyncio.sleep(1.0)

    def _new_pc(self, peer_id: str) -> RTCPeerConnection:
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        old = self.pcs.pop(peer_id, None)
        if old is not None:
            self._spawn(old.close())
        config = RTCConfiguration(
            iceServers=to_ice_servers(self.ice_servers),
            iceTransportPolicy=(
                RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
            ),
        )
        pc = RTCPeerConnection(config)
        self.pcs[peer_id] = pc
        counter = self.counter(peer_id)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._spawn(self._consume(track, counter))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            self.states[peer_id] = pc.connectionState
            self._spawn(
                self._report({"type": "connection", "state": pc.connectionState, "peer": peer_id})
            )

        return pc

    async def _report(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.sock.send(frame)

    @staticmethod
    async def _consume(track: MediaStreamTrack, counter: Counter) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                await counter.bump(track.kind, frame)

    def _add_tracks(self, pc: RTCPeerConnection) -> None:
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(SyntheticVideoTrack())

    async def _offer(self, peer_id: str) -> None:
        pc = self._new_pc(peer_id)
        self._add_tracks(pc)
        self._leading.add(peer_id)
        await self._send_offer(peer_id, pc)

    async def _send_offer(self, peer_id: str, pc: RTCPeerConnection) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        desc = pc.localDescription
        await self.sock.send(
            {"type": "sdp", "to": peer_id, "description": {"type": desc.type, "sdp": desc.sdp}}
        )

    async def _on_media(self, sender: str, video: bool) -> None:
        """A peer turned its video on or off (audio only): this side, which leads, offers
        again on the same connection, and the peer's answer carries its new directions
        (a browser polite toward us never offers: we could not take its offer)."""
        if self._video.get(sender, True) == video:
            return
        self._video[sender] = video
        pc = self.pcs.get(sender)
        if pc is None or sender not in self._leading:
            return
        if pc.signalingState != "stable":
            self._offer_again.add(sender)
            return
        await self._send_offer(sender, pc)

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        async with self._lock:
            if kind == "peer_joined":
                self._video[frame["peer_id"]] = bool(frame.get("media", {}).get("video", True))
                if not frame["polite"]:
                    await self._offer(frame["peer_id"])
            elif kind == "peer_left":
                self._leading.discard(frame["peer_id"])
                self._offer_again.discard(frame["peer_id"])
                pc = self.pcs.pop(frame["peer_id"], None)
                if pc is not None:
                    await pc.close()
            elif kind == "sdp":
                await self._on_sdp(frame["from"], frame["description"])
            elif kind == "peer_media":
                await self._on_media(frame["from"], bool(frame.get("video", True)))
            elif kind == "ice" and frame.get("candidate"):
                pc = self.pcs.get(frame["from"])
                c = frame["candidate"]
                if pc is not None and c["candidate"]:
                    cand = candidate_from_sdp(c["candidate"].split(":", 1)[1])
                    cand.sdpMid = c["sdpMid"]
                    cand.sdpMLineIndex = c["sdpMLineIndex"]
                    await pc.addIceCandidate(cand)

    async def _on_sdp(self, sender: str, description: dict[str, str]) -> None:
        if self._closing:
            return
        desc = RTCSessionDescription(sdp=description["sdp"], type=description["type"])
        if desc.type == "offer":
            # aiortc cannot roll back, so the server makes sure we are never offered to while
            # our own offer is pending: an offer always starts a fresh connection here.
            pc = self._new_pc(sender)
            self._leading.discard(sender)
            await pc.setRemoteDescription(desc)
            self._add_tracks(pc)
            await pc.setLocalDescription(await pc.createAnswer())
            local = pc.localDescription
            await self.sock.send(
                {"type": "sdp", "to": sender, "description": {"type": local.type, "sdp": local.sdp}}
            )
        else:
            pc = self.pcs.get(sender)
            if pc is not None and pc.signalingState != "closed":
                await pc.setRemoteDescription(desc)
                if sender in self._offer_again:
                    self._offer_again.discard(sender)
                    await self._send_offer(sender, pc)

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(pc.close() for pc in self.pcs.values()), return_exceptions=True)
        self.pcs.clear()
        await self.sock.close()
