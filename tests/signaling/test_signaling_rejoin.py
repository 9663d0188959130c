"""Both peers re-join at once, on two instances linked by Redis: each ends with the other.

The new sockets join while the old ones still hold the seats (the server has not yet seen
them drop, as after an instance was killed), so each join replaces a seat and fans out
``peer_left`` then ``peer_joined {reconnected}``. Whichever join Redis ordered first, and
whenever those fan-outs reach the other instance (before, while or after the other new
socket joins), a client that follows docs/signaling.md must end with one connection to
the other peer, and exactly one side offering.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestServer

from tests.signaling.sigpeer import SignalingSocket
from tests.signaling.sigsupport import Keys, ServerFactory, ws_url

ROUNDS = 12


class DocClient:
    """What docs/signaling.md tells a client to keep: one connection per peer and its side.

    ``joined.peers`` and ``peer_joined`` start a fresh connection (polite or not, as told),
    ``peer_left`` closes it. The frames are applied in the order they arrived.
    """

    def __init__(self, sock: SignalingSocket) -> None:
        self.sock = sock
        self.polite: dict[str, bool] = {}
        self.log: list[dict[str, Any]] = []

    def apply(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind in ("joined", "peer_joined", "peer_left", "peer_media"):
            self.log.append(frame)
        if kind == "joined":
            for peer in frame["peers"]:
                self.polite[peer["peer_id"]] = frame["polite_toward"][peer["peer_id"]]
        elif kind == "peer_joined":
            self.polite[frame["peer_id"]] = frame["polite"]
        elif kind == "peer_left":
            self.polite.pop(frame["peer_id"], None)


async def _open(server: TestServer) -> tuple[SignalingSocket, DocClient]:
    sock = await SignalingSocket.open(ws_url(server))
    client = DocClient(sock)
    sock.handlers.append(client.apply)
    return sock, client


async def _settle(
    sender: SignalingSocket, receiver: SignalingSocket, sender_id: str, mark: int
) -> None:
    """Wait until ``receiver`` saw ``sender``'s marker: what ``sender``'s instance fanned out
    before it (its join's ``peer_left``/``peer_joined``) has then reached ``receiver``.

    The marker is a media change; one instance's fan-outs leave in order on one channel."""
    await sender.send({"type": "media", "audio": mark % 2 == 0, "video": True})
    await receiver.next("peer_media", within=20, **{"from": sender_id, "audio": mark % 2 == 0})


async def test_both_peers_rejoin_at_once_across_instances(
    make_redis_server: ServerFactory, keys: Keys, room: str
) -> None:
    one = await make_redis_server()
    two = await make_redis_server()
    a_token, b_token = keys.token(room, "agent-1"), keys.token(room, "operator-1", "operator")
    a, _ = await _open(one)
    b, _ = await _open(two)
    await a.join(a_token)
    await b.join(b_token)
    await a.next("peer_joined")
    olds = [a, b]
    failures: list[str] = []
    unordered: list[dict[str, Any]] = []
    try:
        for n in range(ROUNDS):
            # Alternate the instances, so each peer's join sometimes crosses Redis first.
            a_server, b_server = (one, two) if n % 2 == 0 else (two, one)
            (a2, a_client), (b2, b_client) = await asyncio.gather(_open(a_server), _open(b_server))
            olds += [a2, b2]
            await asyncio.gather(
                a2.send({"type": "join", "token": a_token}),
                b2.send({"type": "join", "token": b_token}),
            )
            await asyncio.gather(a2.next("joined", within=20), b2.next("joined", within=20))
            assert await a.wait_closed(within=20) == 4409
            assert await b.wait_closed(within=20) == 4409
            await asyncio.gather(
                _settle(a2, b2, "agent-1", n), _settle(b2, a2, "operator-1", n)
            )
            a_view, b_view = a_client.polite, b_client.polite
            ok = (
                set(a_view) == {"operator-1"}
                and set(b_view) == {"agent-1"}
                and a_view["operator-1"] != b_view["agent-1"]
            )
            if not ok:
                failures.append(f"round {n}: agent {a_client.log} / operator {b_client.log}")
            # Every event about a peer carries the join order it belongs to.
            for frame in a_client.log + b_client.log:
                about = frame["peers"] if frame["type"] == "joined" else [frame]
                unordered += [f for f in about if not isinstance(f.get("seq"), int)]
            a, b = a2, b2
        assert failures == []
        assert unordered == []
    finally:
        for sock in olds:
            await sock.close()
