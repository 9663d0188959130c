"""The broker of a single instance (no ``broker_url``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .broker import Deliver, JoinResult, Member, Missing
from .envelopes import Envelope


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
        # A replaced seat leaves first: its peer_left takes the number before the new join's.
        self._seq += 2 if previous is not None else 1
        member = replace(member, seq=self._seq)
        members[member.peer_id] = member
        others = [m for p, m in members.items() if p != member.peer_id]
        return JoinResult(True, member, previous, others)

    async def leave(self, room: str, peer_id: str, conn_id: str) -> int:
        """Remove the peer if the connection still owns its seat; return the leave's seq."""
        members = self._rooms.get(room)
        if not members or peer_id not in members or members[peer_id].conn_id != conn_id:
            return 0
        del members[peer_id]
        if not members:
            del self._rooms[room]
        self._seq += 1
        return self._seq

    async def set_media(
        self, room: str, peer_id: str, conn_id: str, audio: bool, video: bool
    ) -> None:
        """Store a peer's mute state."""
        members = self._rooms.get(room, {})
        current = members.get(peer_id)
        if current is not None and current.conn_id == conn_id:
            members[peer_id] = replace(current, audio=audio, video=video)

    async def refresh(self, room: str, seats: Sequence[Member]) -> None:
        """Nothing expires in a single process."""

    def route_nowait(self, room: str, peer_id: str, payload: bytes, on_missing: Missing) -> bool:
        """Every member is local here: a peer not found locally needs ``route``."""
        return False

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
