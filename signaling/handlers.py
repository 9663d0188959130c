"""HTTP and WebSocket handlers of the signaling app."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from . import envelopes
from .broker import Member
from .hooks import Admission, CallEvent, SignalingConfig, SignalingHooks
from .keys import CONFIG_KEY, HOOKS_KEY, STATE_KEY
from .protocol import (
    CloseCode,
    Frame,
    FrameError,
    dumps,
    error_frame,
    parse,
    peer_joined_frame,
    peer_left_frame,
    peer_link_frame,
    peer_media_frame,
)
from .rooms import Connection, Hub, Reported, monotonic
from .tokens import JoinClaims, TokenRefused, verify_join_token

log = logging.getLogger(__name__)

# Sockets are opened with autoping off, so pings reach the handler and count like any frame.
_CONTROL = frozenset({WSMsgType.PING, WSMsgType.PONG})
_COUNTED = frozenset({WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG})


def hub_of(app: web.Application) -> Hub:
    """Return the running hub of a signaling app."""
    hub = app[STATE_KEY].hub
    if hub is None:
        raise RuntimeError("signaling app is not running")
    return hub


async def close_room(app: web.Application, appointment_id: str, reason: str) -> None:
    """Close every socket of a room on every instance with a ``room_closed`` frame."""
    await hub_of(app).broker.broadcast(envelopes.close_room(appointment_id, reason))


def origin_allowed(request: web.Request, config: SignalingConfig) -> bool:
    """Browsers always send Origin; only clients that are not browsers may omit it."""
    origin = request.headers.get("Origin")
    if origin is None:
        return config.allow_missing_origin
    return origin in config.allowed_origins


async def _record(
    hooks: SignalingHooks,
    room: str,
    kind: str,
    conn: Connection,
    detail: dict[str, Any] | None = None,
) -> None:
    event = CallEvent(
        kind=kind, peer_id=conn.peer_id, role=conn.role, at=datetime.now(UTC), detail=detail or {}
    )
    try:
        await hooks.record(room, event)
    except Exception as exc:
        # One line, and only the error's type: its text may quote the event's data.
        log.warning("recording a %s call event failed: %s", kind, type(exc).__name__)


def _polite(newcomer_can_rollback: bool, existing_can_rollback: bool) -> bool:
    """Whether the newcomer is the polite side toward an existing peer.

    The newcomer is impolite (it offers) unless only the newcomer can roll back.
    """
    return newcomer_can_rollback and not existing_can_rollback


class _Session:
    """The life of one WebSocket, read only by its handler task."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, conn: Connection) -> None:
        self.app = request.app
        self.config = request.app[CONFIG_KEY]
        self.hooks = request.app[HOOKS_KEY]
        self.hub = hub_of(request.app)
        self.ws = ws
        self.conn = conn
        # Set when the peer ended the socket: the code of its close frame, or 1006.
        self.peer_close: int | None = None

    async def _first_message(self) -> WSMessage | None:
        """The first data frame, within ``join_timeout``; pings meanwhile are answered."""
        config, conn = self.config, self.conn
        deadline = asyncio.get_running_loop().time() + config.join_timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                msg = await self.ws.receive(timeout=remaining)
            except TimeoutError:
                await conn.close(CloseCode.JOIN_TIMEOUT, "no join received in time")
                return None
            if msg.type in _CONTROL:
                if not conn.take_token(config.rate_limit_per_second, config.rate_limit_burst):
                    await conn.close(CloseCode.RATE_LIMITED, "too many messages")
                    return None
                if msg.type is WSMsgType.PING:
                    await self.ws.pong(msg.data)
                continue
            return msg

    async def receive_join(self) -> tuple[JoinClaims, bool] | None:
        msg = await self._first_message()
        if msg is None:
            return None
        if msg.type is not WSMsgType.TEXT:
            if msg.type is WSMsgType.BINARY:
                await self.conn.close(CloseCode.PROTOCOL, "text frames only")
            return None
        try:
            frame = parse(msg.data)
        except FrameError as exc:
            await self.conn.close(CloseCode.PROTOCOL, f"first frame must be a join: {exc.message}")
            return None
        if frame.type != "join":
            await self.conn.close(CloseCode.PROTOCOL, "first frame must be a join")
            return None
        try:
            claims = verify_join_token(
                frame.data["token"], public_keys=self.config.public_keys, now=datetime.now(UTC)
            )
        except TokenRefused as exc:
            log.info("join refused: %s", exc.reason)
            await self.conn.close(exc.code, exc.reason)
            return None
        return claims, bool(frame.data["can_rollback"])

    async def run(self) -> None:
        joined = await self.receive_join()
        if joined is None:
            return
        claims, can_rollback = joined
        conn = self.conn
        conn.room, conn.peer_id, conn.role = claims.appointment_id, claims.participant, claims.role
        conn.can_rollback = can_rollback
        admission = await self.hooks.admits(conn.room, claims.version)
        if admission is not Admission.ADMITTED:
            await self._refuse(admission)
            return
        displaced = self.hub.register(conn)
        try:
            if not await self._admit():
                return
            await self._loop()
        finally:
            # A refused join must not hide the peer's socket that still holds the seat.
            self.hub.unregister(conn, restore=None if conn.member is not None else displaced)
            if conn.member is not None:
                await self._leave()

    async def _refuse(self, admission: Admission) -> None:
        conn = self.conn
        if admission is Admission.UNKNOWN:
            # No appointment, so no call log to write to (a test-call token, a made-up room).
            log.info("join refused: no such appointment")
            await conn.close(CloseCode.NOT_LIVE, "appointment is not live")
        elif admission is Admission.OUTDATED:
            await _record(self.hooks, conn.room, "refused", conn, {"reason": "outdated_token"})
            await conn.close(
                CloseCode.TOKEN_OUTDATED, "token outdated: the appointment changed, get a new one"
            )
        else:
            await _record(self.hooks, conn.room, "refused", conn, {"reason": "not_live"})
            await conn.close(CloseCode.NOT_LIVE, "appointment is not live")

    async def _admit(self) -> bool:
        conn, hub, room = self.conn, self.hub, self.conn.room
        member = Member(
            peer_id=conn.peer_id,
            role=conn.role,
            conn_id=conn.conn_id,
            instance_id=hub.instance_id,
            can_rollback=conn.can_rollback,
        )
        result = await hub.broker.join(room, member, self.config.max_participants)
        if not result.admitted:
            await _record(self.hooks, room, "refused", conn, {"reason": "room_full"})
            await conn.close(CloseCode.ROOM_FULL, "room is full")
            return False
        conn.member = result.member
        others = [m for m in result.others if m.peer_id != conn.peer_id]
        seq = result.member.seq
        # What this socket knows of each peer from here on: the seat its `joined` lists.
        conn.seen = {m.peer_id: m.seq for m in others}
        if result.previous is not None:
            # The same participant reconnected: its old socket, wherever it is, is closed.
            await hub.broker.to_instance(
                result.previous.instance_id,
                envelopes.kick(
                    room,
                    result.previous.conn_id,
                    CloseCode.REPLACED,
                    "replaced by a newer connection",
                ),
            )
            # The replaced seat left just before this join (the broker numbered it seq - 1).
            left = peer_left_frame(conn.peer_id, seq=seq - 1)
            await hub.fanout(room, envelopes.to_others(room, conn.peer_id, left, seq=seq - 1))
        polite_for = {m.peer_id: not _polite(conn.can_rollback, m.can_rollback) for m in others}
        joined = peer_joined_frame(
            conn.peer_id, conn.role, reconnected=result.previous is not None, seq=seq
        )
        await hub.fanout(
            room, envelopes.to_others(room, conn.peer_id, joined, seq=seq, polite_for=polite_for)
        )
        ice = await self.hooks.ice_servers(conn.peer_id)
        await conn.send(
            {
                "type": "joined",
                "peer_id": conn.peer_id,
                "role": conn.role,
                "peers": [
                    {
                        "peer_id": m.peer_id,
                        "role": m.role,
                        "media": {"audio": m.audio, "video": m.video},
                        "seq": m.seq,
                    }
                    for m in others
                ],
                "ice_servers": ice,
                "polite_toward": {
                    m.peer_id: _polite(conn.can_rollback, m.can_rollback) for m in others
                },
                "ping_interval": self.config.ping_interval,
                "seq": seq,
            }
        )
        await hub.flush(conn)
        await _record(
            self.hooks,
            room,
            "join",
            conn,
            {"reconnected": result.previous is not None, "can_rollback": conn.can_rollback},
        )
        return True

    def _ended(self, msg: WSMessage) -> None:
        """Note how the peer ended the socket (the server's own closes are on the conn)."""
        if self.conn.close_code is not None:
            return
        if msg.type is WSMsgType.CLOSE:
            # An empty close frame (a browser's close() without a code) carries no code.
            self.peer_close = int(msg.data) or CloseCode.NO_STATUS
        elif msg.type is WSMsgType.CLOSED:
            self.peer_close = CloseCode.ABNORMAL  # end of stream without a close frame

    def _close_detail(self) -> dict[str, Any]:
        """The close code and who sent it: the peer's own, or the server's."""
        if self.peer_close is not None:
            return {"close_code": self.peer_close, "closed_by": "peer"}
        code = self.conn.close_code
        if code is None:
            code = self.ws.close_code
            if code is None or code == CloseCode.ABNORMAL:
                # The connection dropped (aiohttp may even cancel the handler meanwhile).
                return {"close_code": int(CloseCode.ABNORMAL), "closed_by": "peer"}
            # Otherwise aiohttp closed on a protocol error (1009 frame too big, 1002).
        return {"close_code": int(code), "closed_by": "server"}

    async def _leave(self) -> None:
        conn, room = self.conn, self.conn.room
        left = 0
        try:
            left = await self.hub.broker.leave(room, conn.peer_id, conn.conn_id)
            if left:
                frame = peer_left_frame(conn.peer_id, seq=left)
                await self.hub.fanout(
                    room, envelopes.to_others(room, conn.peer_id, frame, seq=left)
                )
        except Exception:
            log.exception("leaving a room failed")
        await _record(
            self.hooks,
            room,
            "leave",
            conn,
            {**self._close_detail(), "replaced": left == 0},
        )

    async def _loop(self) -> None:
        conn, config, hub, ws = self.conn, self.config, self.hub, self.ws
        rate, burst = config.rate_limit_per_second, config.rate_limit_burst
        room, peer_id = conn.room, conn.peer_id
        route_nowait, no_peer = hub.broker.route_nowait, self._no_peer
        text = WSMsgType.TEXT
        while True:
            msg = await ws.receive()
            mtype = msg.type
            if mtype is text:
                if not conn.take_token(rate, burst):
                    await conn.close(CloseCode.RATE_LIMITED, "too many messages")
                    return
                try:
                    kind, data = parse(msg.data)
                    if kind == "ice" or kind == "sdp":
                        # The hot path: one parse, one encode, no other awaits.
                        to = data["to"]
                        if to == peer_id:
                            raise FrameError("unknown_peer", "no such peer in this room")
                        # "from" is always stamped by the server; the client's is never relayed.
                        if kind == "ice":
                            out = {"type": kind, "from": peer_id, "candidate": data["candidate"]}
                        else:
                            out = {
                                "type": kind,
                                "from": peer_id,
                                "description": data["description"],
                            }
                        target = hub.local(room, to)
                        if target is not None and target.pending is None:
                            payload = dumps(out)  # same instance: straight to its socket
                            if not target.queue_encoded(payload):
                                await target.send_encoded(payload)
                        elif target is None and route_nowait(room, to, dumps(out), no_peer):
                            pass  # another instance's: queued for Redis, nothing awaited
                        else:
                            await hub.send_to(room, to, out, no_peer)
                    elif not await self._handle(Frame(kind, data)):
                        return
                except FrameError as exc:
                    await conn.send(error_frame(exc.code, exc.message))
            elif mtype in _COUNTED:
                # Every frame a client sends counts toward the flood limit, whatever its type.
                if not conn.take_token(rate, burst):
                    await conn.close(CloseCode.RATE_LIMITED, "too many messages")
                    return
                if mtype is WSMsgType.BINARY:
                    await conn.send(error_frame("bad_frame", "text frames only"))
                elif mtype is WSMsgType.PING:
                    await ws.pong(msg.data)
            else:
                self._ended(msg)  # closed, closing or error (1009 is sent by aiohttp itself)
                return

    async def _no_peer(self) -> None:
        await self.conn.send(error_frame("unknown_peer", "no such peer in this room"))

    async def _report_connection(self, data: dict[str, Any]) -> None:
        """Record a connection state when it changes, stats every ``stats_interval``.

        Both per remote peer (the frame's ``peer``): browsers report on every ICE or
        stats tick, and a call log is read by people.
        """
        conn, room = self.conn, self.conn.room
        peer: str = data.get("peer", "")
        seen = conn.reported
        if seen is None:
            conn.reported = seen = {}
        last = seen.get(peer)
        if last is None:
            if len(seen) >= self.config.max_participants:
                return  # more peers than a room can hold: made up, not worth a record
            last = seen[peer] = Reported()
        state, stats = data["state"], data.get("stats")
        if state != last.state:
            last.state = state
            detail = {"state": state, "peer": peer} if peer else {"state": state}
            await _record(self.hooks, room, "connection_state", conn, detail)
        if stats:
            now = monotonic()
            if last.stats_at is None or now - last.stats_at >= self.config.stats_interval:
                last.stats_at = now
                await _record(
                    self.hooks,
                    room,
                    "stats",
                    conn,
                    {**stats, "peer": peer} if peer else dict(stats),
                )

    async def _handle(self, frame: Frame) -> bool:
        conn, hub, room, data = self.conn, self.hub, self.conn.room, frame.data
        kind = frame.type
        if kind == "ping":
            await conn.send({"type": "pong"})
        elif kind == "media":
            await hub.broker.set_media(
                room, conn.peer_id, conn.conn_id, data["audio"], data["video"]
            )
            seq = conn.member.seq if conn.member is not None else 0
            media = peer_media_frame(
                conn.peer_id, audio=data["audio"], video=data["video"], seq=seq
            )
            await hub.fanout(room, envelopes.to_others(room, conn.peer_id, media, seq=seq))
            await _record(self.hooks, room, "media", conn, dict(data))
        elif kind == "link":
            link = peer_link_frame(conn.peer_id, data)
            await hub.fanout(room, envelopes.to_others(room, conn.peer_id, link))
            await _record(self.hooks, room, "link", conn, dict(data))
        elif kind == "connection":
            await self._report_connection(data)
        elif kind == "leave":
            await conn.close(CloseCode.NORMAL, "left")
            return False
        elif kind == "join":
            raise FrameError("already_joined", "this socket has already joined")
        return True


async def websocket(request: web.Request) -> web.StreamResponse:
    """Signaling WebSocket: join, then relay sdp/ice and report media/connection state."""
    config = request.app[CONFIG_KEY]
    if not origin_allowed(request, config):
        return web.json_response({"error": "origin not allowed"}, status=403)
    hub = hub_of(request.app)
    ws = web.WebSocketResponse(
        compress=False, max_msg_size=config.max_frame_bytes, autoping=False, heartbeat=None
    )
    await ws.prepare(request)
    transport = request.transport
    conn = Connection(
        ws,
        secrets.token_hex(8),
        burst=config.rate_limit_burst,
        transport=transport if isinstance(transport, asyncio.Transport) else None,
    )
    hub.unjoined.add(conn)
    try:
        await _Session(request, ws, conn).run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("signaling session failed")
        await conn.close(CloseCode.INTERNAL_ERROR, "internal error")
    finally:
        hub.unregister(conn)
        if not ws.closed:
            await conn.close(CloseCode.NORMAL, "bye")
    return ws
