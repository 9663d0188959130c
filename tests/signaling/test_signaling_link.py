"""The `link` frame: what a page makes of its link reaches the others as `peer_link` and
the call log as a `link` event; the 10 s summaries carry the link's numbers."""

from __future__ import annotations

import pytest

from tests.signaling.sigpeer import SignalingSocket
from tests.signaling.sigsupport import FakeHost, Keys, ServerFactory, ws_url

LINK = {"quality": "very-weak", "audio_only": True, "forced": False, "problem": None}
SUMMARY = {"rtt_ms": 420, "packet_loss": 0.05, "candidate_type": "direct", "out_kbps": 96.5,
           "in_kbps": 80, "freezes": 3, "concealment": 0.031, "audio_only_s": 7.5,
           "audio_only": True, "quality": "weak"}


async def _joined(server: object, keys: Keys, room: str, peer: str, role: str
                  ) -> SignalingSocket:
    sock = await SignalingSocket.open(ws_url(server))  # type: ignore[arg-type]
    await sock.join(keys.token(room, peer, role))
    return sock


async def test_link_reaches_the_other_side_and_the_log(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    server = await make_server(stats_interval=0)
    a = await _joined(server, keys, room, "kiosk-1", "kiosk")
    b = await _joined(server, keys, room, "op-1", "operator")
    try:
        # A client-supplied "from" is not relayed: the server stamps the sender.
        await a.send({"type": "link", "from": "op-1", **LINK})
        assert await b.next("peer_link") == {"type": "peer_link", "from": "kiosk-1", **LINK}
        event = await host.wait_event(lambda apt, e: apt == room and e.kind == "link")
        assert event.detail == LINK
        assert event.role == "kiosk"
        await a.send({"type": "connection", "state": "connected", "peer": "op-1",
                      "stats": SUMMARY})
        stats = await host.wait_event(lambda apt, e: apt == room and e.kind == "stats")
        assert stats.detail == {**SUMMARY, "peer": "op-1"}
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("frame", [
    {**LINK, "quality": "superb"},
    {**LINK, "audio_only": "yes"},
    {**LINK, "problem": "aliens"},
    {key: value for key, value in LINK.items() if key != "forced"},
])
async def test_a_garbled_link_is_refused(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str, frame: dict[str, object]
) -> None:
    server = await make_server()
    a = await _joined(server, keys, room, "kiosk-1", "kiosk")
    try:
        await a.send({"type": "link", **frame})
        assert (await a.next("error"))["code"] == "bad_field"
        await a.send({"type": "connection", "state": "connected",
                      "stats": {**SUMMARY, "freezes": -1}})
        assert (await a.next("error"))["code"] == "bad_field"
        assert "link" not in host.kinds(room)
    finally:
        await a.close()
