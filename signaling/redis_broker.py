"""Broker over Redis: seats in a hash per room, one pub/sub channel per instance.

The Lua scripts are package files (``signaling/lua/*.lua``), each run atomically by Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast

import orjson

from .broker import Deliver, JoinResult, Member, Missing
from .envelopes import Envelope

log = logging.getLogger(__name__)
_dumps = orjson.dumps


def _script(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")


OUTBOX_SIZE = 10_000
BATCH_SIZE = 1024
# kind, room (or ""), target, envelope JSON, callback when the target peer is missing
_Outgoing = tuple[str, str, str, bytes, Missing | None]


class _Outbox:
    """Bounded FIFO between the senders and the Redis writer task.

    Queueing is a deque append, without a coroutine per frame; when the outbox is full,
    senders wait for room (each sender's own frames keep their order, since a waiting
    sender's handler sends nothing else meanwhile).
    """

    def __init__(self, maxsize: int) -> None:
        self.items: deque[_Outgoing] = deque()
        self.maxsize = maxsize
        self.taken = 0  # records handed to the writer and not yet sent
        self._getter: asyncio.Future[None] | None = None
        self._room = asyncio.Event()
        self._sent = asyncio.Event()

    def put_nowait(self, item: _Outgoing) -> bool:
        """Queue ``item`` unless the outbox is full."""
        if len(self.items) >= self.maxsize:
            return False
        self.items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        return True

    async def put(self, item: _Outgoing) -> None:
        """Queue ``item``, waiting for room."""
        while not self.put_nowait(item):
            self._room.clear()
            await self._room.wait()

    async def take(self, limit: int) -> list[_Outgoing]:
        """Wait for records, then take up to ``limit`` of them, oldest first."""
        items = self.items
        while not items:
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        batch = [items.popleft() for _ in range(min(limit, len(items)))]
        self.taken = len(batch)
        self._room.set()
        return batch

    def done(self) -> None:
        """The batch handed out by ``take`` was sent (or dropped)."""
        self.taken = 0
        self._sent.set()

    def busy(self) -> bool:
        """Whether records are queued or being sent."""
        return bool(self.items) or self.taken > 0

    async def join(self) -> None:
        """Wait until every queued record was sent (or dropped)."""
        while self.busy():
            self._sent.clear()
            await self._sent.wait()


class RedisBroker:
    """Broker over Redis: seats in a hash per room, one pub/sub channel per instance."""

    def __init__(self, url: str, *, instance_id: str, prefix: str, presence_ttl: float) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url)
        self._instance_id = instance_id
        self._prefix = prefix
        self._ttl = presence_ttl
        self._inst_prefix = f"{prefix}:inst:"
        self._all_channel = f"{prefix}:all"
        self._join = self._redis.register_script(_script("join"))
        self._leave = self._redis.register_script(_script("leave"))
        self._media = self._redis.register_script(_script("media"))
        self._refresh = self._redis.register_script(_script("refresh"))
        self._batch = self._redis.register_script(_script("batch"))
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._deliver: Deliver | None = None
        # Relays and fan-outs go through one FIFO written in pipelines by one task: senders
        # do not wait for a Redis round trip per frame, and frames keep their order.
        self._outbox = _Outbox(OUTBOX_SIZE)

    def _keys(self, room: str) -> list[str]:
        base = f"{self._prefix}:room:{room}"
        return [f"{base}:members", f"{base}:expiry", f"{base}:seq"]

    async def start(self, deliver: Deliver) -> None:
        """Subscribe to this instance's channel and the broadcast channel."""
        self._deliver = deliver
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._inst_prefix + self._instance_id, self._all_channel)
        self._reader = asyncio.create_task(self._read(), name="signaling-redis-reader")
        self._writer = asyncio.create_task(self._write(), name="signaling-redis-writer")

    async def _write(self) -> None:
        outbox = self._outbox
        while True:
            batch = await outbox.take(BATCH_SIZE)
            try:
                keys: list[str] = []
                key_index: dict[str, int] = {}
                records: list[list[str | int]] = []  # [kind, key index, target, length]
                texts: list[bytes] = []
                runs: list[list[Missing | None]] = []  # the callbacks of each record
                last_kind = last_room = last_target = None
                for kind, room, target, envelope, on_missing in batch:
                    if target == last_target and room == last_room and kind == last_kind:
                        record = records[-1]
                        record[3] = int(record[3]) + 1 + len(envelope)
                        texts.append(b",")
                        texts.append(envelope)
                        runs[-1].append(on_missing)
                        continue
                    last_kind, last_room, last_target = kind, room, target
                    index = 0
                    if room:
                        index = key_index.get(room, 0)
                        if not index:
                            keys.append(self._keys(room)[0])
                            index = key_index[room] = len(keys)
                    records.append([kind, index, target, len(envelope)])
                    texts.append(envelope)
                    runs.append([on_missing])
                # Two arguments for the whole batch: packing a command costs per argument.
                args = [self._inst_prefix, self._instance_id, self._all_channel]
                missing = await self._batch(
                    keys=keys, args=[*args, orjson.dumps(records), b"".join(texts)]
                )
                for position in missing:
                    for on_missing in runs[int(position) - 1]:
                        if on_missing is not None:
                            await on_missing()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis publish pipeline failed; %d frames lost", len(batch))
            finally:
                outbox.done()

    async def _read(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis pub/sub read failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if msg is None or msg.get("type") != "message" or self._deliver is None:
                continue
            try:
                envelopes = cast(list[Envelope], orjson.loads(msg["data"]))
            except ValueError:
                log.exception("undecodable broker message dropped")
                continue
            for envelope in envelopes:
                try:
                    await self._deliver(envelope)
                except Exception:
                    log.exception("delivery of a broker envelope failed")

    async def close(self) -> None:
        """Flush pending publishes, stop the tasks and close connections."""
        if self._writer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._outbox.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        await self._redis.aclose()

    async def join(self, room: str, member: Member, cap: int) -> JoinResult:
        """Admit atomically with a Lua script."""
        ok, encoded, prev, others = await self._join(
            keys=self._keys(room), args=[member.peer_id, member.to_json(), cap, self._ttl]
        )
        others_m = [Member.from_json(v) for v in others]
        if not ok:
            return JoinResult(False, member, None, others_m)
        previous = Member.from_json(prev) if prev else None
        return JoinResult(True, Member.from_json(encoded), previous, others_m)

    async def leave(self, room: str, peer_id: str, conn_id: str) -> int:
        """Remove the seat if still owned by ``conn_id``; return the leave's seq (0: not)."""
        done = await self._leave(keys=self._keys(room), args=[peer_id, conn_id])
        return int(done)

    async def set_media(
        self, room: str, peer_id: str, conn_id: str, audio: bool, video: bool
    ) -> None:
        """Store a peer's mute state."""
        await self._media(
            keys=self._keys(room)[:1], args=[peer_id, conn_id, int(audio), int(video)]
        )

    async def refresh(self, room: str, seats: Sequence[Member]) -> None:
        """Extend presence of this instance's seats; re-create those Redis lost."""
        args: list[Any] = [self._ttl]
        for seat in seats:
            args += [seat.peer_id, seat.conn_id, seat.to_json()]
        await self._refresh(keys=self._keys(room), args=args)

    async def _queue(self, item: _Outgoing) -> None:
        if not self._outbox.put_nowait(item):
            await self._outbox.put(item)

    def route_nowait(self, room: str, peer_id: str, payload: bytes, on_missing: Missing) -> bool:
        """Queue an encoded frame for the instance holding ``peer_id``, without awaiting.

        The relay's hot path (no coroutine, no envelope built and encoded in two steps);
        False when the outbox is full: then ``route`` waits for room.
        """
        envelope = _dumps({"room": room, "to": peer_id, "text": payload.decode()})
        return self._outbox.put_nowait(("r", room, peer_id, envelope, on_missing))

    async def route(self, room: str, peer_id: str, envelope: Envelope, on_missing: Missing) -> None:
        """Queue for the instance holding ``peer_id`` (looked up when the batch runs)."""
        item = ("r", room, peer_id, orjson.dumps(envelope), on_missing)
        if not self._outbox.put_nowait(item):  # the hot path awaits nothing
            await self._outbox.put(item)

    async def publish_room(self, room: str, envelope: Envelope) -> None:
        """Queue for every other instance holding members of the room."""
        await self._queue(("p", room, "", orjson.dumps(envelope), None))

    async def to_instance(self, instance_id: str, envelope: Envelope) -> None:
        """Queue for one instance."""
        await self._queue(("i", "", instance_id, orjson.dumps(envelope), None))

    async def broadcast(self, envelope: Envelope) -> None:
        """Queue for every instance."""
        await self._queue(("a", "", "", orjson.dumps(envelope), None))
