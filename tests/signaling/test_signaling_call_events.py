"""Call events stay few: connection states when they change, stats now and then, per peer."""

from __future__ import annotations

from tests.signaling.sigpeer import SignalingSocket
from tests.signaling.sigsupport import FakeHost, Keys, ServerFactory, ws_url

FAST = {"rate_limit_per_second": 10_000, "rate_limit_burst": 10_000}
STATS = {"rtt_ms": 12.5, "packet_loss": 0.01, "candidate_type": "relay"}


async def _joined(server: object, keys: Keys, room: str) -> SignalingSocket:
    sock = await SignalingSocket.open(ws_url(server))  # type: ignore[arg-type]
    await sock.join(keys.token(room, "kiosk-1", "kiosk"))
    return sock


async def _settled(sock: SignalingSocket) -> None:
    """Frames are handled in order, events recorded before the next: a pong means all are."""
    await sock.send({"type": "ping"})
    await sock.next("pong")


def _events(host: FakeHost, room: str, kind: str) -> list[dict[str, object]]:
    return [dict(e.detail) for a, e in host.events if a == room and e.kind == kind]


async def test_a_chatty_peer_leaves_one_state_and_one_stats_per_change(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    """300 identical reports make one connection_state and one stats event, not 600."""
    server = await make_server(stats_interval=3600, **FAST)
    sock = await _joined(server, keys, room)
    try:
        frame = {"type": "connection", "state": "connected", "peer": "op-1", "stats": STATS}
        for _ in range(300):
            await sock.send(frame)
        await _settled(sock)
        assert _events(host, room, "connection_state") == [{"state": "connected", "peer": "op-1"}]
        assert _events(host, room, "stats") == [{**STATS, "peer": "op-1"}]
        # A change is recorded, per peer; going back is a change too.
        for state, peer in (("disconnected", "op-1"), ("connected", "op-1"), ("new", "op-2")):
            await sock.send({"type": "connection", "state": state, "peer": peer})
            await sock.send({"type": "connection", "state": state, "peer": peer})
        await _settled(sock)
        assert [(d["state"], d["peer"]) for d in _events(host, room, "connection_state")] == [
            ("connected", "op-1"),
            ("disconnected", "op-1"),
            ("connected", "op-1"),
            ("new", "op-2"),
        ]
    finally:
        await sock.close()


async def test_stats_are_recorded_at_most_every_stats_interval(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    """With no interval every stats report is kept: the interval is what thins them."""
    server = await make_server(stats_interval=0, **FAST)
    sock = await _joined(server, keys, room)
    try:
        for _ in range(5):
            await sock.send({"type": "connection", "state": "connected", "stats": STATS})
        await _settled(sock)
        assert len(_events(host, room, "stats")) == 5
        assert _events(host, room, "connection_state") == [{"state": "connected"}]
    finally:
        await sock.close()


async def test_made_up_peers_do_not_multiply_events(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    """A new `peer` per frame is not a way around: no more peers than a room can hold."""
    server = await make_server(max_participants=4, **FAST)
    sock = await _joined(server, keys, room)
    try:
        for i in range(50):
            await sock.send({"type": "connection", "state": "connected", "peer": f"p{i}"})
        await _settled(sock)
        assert len(_events(host, room, "connection_state")) == 4
    finally:
        await sock.close()
