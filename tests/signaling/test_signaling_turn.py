"""TURN: two relay-only aiortc peers through a real coturn, with credentials from signaling.turn."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from signaling import ice_servers
from tests.signaling.sigpeer import RtcPeer, SignalingSocket, SyntheticVideoTrack, to_ice_servers
from tests.signaling.sigsupport import FakeHost, Keys, ServerFactory, service_missing, ws_url

TURNSERVER = "/usr/bin/turnserver"
SECRETS = ("current-turn-secret", "previous-turn-secret")
REALM = "visio.test"


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], within: float = 10.0) -> None:
    """Poll coturn's TCP listener (it listens on TCP and UDP on the same port)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"turnserver exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError("turnserver did not start listening")


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start coturn on loopback with the configuration of docs/deployment.md."""
    if shutil.which(TURNSERVER) is None:
        service_missing(f"{TURNSERVER} not installed (Debian package coturn)")
    work: Path = tmp_path_factory.mktemp("coturn")
    port = _free_port(socket.SOCK_STREAM)
    low = 49152 + (port % 1000) * 10
    config = "\n".join(
        [
            f"listening-port={port}",
            "listening-ip=127.0.0.1",
            "relay-ip=127.0.0.1",
            f"min-port={low}",
            f"max-port={low + 200}",
            "fingerprint",
            "use-auth-secret",
            *(f"static-auth-secret={s}" for s in SECRETS),
            f"realm={REALM}",
            "no-cli",
            "no-tls",
            "no-dtls",
            "no-multicast-peers",
            # Only for this loopback test: production denies private and loopback peers.
            "allow-loopback-peers",
            f"pidfile={work / 'turnserver.pid'}",
            f"userdb={work / 'turndb'}",
            f"log-file={work / 'turn.log'}",
            "simple-log",
            "",
        ]
    )
    conf = work / "turnserver.conf"
    conf.write_text(config)
    proc = subprocess.Popen(
        [TURNSERVER, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port, proc)
        yield f"turn:127.0.0.1:{port}?transport=udp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
