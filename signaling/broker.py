"""Brokers: room membership, the participant cap, and delivery between instances.

Two implement ``Broker``: ``memory_broker.InMemoryBroker`` (one process) and
``redis_broker.RedisBroker`` (instances linked by Redis).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from .envelopes import Envelope

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

    async def leave(self, room: str, peer_id: str, conn_id: str) -> int:
        """Remove the peer if ``conn_id`` is still its connection.

        Return the leave's number in the room's order (``seq``, shared with joins), or 0
        when ``conn_id`` no longer held the seat.
        """
        ...

    async def set_media(
        self, room: str, peer_id: str, conn_id: str, audio: bool, video: bool
    ) -> None:
        """Store a peer's mute state."""
        ...

    async def refresh(self, room: str, seats: Sequence[Member]) -> None:
        """Extend presence of the seats this instance holds, and put back any the broker
        lost (a Redis restarted empty), with the room's numbering kept ahead of them."""
        ...

    def route_nowait(self, room: str, peer_id: str, payload: bytes, on_missing: Missing) -> bool:
        """Queue an encoded frame for the peer's instance without awaiting, if possible.

        Returns False when nothing was queued (no room, or the broker cannot): the caller
        then goes through ``route``.
        """
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
