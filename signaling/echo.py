"""Test call: a server-side aiortc peer that sends back what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import ipaddress
import logging
import re
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

from .keys import CONFIG_KEY, HOOKS_KEY, STATE_KEY
from .problems import ECHO_PROBLEMS, TOKEN_PROBLEMS, english_problem_text
from .tokens import TokenRefused, verify_join_token

log = logging.getLogger(__name__)

_CANDIDATE = re.compile(r"^a=candidate:\S+ \S+ \S+ \S+ (\S+) ")


def global_candidates_only(sdp: str) -> str:
    """The offer without the candidates naming a non-global address, or a name.

    The echo peer sends STUN binding requests to every candidate of the offer: a caller
    could make the server probe its own network (loopback, private, link-local ranges)
    or any host a name resolves to. The addresses the caller's own checks come from are
    still learnt (peer-reflexive) when they reach us: for that, the end of candidates is
    not announced (it would end ICE at once when no candidate is left).
    """
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=end-of-candidates"):
            continue
        found = _CANDIDATE.match(line)
        if found is not None:
            try:
                address = ipaddress.ip_address(found.group(1))
            except ValueError:
                continue  # an mDNS or DNS name: where it leads is the caller's choice
            if not address.is_global or address.is_multicast:
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


class CappedVideoTrack(MediaStreamTrack):
    """Video track that downscales to a maximum size and drops frames above a rate."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, *, width: int, height: int, fps: int) -> None:
        super().__init__()
        self._source = source
        self._width = width
        self._height = height
        self._gap = 1.0 / fps
        # Capture clocks jitter: a frame this much early still counts as on time.
        self._slack = self._gap / 10
        self._due: float | None = None

    def _keep(self, at: float | None) -> bool:
        """Whether a frame taken at ``at`` (seconds) fits the rate cap."""
        if at is None:
            return True
        due = self._due
        if due is not None and at < due - self._slack:
            return False
        # The next frame is due one gap after this one was *due*, not after it came: from a
        # 20 fps source and a 15 fps cap, gaps of 50 and 100 ms alternate to make 15 fps
        # (spacing kept frames by a whole gap would keep one in two: 10 fps). After a pause
        # of the source the rhythm starts again, so no burst makes up for it.
        self._due = at + self._gap if due is None or at - due >= self._gap else due + self._gap
        return True

    async def recv(self) -> Any:
        """Return the next frame kept by the rate cap, downscaled if needed."""
        while True:
            frame: Any = await self._source.recv()
            if not self._keep(frame.time):
                continue
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
        allow_private_candidates: bool = False,
    ) -> None:
        # Without an explicit list aiortc would query a public Google STUN server.
        self._ice = [RTCIceServer(urls=list(stun_urls))] if stun_urls else []
        self.max_sessions = max_sessions
        self.max_duration = max_duration
        self.allow_private_candidates = allow_private_candidates
        self._caps = (width, height, fps)
        self.pcs: set[RTCPeerConnection] = set()
        # One test call per participant: whose each one is, and each participant's one.
        self._owner_of: dict[RTCPeerConnection, str] = {}
        self._by_owner: dict[str, RTCPeerConnection] = {}
        self._timers: dict[RTCPeerConnection, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._relay = MediaRelay()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forget(self, pc: RTCPeerConnection) -> None:
        self.pcs.discard(pc)
        owner = self._owner_of.pop(pc, None)
        if owner is not None and self._by_owner.get(owner) is pc:
            del self._by_owner[owner]
        timer = self._timers.pop(pc, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _close_pc(self, pc: RTCPeerConnection) -> None:
        self._forget(pc)
        with contextlib.suppress(Exception):
            await pc.close()

    async def _expire(self, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(self.max_duration)
        await self._close_pc(pc)

    def full(self) -> bool:
        """Whether another test call would exceed the cap."""
        return len(self.pcs) >= self.max_sessions

    def owned_by(self, owner: str) -> RTCPeerConnection | None:
        """The running test call of ``owner``, if any."""
        return self._by_owner.get(owner)

    async def answer(self, offer: RTCSessionDescription, owner: str) -> RTCSessionDescription:
        """Answer an offer with a peer that loops media back and answers data pings.

        A participant has one test call at a time: the caller checks
        :meth:`owned_by` first (a second one is refused until the first ends: closed by
        the caller, failed, or expired), so one token cannot hold every place.
        """
        if owner in self._by_owner:
            raise RuntimeError("one test call at a time per participant")
        if not self.allow_private_candidates:
            offer = RTCSessionDescription(sdp=global_candidates_only(offer.sdp),
                                          type=offer.type)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice)))
        self.pcs.add(pc)
        self._owner_of[pc] = owner
        self._by_owner[owner] = pc
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
            # "closed": aiortc is closing it already (we did, or the caller's DTLS ended).
            # Another close() would wait on aiortc's own, which a cancellation would break.
            if pc.connectionState == "closed":
                self._forget(pc)
            elif pc.connectionState == "failed":
                self._spawn(self._close_pc(pc))

        try:
            await pc.setRemoteDescription(offer)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self._close_pc(pc)
            raise
        if pc in self.pcs:  # not failed meanwhile
            self._timers[pc] = asyncio.create_task(self._expire(pc))
        local: RTCSessionDescription = pc.localDescription
        return local

    async def close(self) -> None:
        """Cancel the timers, let closes under way end, close every echo peer connection."""
        timers = list(self._timers.values())
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(pc.close() for pc in list(self.pcs)), return_exceptions=True)
        self.pcs.clear()
        self._owner_of.clear()
        self._by_owner.clear()
        self._timers.clear()


def _problem(request: web.Request, code: str, **headers: str) -> web.Response:
    """An echo problem as problem+json, in the caller's language when the host renders it."""
    status = ECHO_PROBLEMS[code].status
    accept_language = request.headers.get("Accept-Language")
    render = getattr(request.app[HOOKS_KEY], "problem_text", None)
    try:
        title, detail, language = (
            render(code, accept_language) if render else english_problem_text(code)
        )
    except Exception as exc:
        log.warning("rendering an echo problem failed: %s", type(exc).__name__)
        title, detail, language = english_problem_text(code)
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code}
    response = web.json_response(body, status=status, content_type="application/problem+json")
    response.headers.update(headers)
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"
    return response


async def echo(request: web.Request) -> web.StreamResponse:
    """POST an SDP offer (and a join token), get the echo peer's answer."""
    config = request.app[CONFIG_KEY]
    sessions = request.app[STATE_KEY].echo
    if sessions is None:
        return _problem(request, "not_running")
    try:
        body = await request.json()
    except ValueError:
        return _problem(request, "bad_json")
    if not isinstance(body, dict):
        return _problem(request, "bad_body")
    token = body.get("token")
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    if not isinstance(token, str):
        return _problem(request, "token_required", **{"WWW-Authenticate": "Bearer"})
    try:
        claims = verify_join_token(token, public_keys=config.public_keys, now=datetime.now(UTC))
    except TokenRefused as exc:
        code = TOKEN_PROBLEMS.get(exc.code, "token_invalid")
        return _problem(request, code, **{"WWW-Authenticate": "Bearer"})
    if body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
        return _problem(request, "bad_body")
    if len(body["sdp"]) > config.max_frame_bytes:
        return _problem(request, "offer_too_large")
    if sessions.owned_by(claims.participant) is not None:
        return _problem(request, "already_running", **{"Retry-After": "10"})
    if sessions.full():
        return _problem(request, "busy", **{"Retry-After": "60"})
    try:
        answer = await sessions.answer(
            RTCSessionDescription(sdp=body["sdp"], type="offer"), claims.participant
        )
    except Exception as exc:
        # The error's type only: its text may quote the offer (addresses of the caller).
        log.info("echo offer refused: %s", type(exc).__name__)
        return _problem(request, "offer_refused")
    return web.json_response({"type": answer.type, "sdp": answer.sdp})
