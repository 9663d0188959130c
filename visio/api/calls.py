"""Calls of appointments: join tokens, test calls, the call log."""

from __future__ import annotations

from aiohttp import web

from visio.api import codec, views
from visio.api.context import caller
from visio.contract import bodies as api
from visio.keys import call_policy_key, clock_key, database_key
from visio.services import calls


async def join(request: web.Request) -> web.Response:
    """A join token for the appointment's call (its agents, its staff member, their desk)."""
    principal = await caller(request)
    grant = await calls.grant_join(
        db=request.app[database_key], principal=principal,
        appointment_id=codec.path_id(request), now=request.app[clock_key](),
        policy=request.app[call_policy_key])
    return codec.respond(api.JoinGrant(
        signaling_url=grant.signaling_url, token=grant.token, not_before=grant.not_before,
        expires_at=grant.expires_at, role=grant.role,  # type: ignore[arg-type]
        peer_id=grant.peer_id, ice_servers=views.ice_servers(grant.ice_servers)))


async def test_call(request: web.Request) -> web.Response:
    """A token for the echo peer, to check devices and network before the appointment."""
    principal = await caller(request)
    grant = calls.grant_test_call(principal=principal, now=request.app[clock_key](),
                                  policy=request.app[call_policy_key])
    return codec.respond(api.TestCall(echo_url=grant.signaling_url, token=grant.token,
                                      expires_at=grant.expires_at,
                                      ice_servers=views.ice_servers(grant.ice_servers)))


async def call_log(request: web.Request) -> web.Response:
    """Joins, leaves, connection states and stats of the appointment's call, paginated."""
    principal = await caller(request)
    query = codec.query(request, api.CallLogQuery)
    log = await calls.call_log(db=request.app[database_key], principal=principal,
                               appointment_id=codec.path_id(request), cursor=query.cursor,
                               limit=query.limit)
    return codec.respond(api.CallLog(
        appointment_id=log.appointment_id,
        summary=api.CallSummary(kiosk_joined=log.summary.kiosk_joined,
                                operator_joined=log.summary.operator_joined,
                                connected=log.summary.connected),
        items=[api.CallEvent(at=e.at, kind=e.kind, peer_id=e.peer_id, role=e.role,
                             detail=dict(e.detail)) for e in log.items],
        next_cursor=log.next_cursor))
