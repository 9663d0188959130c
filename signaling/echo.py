"""Test call: a server-side aiortc peer that sends back what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from .keys import CONFIG_KEY, STATE_KEY
from .tokens import TokenRefused, verify_join_token

log = logging.getLogger(__name__)

BUSY_DETAIL = "too many test calls in progress, try again in a minute"


class CappedVideoTrack(MediaStreamTrack):
    """Video track that downscales to a maximum size and drops frames above a rate."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, *, width: int, height: int, fps: int) -> None:
        super().__init__()
        self._source = source
        self._width = width
        self._height = height
        self._min_gap = 1.0 / fps
        self._last: float | None = None

    async def recv(self) -> Any:
        """Return the next frame kept by the rate cap, downscaled if needed."""
        while True:
            frame: Any = await self._source.recv()
            at = frame.time
            if at is not None and self._last is not None and at - self._last < self._min_gap * 0.9:
                continue
            self._last = at
            if frame.width > self._width or frame.height > self._height:
                scale = min(self._width / frame.width, self._height / frame.height)
                # Even dimensions keep the YUV 4:2:0 encoder happy.
                w = max(2, int(frame.width * scale) // 2 * 2)
                h = max(2, int(frame.height * scale) // 2 * 2)
                pts, time_base = frame.pts, frame.time_base
                frame = frame.reformat(width=w, height=h)
                frame.pts = pts
                frame.time_base = time_base or fractions.Fraction(1, 90000)
            return frame

    def stop(self) -> None:
        """Stop this track and its source."""
        super().stop()
        self._source.stop()


class EchoSessions:
    """The echo peer connections of one instance, capped in number and duration."""

    def __init__(
        self,
        *,
        max_sessions: int,
        max_duration: float,
        width: int,
        height: int,
        fps: int,
        stun_urls: tuple[str, ...] = (),
    ) -> None:
        # Without an explicit list aiortc would query a public Google STUN server.
        self._ice = [RTCIceServer(urls=list(stun_urls))] if stun_urls else []
        self.max_sessions = max_sessions
        self.max_duration = max_duration
        self._caps = (width, height, fps)
        self.pcs: set[RTCPeerConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._relay = MediaRelay()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_pc(self, pc: RTCPeerConnection) -> None:
        self.pcs.discard(pc)
        with contextlib.suppress(Exception):
            await pc.close()

    async def _expire(self, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(self.max_duration)
        await self._close_pc(pc)

    def full(self) -> bool:
        """Whether another test call would exceed the cap."""
        return len(self.pcs) >= self.max_sessions

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answer an offer with a peer that loops media back and answers data pings."""
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice)))
        self.pcs.add(pc)
        width, height, fps = self._caps

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            looped = self._relay.subscribe(track)
            if track.kind == "video":
                looped = CappedVideoTrack(looped, width=width, height=height, fps=fps)
            pc.addTrack(looped)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            @channel.on("message")
            def on_message(message: Any) -> None:
                if isinstance(message, str) and message.startswith("ping"):
                    channel.send("pong" + message[4:])

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._spawn(self._close_pc(pc))

        try:
            await pc.setRemoteDescription(offer)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self._close_pc(pc)
            raise
        self._spawn(self._expire(pc))
        local: RTCSessionDescription = pc.localDescription
        return local

    async def close(self) -> None:
        """Close every echo peer connection and cancel timers."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(pc.close() for pc in list(self.pcs)), return_exceptions=True)
        self.pcs.clear()


def _problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


async def echo(request: web.Request) -> web.StreamResponse:
    """POST an SDP offer (and a join token), get the echo peer's answer."""
    config = request.app[CONFIG_KEY]
    sessions = request.app[STATE_KEY].echo
    if sessions is None:
        return _problem(503, "Service Unavailable", "signaling is not running")
    try:
        body = await request.json()
    except ValueError:
        return _problem(400, "Bad Request", "body must be JSON")
    if not isinstance(body, dict):
        return _problem(400, "Bad Request", "body must be a JSON object")
    token = body.get("token")
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    if not isinstance(token, str):
        return _problem(401, "Unauthorized", "a join token is required")
    try:
        verify_join_token(token, public_keys=config.public_keys, now=datetime.now(UTC))
    except TokenRefused as exc:
        return _problem(401, "Unauthorized", exc.reason, code=exc.code)
    if body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
        return _problem(400, "Bad Request", "body must hold an offer: {type: 'offer', sdp}")
    if len(body["sdp"]) > config.max_frame_bytes:
        return _problem(413, "Content Too Large", "offer too large")
    if sessions.full():
        resp = _problem(503, "Service Unavailable", BUSY_DETAIL)
        resp.headers["Retry-After"] = "60"
        return resp
    try:
        answer = await sessions.answer(RTCSessionDescription(sdp=body["sdp"], type="offer"))
    except Exception:
        log.info("echo offer refused", exc_info=True)
        return _problem(400, "Bad Request", "offer could not be answered")
    return web.json_response({"type": answer.type, "sdp": answer.sdp})
