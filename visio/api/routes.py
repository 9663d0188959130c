"""The route table of /api/v1."""

from __future__ import annotations

from aiohttp import web

from visio.api import appointments, auth, directory
from visio.api.openapi import serve_openapi

PREFIX = "/api/v1"


def api_routes() -> list[web.RouteDef]:
    """Every API route; the OpenAPI document describes exactly these."""
    p = PREFIX
    return [
        web.get(f"{p}/openapi.json", serve_openapi),
        web.post(f"{p}/auth/token", auth.issue_token),
        web.post(f"{p}/auth/logout", auth.log_out),
        web.get(f"{p}/sites", directory.list_sites),
        web.post(f"{p}/sites", directory.create_site),
        web.get(f"{p}/sites/{{id}}", directory.get_site),
        web.patch(f"{p}/sites/{{id}}", directory.update_site),
        web.post(f"{p}/sites/{{id}}/stops", directory.add_stops),
        web.delete(f"{p}/sites/{{id}}/stops/{{stop_id}}", directory.remove_stop),
        web.get(f"{p}/operators", directory.list_operators),
        web.post(f"{p}/operators", directory.create_operator),
        web.get(f"{p}/operators/{{id}}", directory.get_operator),
        web.patch(f"{p}/operators/{{id}}", directory.update_operator),
        web.post(f"{p}/operators/{{id}}/desks", directory.create_desk),
        web.get(f"{p}/themes", directory.list_themes),
        web.get(f"{p}/services", directory.list_services),
        web.post(f"{p}/services", directory.create_service),
        web.patch(f"{p}/services/{{id}}", directory.update_service),
        web.post(f"{p}/closures", directory.add_closure),
        web.get(f"{p}/users", directory.list_users),
        web.post(f"{p}/users", directory.create_user),
        web.get(f"{p}/staff/{{id}}/availability", appointments.get_availability),
        web.put(f"{p}/staff/{{id}}/availability", appointments.put_availability),
        web.get(f"{p}/slots", appointments.search_slots),
        web.get(f"{p}/appointments", appointments.list_appointments),
        web.post(f"{p}/appointments", appointments.book),
        web.get(f"{p}/appointments/{{id}}", appointments.get_appointment),
        web.post(f"{p}/appointments/{{id}}/cancel", appointments.cancel),
        web.post(f"{p}/appointments/{{id}}/reschedule", appointments.reschedule),
        web.post(f"{p}/appointments/{{id}}/join", appointments.join),
        web.get(f"{p}/appointments/{{id}}/call-log", appointments.call_log),
        web.post(f"{p}/test-calls", appointments.test_call),
    ]
