"""TURN: two relay-only aiortc peers through a real coturn, with credentials from signaling.turn."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from signaling import ice_servers
from tests.coturn import SECRETS
from tests.signaling.sigpeer import RtcPeer, SignalingSocket, SyntheticVideoTrack, to_ice_servers
from tests.signaling.sigsupport import FakeHost, Keys, ServerFactory, ws_url


async def test_relay_only_call_through_coturn(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str, coturn: str
) -> None:
    host.servers = ice_servers(
        stun_urls=(),
        turn_urls=(coturn,),
        secrets=SECRETS,
        peer_id="any",
        ttl=600,
        now=datetime.now(UTC),
    )
    server = await make_server()
    a = RtcPeer(await SignalingSocket.open(ws_url(server)), relay_only=True)
    b = RtcPeer(await SignalingSocket.open(ws_url(server)), relay_only=True)
    try:
        await a.join(keys.token(room, "agent-1"))
        await b.join(keys.token(room, "operator-1", "operator"))
        await asyncio.gather(
            a.counter("operator-1").wait_for("video", 30, within=30),
            b.counter("agent-1").wait_for("video", 30, within=30),
        )
        # The selected ICE pair (aioice internals: component -> nominated pair) is relayed.
        ice = b.pcs["agent-1"].getTransceivers()[0].receiver.transport.transport
        chosen = ice._connection._nominated
        assert chosen
        for candidate_pair in chosen.values():
            assert candidate_pair.local_candidate.type == "relay"
    finally:
        await a.close()
        await b.close()


async def _gathered_relays(servers: list[dict[str, Any]]) -> list[str]:
    config = RTCConfiguration(
        iceServers=to_ice_servers(servers), iceTransportPolicy=RTCIceTransportPolicy.RELAY
    )
    pc = RTCPeerConnection(config)
    try:
        pc.addTrack(SyntheticVideoTrack())
        await pc.setLocalDescription(await pc.createOffer())
        return [line for line in pc.localDescription.sdp.splitlines() if "typ relay" in line]
    finally:
        await pc.close()


async def test_expired_credentials_get_no_relay(coturn: str) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    fresh = ice_servers(
        stun_urls=(),
        turn_urls=(coturn,),
        secrets=SECRETS,
        peer_id="p",
        ttl=600,
        now=datetime.now(UTC),
    )
    expired = ice_servers(
        stun_urls=(), turn_urls=(coturn,), secrets=SECRETS, peer_id="p", ttl=60, now=past
    )
    assert await _gathered_relays(fresh)
    assert await _gathered_relays(expired) == []


async def test_rotated_secret_still_accepted(coturn: str) -> None:
    # Credentials signed with the second configured secret (before rotation) still work.
    old = ice_servers(
        stun_urls=(),
        turn_urls=(coturn,),
        secrets=SECRETS[1:],
        peer_id="p",
        ttl=600,
        now=datetime.now(UTC),
    )
    wrong = ice_servers(
        stun_urls=(),
        turn_urls=(coturn,),
        secrets=("not-a-secret",),
        peer_id="p",
        ttl=600,
        now=datetime.now(UTC),
    )
    assert await _gathered_relays(old)
    assert await _gathered_relays(wrong) == []
