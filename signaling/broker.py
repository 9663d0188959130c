"""Brokers: room membership, the participant cap, and delivery between instances."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)

Envelope = dict[str, Any]
Deliver = Callable[[Envelope], Awaitable[None]]
Missing = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Member:
    """One participant of a room, as every instance sees it."""

    peer_id: str
    role: str
    conn_id: str
    instance_id: str
    can_rollback: bool
    audio: bool = True
    video: bool = True
    seq: int = 0

    def to_json(self) -> str:
        """Serialise for storage."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Member:
        """Deserialise from storage."""
        return cls(**json.loads(text))


@dataclass(frozen=True, slots=True)
class JoinResult:
    """Outcome of an atomic join: admitted or not, who was replaced, who else is there."""

    admitted: bool
    member: Member
    previous: Member | None
    others: list[Member]


class Broker(Protocol):
    """Membership and delivery shared by every signaling instance."""

    async def start(self, deliver: Deliver) -> None:
        """Start receiving envelopes addressed to this instance."""
        ...

    async def close(self) -> None:
        """Stop receiving and release connections."""
        ...

    async def join(self, room: str, member: Member, cap: int) -> JoinResult:
        """Admit ``member`` atomically unless the room already holds ``cap`` others."""
        ...

    async def leave(self, room: str, peer_id: str, conn_id: str) -> bool:
        """Remove the peer if ``conn_id`` is still its connection; return whether it was."""
        ...

    async def set_media(
        self, room: str, peer_id: str, conn_id: str, audio: bool, video: bool
    ) -> None:
        """Store a peer's mute state."""
        ...

    async def refresh(self, room: str, peers: Sequence[tuple[str, str]]) -> None:
        """Extend presence of (peer_id, conn_id) pairs held by this instance."""
        ...

    async def route(self, room: str, peer_id: str, envelope: Envelope, on_missing: Missing) -> None:
        """Send to the instance holding ``peer_id``; call ``on_missing`` if it is no member."""
        ...

    async def publish_room(self, room: str, envelope: Envelope) -> None:
        """Send to every other instance holding members of ``room``."""
        ...

    async def to_instance(self, instance_id: str, envelope: Envelope) -> None:
        """Send to one instance (this one included)."""
        ...

    async def broadcast(self, envelope: Envelope) -> None:
        """Send to every instance, this one included."""
        ...


class InMemoryBroker:
    """Single-process broker: membership in a dict, delivery by direct call."""

    def __init__(self, instance_id: str) -> None:
        self._instance_id = instance_id
        self._rooms: dict[str, dict[str, Member]] = {}
        self._seq = 0
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        """Remember the local delivery callback."""
        self._deliver = deliver

    async def close(self) -> None:
        """Forget every room."""
        self._rooms.clear()
        self._deliver = None

    async def join(self, room: str, member: Member, cap: int) -> JoinResult:
        """Admit atomically (no await between check and insert)."""
        members = self._rooms.setdefault(room, {})
        previous = members.get(member.peer_id)
        if previous is None and len(members) >= cap:
            return JoinResult(False, member, None, list(members.values()))
        self._seq += 1
        member = replace(member, seq=self._seq)
        members[member.peer_id] = member
        others = [m for p, m in members.items() if p != member.peer_id]
        return JoinResult(True, member, previous, others)

    async def leave(self, room: str, peer_id: str, conn_id: str) -> bool:
        """Remove the peer if the connection still owns its seat."""
        members = self._rooms.get(room)
        if not members or peer_id not in members or members[peer_id].conn_id != conn_id:
            return False
        del members[peer_id]
        if not members:
            del self._rooms[room]
        return True

    async def set_media(
        self, room: str, peer_id: str, conn_id: str, audio: bool, video: bool
    ) -> None:
        """Store a peer's mute state."""
        members = self._rooms.get(room, {})
        current = members.get(peer_id)
        if current is not None and current.conn_id == conn_id:
            members[peer_id] = replace(current, audio=audio, video=video)

    async def refresh(self, room: str, peers: Sequence[tuple[str, str]]) -> None:
        """Nothing expires in a single process."""

    async def route(self, room: str, peer_id: str, envelope: Envelope, on_missing: Missing) -> None:
        """Every member is local here, so only report a missing one."""
        if peer_id not in self._rooms.get(room, {}):
            await on_missing()

    async def publish_room(self, room: str, envelope: Envelope) -> None:
        """No other instance exists."""

    async def to_instance(self, instance_id: str, envelope: Envelope) -> None:
        """Deliver locally when addressed to this instance."""
        if instance_id == self._instance_id and self._deliver is not None:
            await self._deliver(envelope)

    async def broadcast(self, envelope: Envelope) -> None:
        """Deliver locally."""
        if self._deliver is not None:
            await self._deliver(envelope)


# KEYS: members hash, expiry zset, sequence counter. ARGV: peer_id, member json, cap, ttl.
# Expired seats (a crashed instance stops refreshing them) are purged before counting, and
# the count and the insert happen in one script, so racing joins cannot exceed the cap.
_JOIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[4])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, p in ipairs(expired) do
  redis.call('HDEL', KEYS[1], p)
  redis.call('ZREM', KEYS[2], p)
end
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if not prev and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return {0, '', '', redis.call('HVALS', KEYS[1])}
end
local seq = redis.call('INCR', KEYS[3])
local member = cjson.decode(ARGV[2])
member['seq'] = seq
local encoded = cjson.encode(member)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
local keep = math.ceil(ttl * 4)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], keep) end
local others = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then table.insert(others, all[i + 1]) end
end
return {1, encoded, prev or '', others}
"""

# KEYS: members hash, expiry zset. ARGV: peer_id, conn_id.
_LEAVE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
if cjson.decode(cur)['conn_id'] ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# KEYS: members hash. ARGV: peer_id, conn_id, audio, video.
_MEDIA = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local m = cjson.decode(cur)
if m['conn_id'] ~= ARGV[2] then return 0 end
m['audio'] = ARGV[3] == '1'
m['video'] = ARGV[4] == '1'
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(m))
return 1
"""

# KEYS: members hash, expiry zset, sequence. ARGV: ttl, then peer_id/conn_id pairs.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and cjson.decode(cur)['conn_id'] == ARGV[i + 1] then
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
  end
end
local keep = math.ceil(ttl * 4)
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], keep) end
return 1
"""

# One call delivers a whole batch of outgoing envelopes, in order. ARGV: channel prefix,
# this instance, broadcast channel, the batch's records as ONE JSON array of [kind, index
# into KEYS (a room's members hash, 0 when unused), target, byte length], and the
# envelopes' JSON texts concatenated in the same order (cut by those lengths, so they are
# neither escaped nor parsed on the way). Consecutive envelopes of the same kind to the
# same target (a burst of ICE candidates) form one record whose text is the envelopes
# joined by commas, so Redis looks the peer up and queues it once per run, not per frame.
# Kinds: "r" to one peer, "p" to every other instance of the room, "i" to one instance,
# "a" to all. Returns the positions (1-based) of the "r" records whose peer is no member.
# Each channel gets a single message holding the JSON array of its envelopes, so Redis
# and the receiving instances handle one message per batch, not one per frame. Within
# one script nothing else runs, so a seat looked up once holds for the whole batch.
_BATCH = """
local prefix, self_id, all_channel = ARGV[1], ARGV[2], ARGV[3]
local records, blob, pos = cjson.decode(ARGV[4]), ARGV[5], 1
local queues, order, missing = {}, {}, {}
local peer_inst, room_insts = {}, {}
for i = 1, #KEYS do peer_inst[i] = {} end
local function push(channel, envelope)
  local q = queues[channel]
  if not q then
    q = {}
    queues[channel] = q
    table.insert(order, channel)
  end
  table.insert(q, envelope)
end
for i, rec in ipairs(records) do
  local kind, index, target = rec[1], rec[2], rec[3]
  local envelope = string.sub(blob, pos, pos + rec[4] - 1)
  pos = pos + rec[4]
  if kind == 'r' then
    local inst = peer_inst[index][target]
    if inst == nil then
      local cur = redis.call('HGET', KEYS[index], target)
      inst = cur and cjson.decode(cur)['instance_id'] or false
      peer_inst[index][target] = inst
    end
    if inst then
      if inst ~= self_id then push(prefix .. inst, envelope) end
    else
      table.insert(missing, i)
    end
  elseif kind == 'p' then
    local insts = room_insts[index]
    if not insts then
      insts = {}
      local seen = {}
      seen[self_id] = true
      for _, v in ipairs(redis.call('HVALS', KEYS[index])) do
        local inst = cjson.decode(v)['instance_id']
        if not seen[inst] then
          seen[inst] = true
          table.insert(insts, inst)
        end
      end
      room_insts[index] = insts
    end
    for _, inst in ipairs(insts) do push(prefix .. inst, envelope) end
  elseif kind == 'i' then
    push(prefix .. target, envelope)
  else
    push(all_channel, envelope)
  end
end
for _, channel in ipairs(order) do
  redis.call('PUBLISH', channel, '[' .. table.concat(queues[channel], ',') .. ']')
end
return missing
"""


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
        self._join = self._redis.register_script(_JOIN)
        self._leave = self._redis.register_script(_LEAVE)
        self._media = self._redis.register_script(_MEDIA)
        self._refresh = self._redis.register_script(_REFRESH)
        self._batch = self._redis.register_script(_BATCH)
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
                envelopes = orjson.loads(msg["data"])
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

    async def leave(self, room: str, peer_id: str, conn_id: str) -> bool:
        """Remove the seat if still owned by ``conn_id``."""
        done = await self._leave(keys=self._keys(room)[:2], args=[peer_id, conn_id])
        return bool(done)

    async def set_media(
        self, room: str, peer_id: str, conn_id: str, audio: bool, video: bool
    ) -> None:
        """Store a peer's mute state."""
        await self._media(
            keys=self._keys(room)[:1], args=[peer_id, conn_id, int(audio), int(video)]
        )

    async def refresh(self, room: str, peers: Sequence[tuple[str, str]]) -> None:
        """Extend presence of this instance's seats."""
        args: list[Any] = [self._ttl]
        for peer_id, conn_id in peers:
            args += [peer_id, conn_id]
        await self._refresh(keys=self._keys(room), args=args)

    async def _queue(self, item: _Outgoing) -> None:
        if not self._outbox.put_nowait(item):
            await self._outbox.put(item)

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


def create_broker(url: str, *, instance_id: str, prefix: str, presence_ttl: float) -> Broker:
    """Return the broker named by ``url``: "" for in-memory, ``redis://`` for Redis."""
    if not url:
        return InMemoryBroker(instance_id)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker(url, instance_id=instance_id, prefix=prefix, presence_ttl=presence_ttl)
    raise ValueError("broker_url must be empty or a redis:// URL")


# Monotonic clock used for heartbeats and rate limits (an alias: no wrapper call per frame).
monotonic = time.monotonic
