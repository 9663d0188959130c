"""Calls through visio: join tokens from the API, real aiortc peers, the call log."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from signaling import ECHO_PROBLEMS, STATE_KEY
from tests.conftest import Client
from tests.coturn import SECRETS
from tests.factories import (
    OperatorBundle,
    auth_headers,
    make_appointment,
    make_operator,
    make_site,
    make_user,
)
from tests.signaling.sigpeer import Counter, RtcPeer, SignalingSocket, SyntheticVideoTrack
from visio import models as m
from visio.app import create_app
from visio.clock import utcnow
from visio.db import Database
from visio.i18n import catalogue
from visio.keys import signaling_app_key
from visio.settings import Settings
from visio.signaling_host import ECHO_TEXTS, call_policy, settle_now

FRAMES = 30
ORIGIN = "http://127.0.0.1:8080"
MakeClient = Callable[..., Awaitable[Client]]


@dataclass
class Call:
    appointment: m.Appointment
    site: m.Site
    op: OperatorBundle
    agent_headers: dict[str, str]
    staff_headers: dict[str, str]


async def make_call(db: Database, client: Client) -> Call:
    """An appointment happening now, an agent of its site and its staff member, logged in."""
    site = await make_site(db)
    op = await make_operator(db, staff=2)
    agent = await make_user(db, role="agent", sites=[site])
    staff = await make_user(db, role="staff", staff=op.staff[0])
    appointment = await make_appointment(db, site=site, op=op, booked_by=agent,
                                         start=utcnow() - timedelta(minutes=1))
    return Call(appointment=appointment, site=site, op=op,
                agent_headers=await auth_headers(client, agent),
                staff_headers=await auth_headers(client, staff))


async def join_grant(client: Client, call: Call, headers: dict[str, str]) -> dict[str, str]:
    response = await client.post(f"/api/v1/appointments/{call.appointment.id}/join",
                                 headers=headers)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def peer(client: Client, token: str) -> RtcPeer:
    sock = await SignalingSocket.open(str(client.make_url("/signaling/ws")), origin=ORIGIN)
    rtc = RtcPeer(sock)
    await rtc.join(token)
    return rtc


async def frames_flow(a: RtcPeer, b: RtcPeer) -> None:
    await asyncio.gather(a.counter(b.peer_id).wait_for("video", FRAMES),
                         b.counter(a.peer_id).wait_for("video", FRAMES))


@pytest.fixture
async def now_client(make_client: MakeClient) -> Client:
    """The app with its clock at the real current time (signaling checks tokens on it)."""
    return await make_client(utcnow())


async def test_kiosk_and_staff_member_get_a_working_call(
    db: Database, now_client: Client
) -> None:
    call = await make_call(db, now_client)
    kiosk_grant = await join_grant(now_client, call, call.agent_headers)
    staff_grant = await join_grant(now_client, call, call.staff_headers)
    assert kiosk_grant["role"] == "kiosk"
    assert staff_grant["role"] == "operator"
    assert kiosk_grant["signaling_url"].endswith("/signaling/ws")
    kiosk = await peer(now_client, kiosk_grant["token"])
    staff = await peer(now_client, staff_grant["token"])
    try:
        await frames_flow(kiosk, staff)
        await asyncio.gather(kiosk.sock.send({"type": "connection", "state": "connected"}),
                             staff.sock.send({"type": "connection", "state": "connected",
                                              "stats": {"rtt_ms": 3, "packet_loss": 0,
                                                        "candidate_type": "direct"}}))
        await staff.sock.send({"type": "ping"})
        await staff.sock.next("pong")
    finally:
        await kiosk.close()
        await staff.close()

    log = await (await now_client.get(f"/api/v1/appointments/{call.appointment.id}/call-log",
                                      headers=call.agent_headers)).json()
    kinds = [e["kind"] for e in log["items"]]
    assert kinds.count("join") == 2
    assert "stats" in kinds
    assert log["summary"] == {"kiosk_joined": True, "operator_joined": True,
                              "connected": True}


async def test_an_appointment_whose_two_sides_connected_is_done_after_it_ends(
    db: Database, make_client: MakeClient
) -> None:
    client = await make_client(utcnow())
    call = await make_call(db, client)
    kiosk = await peer(client, (await join_grant(client, call, call.agent_headers))["token"])
    staff = await peer(client, (await join_grant(client, call, call.staff_headers))["token"])
    try:
        await kiosk.sock.send({"type": "connection", "state": "connected"})
        await staff.sock.send({"type": "connection", "state": "connected"})
        await staff.sock.send({"type": "ping"})
        await staff.sock.next("pong")
        await kiosk.sock.send({"type": "ping"})
        await kiosk.sock.next("pong")
    finally:
        await kiosk.close()
        await staff.close()
    later = await make_client(call.appointment.end + timedelta(minutes=11))
    assert await settle_now(later.app) == 1
    body = await (await later.get(f"/api/v1/appointments/{call.appointment.id}",
                                  headers=call.agent_headers)).json()
    assert body["status"] == "done"
    assert body["version"] == 2


async def test_an_operator_who_never_joined_is_visible_in_the_call_log(
    db: Database, now_client: Client
) -> None:
    call = await make_call(db, now_client)
    kiosk = await peer(now_client, (await join_grant(now_client, call,
                                                     call.agent_headers))["token"])
    await kiosk.close()
    log = await (await now_client.get(f"/api/v1/appointments/{call.appointment.id}/call-log",
                                      headers=call.staff_headers)).json()
    assert log["summary"]["kiosk_joined"] is True
    assert log["summary"]["operator_joined"] is False
    assert await settle_now(now_client.app) == 0


async def test_only_the_site_the_staff_member_and_the_desk_may_join(
    db: Database, now_client: Client
) -> None:
    call = await make_call(db, now_client)
    colleague = await make_user(db, role="staff", staff=call.op.staff[1])
    assert (await join_grant(now_client, call,
                             await auth_headers(now_client, colleague)))["role"] == "operator"
    other_op = await make_operator(db)
    outsider_staff = await make_user(db, role="staff", staff=other_op.staff[0])
    outsider_agent = await make_user(db, role="agent", sites=[await make_site(db)])
    admin = await make_user(db, role="admin")
    for user in (outsider_staff, outsider_agent, admin):
        response = await now_client.post(f"/api/v1/appointments/{call.appointment.id}/join",
                                         headers=await auth_headers(now_client, user))
        assert response.status == 404
        assert response.content_type == "application/problem+json"


async def test_cancelling_closes_the_live_room_and_refuses_new_joins(
    db: Database, now_client: Client
) -> None:
    call = await make_call(db, now_client)
    grant = await join_grant(now_client, call, call.agent_headers)
    staff_token = (await join_grant(now_client, call, call.staff_headers))["token"]
    sock = await SignalingSocket.open(str(now_client.make_url("/signaling/ws")), origin=ORIGIN)
    await sock.join(grant["token"])
    cancelled = await now_client.post(f"/api/v1/appointments/{call.appointment.id}/cancel",
                                      json={"reason": "Usager absent"},
                                      headers=call.agent_headers)
    assert cancelled.status == 200
    closed = await sock.next("room_closed")
    assert closed["reason"] == "cancelled"
    await sock.close()
    refused = await now_client.post(f"/api/v1/appointments/{call.appointment.id}/join",
                                    headers=call.staff_headers)
    assert refused.status == 422
    late = await SignalingSocket.open(str(now_client.make_url("/signaling/ws")), origin=ORIGIN)
    await late.send({"type": "join", "token": staff_token})
    assert await late.wait_closed() == 4406
    await late.close()


async def free_start(client: Client, call: Call) -> str:
    """The first free slot of the call's site and service, a few hours from now or later."""
    now = utcnow()
    response = await client.get("/api/v1/slots", headers=call.agent_headers, params={
        "site_id": call.site.id, "theme": call.op.service.theme,
        "from": (now + timedelta(hours=3)).isoformat(),
        "to": (now + timedelta(days=15)).isoformat()})
    assert response.status == 200, await response.text()
    slots = (await response.json())["items"]
    assert slots, "no free slot in the next two weeks"
    return str(slots[0]["start"])


async def test_rescheduling_closes_the_live_room_and_refuses_tokens_of_the_old_version(
    db: Database, now_client: Client
) -> None:
    """After a reschedule the live room gets room_closed (rescheduled) and old tokens 4413."""
    call = await make_call(db, now_client)
    kiosk_token = (await join_grant(now_client, call, call.agent_headers))["token"]
    staff_token = (await join_grant(now_client, call, call.staff_headers))["token"]
    sock = await SignalingSocket.open(str(now_client.make_url("/signaling/ws")), origin=ORIGIN)
    try:
        await sock.join(kiosk_token)
        moved = await now_client.post(
            f"/api/v1/appointments/{call.appointment.id}/reschedule",
            json={"start": await free_start(now_client, call)}, headers=call.agent_headers)
        assert moved.status == 200, await moved.text()
        assert (await moved.json())["version"] == 2
        assert (await sock.next("room_closed"))["reason"] == "rescheduled"
        assert await sock.wait_closed() == 4410
    finally:
        await sock.close()
    for token in (kiosk_token, staff_token):
        late = await SignalingSocket.open(str(now_client.make_url("/signaling/ws")),
                                          origin=ORIGIN)
        try:
            await late.send({"type": "join", "token": token})
            assert await late.wait_closed() == 4413
            assert "outdated" in late.close_reason
        finally:
            await late.close()


async def test_a_call_works_across_two_instances_linked_by_redis(
    db: Database, settings: Settings, redis_url: str
) -> None:
    shared = dataclasses.replace(settings, redis_url=redis_url)
    now = utcnow()
    instances = []
    for _ in range(2):
        test_client: Client = TestClient(TestServer(create_app(shared, clock=lambda: now)))
        await test_client.start_server()
        instances.append(test_client)
    one, two = instances
    try:
        call = await make_call(db, one)
        kiosk = await peer(one, (await join_grant(one, call, call.agent_headers))["token"])
        staff = await peer(two, (await join_grant(two, call, call.staff_headers))["token"])
        try:
            await frames_flow(kiosk, staff)
        finally:
            await kiosk.close()
            await staff.close()
    finally:
        for test_client in instances:
            await test_client.close()


async def test_relay_only_peers_connect_through_coturn_with_visio_credentials(
    db: Database, settings: Settings, coturn: str
) -> None:
    with_turn = dataclasses.replace(settings, turn_urls=(coturn,), turn_secrets=SECRETS)
    now = utcnow()
    client: Client = TestClient(TestServer(create_app(with_turn, clock=lambda: now)))
    await client.start_server()
    try:
        call = await make_call(db, client)
        grants = [await join_grant(client, call, h)
                  for h in (call.agent_headers, call.staff_headers)]
        for grant in grants:
            (server,) = grant["ice_servers"]
            assert server["urls"] == [coturn]
            expiry, _, peer_id = server["username"].partition(":")
            assert peer_id == grant["peer_id"]
            assert now.timestamp() < int(expiry) <= now.timestamp() + 4 * 3600 + 1
        peers = []
        for grant in grants:
            sock = await SignalingSocket.open(str(client.make_url("/signaling/ws")),
                                              origin=ORIGIN)
            rtc = RtcPeer(sock, relay_only=True)
            joined = await rtc.join(grant["token"])
            assert joined["ice_servers"][0]["urls"] == [coturn]
            peers.append(rtc)
        try:
            await asyncio.gather(peers[0].counter(peers[1].peer_id).wait_for("video", FRAMES,
                                                                              within=30),
                                 peers[1].counter(peers[0].peer_id).wait_for("video", FRAMES,
                                                                              within=30))
        finally:
            for rtc in peers:
                await rtc.close()
    finally:
        await client.close()


async def test_a_test_call_token_reaches_the_echo_peer_but_no_room(
    db: Database, now_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    call = await make_call(db, now_client)
    response = await now_client.post("/api/v1/test-calls", headers=call.staff_headers)
    assert response.status == 200, await response.text()
    grant = await response.json()
    # An http URL on the base URL's origin: the echo endpoint takes a POST, not a WebSocket.
    assert grant["echo_url"] == "http://127.0.0.1:8080/signaling/echo"

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames = Counter()
    consumers: set[asyncio.Task[None]] = set()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def consume() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await frames.bump(track.kind, await track.recv())

        consumers.add(asyncio.create_task(consume()))

    pc.addTrack(SyntheticVideoTrack())
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await now_client.post(
            "/signaling/echo", headers={"Authorization": f"Bearer {grant['token']}"},
            json={"type": "offer", "sdp": pc.localDescription.sdp})
        assert answer.status == 200, await answer.text()
        await pc.setRemoteDescription(RTCSessionDescription(**await answer.json()))
        await frames.wait_for("video", FRAMES, within=30)
    finally:
        await pc.close()
        for task in consumers:
            task.cancel()
    room = await SignalingSocket.open(str(now_client.make_url("/signaling/ws")), origin=ORIGIN)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        await room.send({"type": "join", "token": grant["token"]})
        assert await room.wait_closed() == 4406
        await room.close()
    # Refused in one log line, without a traceback, and nothing written to any call log.
    lines = [r for r in caplog.records if r.name.startswith(("signaling", "visio"))]
    assert len(lines) <= 1
    assert all(r.exc_info is None and r.levelno < logging.WARNING for r in lines)
    async with db.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(m.CallEventRow)) == 0


def test_echo_and_signaling_urls_follow_the_base_url_scheme(settings: Settings) -> None:
    """https base: wss signaling and https echo; http base: ws and http."""
    secure = call_policy(dataclasses.replace(settings, base_url="https://visio.example:8443"))
    assert secure.signaling_url == "wss://visio.example:8443/signaling/ws"
    assert secure.echo_url == "https://visio.example:8443/signaling/echo"
    plain = call_policy(dataclasses.replace(settings, base_url="http://visio.test"))
    assert (plain.signaling_url, plain.echo_url) == (
        "ws://visio.test/signaling/ws", "http://visio.test/signaling/echo")


async def test_a_second_test_call_of_the_same_user_is_refused_while_the_first_runs(
    db: Database, now_client: Client
) -> None:
    """One echo session per user: a second POST with the same grant while the first runs
    is a 409 with a sentence in the caller's language, and holds no second place."""
    call = await make_call(db, now_client)
    token = (await (await now_client.post("/api/v1/test-calls",
                                          headers=call.staff_headers)).json())["token"]
    pcs = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
    try:
        answers = []
        for pc in pcs:
            pc.addTrack(SyntheticVideoTrack())
            await pc.setLocalDescription(await pc.createOffer())
            answers.append(await now_client.post(
                "/signaling/echo",
                headers={"Authorization": f"Bearer {token}", "Accept-Language": "nl"},
                json={"type": "offer", "sdp": pc.localDescription.sdp}))
        assert answers[0].status == 200, await answers[0].text()
        assert answers[1].status == 409, await answers[1].text()
        problem = await answers[1].json(content_type="application/problem+json")
        _title, detail = ECHO_TEXTS["already_running"]
        assert problem["code"] == "already_running"
        assert problem["detail"] == catalogue("nl").render(detail)
        echo = now_client.app[signaling_app_key][STATE_KEY].echo
        assert echo is not None
        assert len(echo.pcs) == 1
    finally:
        for pc in pcs:
            await pc.close()


async def test_echo_problems_come_from_visios_catalogue_in_the_callers_language(
    now_client: Client
) -> None:
    """The echo endpoint's refusals are catalogue sentences, like every other problem."""
    assert set(ECHO_TEXTS) == set(ECHO_PROBLEMS)
    for accept, language in (("nl-BE,nl;q=0.9", "nl"), (None, "fr"), ("en", "en")):
        headers = {"Accept-Language": accept} if accept else {}
        response = await now_client.post("/signaling/echo", headers=headers,
                                          json={"type": "offer", "sdp": "v=0"})
        assert response.status == 401
        assert response.headers["Content-Language"] == language
        body = await response.json(content_type="application/problem+json")
        texts = catalogue(language)
        title, detail = ECHO_TEXTS["token_required"]
        assert body["code"] == "token_required"
        assert (body["title"], body["detail"]) == (texts.gettext(title), texts.render(detail))


async def test_signaling_sockets_refuse_permessage_deflate(now_client: Client) -> None:
    # aiohttp compresses by default, about 7x the memory of an idle socket.
    async with now_client.session.ws_connect(
        now_client.make_url("/signaling/ws"), headers={"Origin": ORIGIN}, compress=15
    ) as ws:
        assert ws.compress == 0
        assert "Sec-WebSocket-Extensions" not in ws._response.headers
