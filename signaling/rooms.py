"""Local registry of sockets per room, delivery to them, heartbeat sweeping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import defaultdict

from aiohttp import WSMsgType, web

from .broker import Broker, Member, Missing
from .envelopes import Envelope, encoded_to_peer, to_peer
from .protocol import CloseCode, ServerFrame, dumps

log = logging.getLogger(__name__)

# Frames to one socket are coalesced into one transport write per event-loop iteration,
# up to this many bytes; beyond this many bytes waiting in the transport (a slow reader),
# frames go through aiohttp's own send, which waits for the transport to drain.
COALESCE_BYTES = 64 * 1024
BACKLOG_BYTES = 64 * 1024
_LEN16 = struct.Struct("!BBH").pack
_LEN64 = struct.Struct("!BBQ").pack
# Monotonic clock for heartbeats and rate limits (an alias: no wrapper call per frame).
monotonic = time.monotonic


def text_frame_header(length: int) -> bytes:
    """RFC 6455 header of a final, unmasked, uncompressed text frame (server to client)."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return _LEN16(0x81, 126, length)
    return _LEN64(0x81, 127, length)


class Reported:
    """What was last recorded of a socket's connection to one remote peer."""

    __slots__ = ("state", "stats_at")

    def __init__(self) -> None:
        self.state: str | None = None
        self.stats_at: float | None = None


class Connection:
    """One joined (or joining) WebSocket of a participant."""

    __slots__ = (
        "can_rollback",
        "close_code",
        "closing",
        "conn_id",
        "last_seen",
        "member",
        "out",
        "out_bytes",
        "peer_id",
        "pending",
        "reported",
        "role",
        "room",
        "seen",
        "stamp",
        "tokens",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        conn_id: str,
        *,
        burst: int,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.ws = ws
        # The socket's transport, for coalesced writes; None sends frame by frame.
        self.transport = transport
        # Encoded frames (headers and payloads) waiting for the end of this loop iteration.
        self.out: list[bytes] | None = None
        self.out_bytes = 0
        self.conn_id = conn_id
        self.room = ""
        self.peer_id = ""
        self.role = ""
        self.can_rollback = True
        self.member: Member | None = None
        # Per peer, the seq of the last join or leave of it this socket learnt (its
        # `joined` list, then the peer_joined / peer_left sent); set once seated.
        self.seen: dict[str, int] = {}
        # Frames addressed to this socket before its own `joined` was sent, flushed after it.
        self.pending: list[Envelope] | None = []
        # Per remote peer, the last connection state recorded and when stats last were
        # (made on the first `connection` frame: an idle socket stays small).
        self.reported: dict[str, Reported] | None = None
        self.last_seen = monotonic()
        self.tokens = float(burst)
        self.stamp = self.last_seen
        self.closing = False
        # The code of the close the server started, if it did.
        self.close_code: int | None = None

    def take_token(self, rate: float, burst: int) -> bool:
        """Token bucket, O(1): return False when the socket exceeded its rate and burst."""
        now = monotonic()
        self.last_seen = now
        tokens = self.tokens + (now - self.stamp) * rate
        if tokens > burst:
            tokens = float(burst)
        self.stamp = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True

    def fresh(self, envelope: Envelope) -> bool:
        """Whether an event about a peer is news to this socket (see docs/signaling.md).

        Joins and leaves share one numbering per room. An event older than what this
        socket knows of the peer (its `joined` list, taken atomically with its own seat,
        or a later peer_joined / peer_left) is dropped: it reached this instance late, by
        another instance's channel, and applying it would undo the newer state.
        """
        seq = envelope.get("seq")
        if seq is None:
            return True
        peer = envelope.get("exclude", "")
        own = self.member.seq if self.member is not None else 0
        known = self.seen.get(peer, own)
        frame = envelope.get("frame") or {}
        if frame.get("type") == "peer_media":
            return seq >= known  # from the seat known, or a newer one
        if seq <= known:
            return False
        self.seen[peer] = seq
        return True

    async def send(self, frame: ServerFrame) -> None:
        """Encode and send one frame."""
        await self.send_encoded(dumps(frame))

    async def send_encoded(self, payload: bytes) -> None:
        """Send one already encoded JSON frame as a text frame.

        Frames are queued and written to the transport together, with one write (one
        system call) at the end of the current event-loop iteration, instead of one write
        per frame: a relay that drains a burst of frames from one socket, or a Redis batch,
        writes each recipient's share at once. The frames are complete RFC 6455 text
        frames (sockets are opened without compression, server frames are not masked), so
        aiohttp's own control frames (pong, close) can only fall between two of them. The
        queue is written before a close (see ``close``) and dropped once the socket is
        closed. Frames leave in call order, so no lock is needed; when the reader is slow
        (the transport already holds ``BACKLOG_BYTES``) frames go through aiohttp's
        ``send_frame``, whose drain makes the sender wait as before.
        """
        if not self.queue_encoded(payload):
            self.flush()
            try:
                await self.ws.send_frame(payload, WSMsgType.TEXT)
            except (ConnectionError, RuntimeError):
                self.closing = True

    def queue_encoded(self, payload: bytes) -> bool:
        """Queue a frame for the coalesced write (see ``send_encoded``), without awaiting.

        Returns False, queueing nothing, when the frame must go through ``send_encoded``
        instead (no transport, or the reader is slow). A closed socket drops the frame.
        """
        if self.closing or self.ws.closed:
            return True
        transport = self.transport
        if transport is None or transport.get_write_buffer_size() > BACKLOG_BYTES:
            return False
        out = self.out
        if out is None:
            self.out = out = []
            asyncio.get_running_loop().call_soon(self.flush)
        out.append(text_frame_header(len(payload)))
        out.append(payload)
        self.out_bytes += len(payload)
        if self.out_bytes > COALESCE_BYTES:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the queued frames now (called at the end of the loop iteration)."""
        out = self.out
        if out is None:
            return
        self.out = None
        self.out_bytes = 0
        transport = self.transport
        if self.ws.closed or transport is None or transport.is_closing():
            return
        try:
            transport.write(b"".join(out))
        except (ConnectionError, RuntimeError):
            self.closing = True

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with a code and a short reason, after the frames queued for it."""
        if self.ws.closed:
            return
        self.flush()
        self.closing = True
        if self.close_code is None:
            self.close_code = code
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=reason.encode("utf-8")[:120])


def _encoded(envelope: Envelope) -> bytes | None:
    """The envelope's frame, encoded: ``text`` (a relay from another instance) or ``frame``."""
    text = envelope.get("text")
    if text is not None:
        return text.encode()
    frame = envelope.get("frame")
    return None if frame is None else dumps(frame)


class Hub:
    """The sockets of this instance, by room and by connection id."""

    def __init__(self, broker: Broker, *, instance_id: str) -> None:
        self.broker = broker
        self.instance_id = instance_id
        self.rooms: dict[str, dict[str, Connection]] = defaultdict(dict)
        self.by_conn: dict[str, Connection] = {}
        self.unjoined: set[Connection] = set()

    def register(self, conn: Connection) -> Connection | None:
        """Make a joining socket reachable before its seat is taken; return the one it hides."""
        self.unjoined.discard(conn)
        members = self.rooms[conn.room]
        displaced = members.get(conn.peer_id)
        members[conn.peer_id] = conn
        self.by_conn[conn.conn_id] = conn
        return displaced

    def unregister(self, conn: Connection, *, restore: Connection | None = None) -> None:
        """Forget a socket; a newer socket of the same peer stays, a hidden one comes back."""
        self.unjoined.discard(conn)
        self.by_conn.pop(conn.conn_id, None)
        room = self.rooms.get(conn.room)
        if room is not None and room.get(conn.peer_id) is conn:
            if restore is not None and not restore.ws.closed and restore.conn_id in self.by_conn:
                room[conn.peer_id] = restore
                return
            del room[conn.peer_id]
            if not room:
                del self.rooms[conn.room]

    def local(self, room: str, peer_id: str) -> Connection | None:
        """Return this instance's socket of a peer, if any."""
        members = self.rooms.get(room)
        return None if members is None else members.get(peer_id)

    def all_connections(self) -> list[Connection]:
        """Every socket, joined or not."""
        return [*self.by_conn.values(), *self.unjoined]

    async def deliver(self, envelope: Envelope) -> None:
        """Deliver an envelope to the local sockets it addresses."""
        room = envelope.get("room", "")
        conn_id = envelope.get("conn")
        targets: list[Connection]
        if conn_id is not None:
            found = self.by_conn.get(conn_id)
            targets = [found] if found is not None and found.room == room else []
        else:
            members = self.rooms.get(room, {})
            to = envelope.get("to")
            if to is not None:
                one = members.get(to)
                targets = [one] if one is not None else []
            else:
                exclude = envelope.get("exclude")
                targets = [c for p, c in members.items() if p != exclude]
        # The frame is encoded once for every recipient (unless it differs per recipient).
        encoded: bytes | None = None
        ordered = "seq" in envelope
        for conn in targets:
            if conn.pending is not None and "close" not in envelope:
                conn.pending.append(envelope)
                continue
            if ordered and not conn.fresh(envelope):
                continue
            if encoded is None and "polite_for" not in envelope:
                encoded = _encoded(envelope)
            if encoded is not None and "close" not in envelope and conn.queue_encoded(encoded):
                continue  # the common case (a relayed frame), without a coroutine
            await self._send_envelope(conn, envelope, encoded)

    async def _send_envelope(
        self, conn: Connection, envelope: Envelope, encoded: bytes | None = None
    ) -> None:
        if encoded is None:
            frame = envelope.get("frame")
            polite_for = envelope.get("polite_for")
            if frame is not None and polite_for is not None:
                frame = {**frame, "polite": bool(polite_for.get(conn.peer_id, True))}
                encoded = dumps(frame)
            else:
                encoded = _encoded(envelope)
        if encoded is not None:
            await conn.send_encoded(encoded)
        close = envelope.get("close")
        if close is not None:
            await conn.close(int(close[0]), str(close[1]))

    async def flush(self, conn: Connection) -> None:
        """Send frames queued while the socket was joining, dropping the stale events.

        A join or leave numbered before this socket's own join is already in its `joined`
        list (or the peer is already gone from it): see ``Connection.fresh``.
        """
        queue = conn.pending or []
        while queue:
            envelope = queue.pop(0)
            if not conn.fresh(envelope):
                continue
            await self._send_envelope(conn, envelope)
        conn.pending = None

    async def fanout(self, room: str, envelope: Envelope) -> None:
        """Deliver to local sockets of the room, then to other instances."""
        await self.deliver(envelope)
        await self.broker.publish_room(room, envelope)

    async def send_to(
        self, room: str, peer_id: str, frame: ServerFrame, on_missing: Missing
    ) -> None:
        """Deliver a frame to one peer wherever it is; call ``on_missing`` if it is absent.

        A peer on this instance gets the frame encoded once and written directly.
        """
        members = self.rooms.get(room)
        conn = None if members is None else members.get(peer_id)
        if conn is None:
            # The frame travels encoded, as a JSON string: the receiving instance writes it
            # out as is, instead of parsing it into objects and encoding it again.
            envelope = encoded_to_peer(room, peer_id, dumps(frame).decode())
            await self.broker.route(room, peer_id, envelope, on_missing)
        elif conn.pending is not None:
            conn.pending.append(to_peer(room, peer_id, frame))
        else:
            payload = dumps(frame)
            if not conn.queue_encoded(payload):
                await conn.send_encoded(payload)

    async def sweep(self, silence_timeout: float) -> None:
        """Close sockets silent for longer than ``silence_timeout``."""
        limit = monotonic() - silence_timeout
        for conn in self.all_connections():
            if conn.last_seen < limit and not conn.ws.closed:
                await conn.close(CloseCode.SILENT, "no ping received")

    async def refresh_presence(self) -> None:
        """Extend the broker seats of this instance's joined sockets."""
        for room, members in list(self.rooms.items()):
            seats = [c.member for c in members.values() if c.member is not None]
            if seats:
                await self.broker.refresh(room, seats)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every socket (shutdown)."""
        conns = self.all_connections()
        await asyncio.gather(*(c.close(code, reason) for c in conns), return_exceptions=True)


async def run_sweeper(
    hub: Hub, *, interval: float, silence_timeout: float, presence_every: float
) -> None:
    """Periodic task: heartbeat sweep and presence refresh, one task per instance."""
    last_refresh = monotonic()
    while True:
        await asyncio.sleep(interval)
        try:
            await hub.sweep(silence_timeout)
            if monotonic() - last_refresh >= presence_every:
                last_refresh = monotonic()
                await hub.refresh_presence()
        except Exception:
            log.exception("signaling sweep failed")
