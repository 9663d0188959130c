"""The call log keeps the close code a peer sent, and says who closed."""

from __future__ import annotations

import struct

from tests.signaling.sigpeer import SignalingSocket
from tests.signaling.sigsupport import BrowserSocket, FakeHost, Keys, ServerFactory, ws_url

CLOSE = 0x8


async def _left(host: FakeHost, room: str, peer_id: str) -> dict[str, object]:
    event = await host.wait_event(
        lambda apt, e: apt == room and e.kind == "leave" and e.peer_id == peer_id
    )
    return dict(event.detail)


async def _browser_joined(server: object, keys: Keys, room: str, peer_id: str) -> BrowserSocket:
    sock = await BrowserSocket.open(server)  # type: ignore[arg-type]
    sock.send_json({"type": "join", "token": keys.token(room, peer_id)})
    await sock.next_json("joined")
    return sock


async def test_a_browser_closing_with_1000_is_logged_as_1000(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    """A browser's ws.close(1000, "bye") is recorded as 1000, sent by the peer."""
    server = await make_server()
    sock = await _browser_joined(server, keys, room, "kiosk-1")
    try:
        sock.send_frame(CLOSE, struct.pack("!H", 1000) + b"bye")
        opcode, payload = await sock.read_frame()  # the server answers the close
        assert (opcode, payload[:2]) == (CLOSE, struct.pack("!H", 1000))
    finally:
        await sock.close()
    assert await _left(host, room, "kiosk-1") == {
        "close_code": 1000,
        "closed_by": "peer",
        "replaced": False,
    }


async def test_a_close_frame_without_code_is_logged_as_1005_not_0(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    """ws.close() without arguments sends an empty close frame: 1005 (no status), never 0."""
    server = await make_server()
    sock = await _browser_joined(server, keys, room, "kiosk-1")
    try:
        sock.send_frame(CLOSE, b"")
        assert (await sock.read_frame())[0] == CLOSE
    finally:
        await sock.close()
    detail = await _left(host, room, "kiosk-1")
    assert (detail["close_code"], detail["closed_by"]) == (1005, "peer")


async def test_a_dropped_connection_is_logged_as_1006(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    """A peer whose TCP connection ends without a close frame: 1006 (abnormal)."""
    server = await make_server()
    sock = await _browser_joined(server, keys, room, "kiosk-1")
    await sock.close()
    detail = await _left(host, room, "kiosk-1")
    assert (detail["close_code"], detail["closed_by"]) == (1006, "peer")


async def test_a_server_close_is_logged_with_its_code(
    make_server: ServerFactory, keys: Keys, host: FakeHost, room: str
) -> None:
    """The server's own close (here the flood limit) is logged with its code, by the server."""
    server = await make_server(rate_limit_per_second=1, rate_limit_burst=3)
    sock = await SignalingSocket.open(ws_url(server))
    try:
        await sock.join(keys.token(room, "kiosk-1"))
        for _ in range(5):
            await sock.send({"type": "ping"})
        assert await sock.wait_closed() == 4429
    finally:
        await sock.close()
    detail = await _left(host, room, "kiosk-1")
    assert (detail["close_code"], detail["closed_by"]) == (4429, "server")
