"""The operations of /api/v1, declared once: routes and the OpenAPI document come from here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from visio.api import (
    appointments,
    audit,
    auth,
    calendars,
    calls,
    directory,
    figures,
    notifications,
    territories,
    webhooks,
)
from visio.contract import bodies as api
from visio.web import usager

PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Header:
    """A request header an operation reads."""

    name: str
    schema: dict[str, Any]
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    """One API operation: its route, its declared types and its documented answers."""

    method: str
    path: str
    handler: Handler
    summary: str
    response: type | None = None
    status: int = 200
    body: type | None = None
    query: type | None = None
    auth: bool = True
    headers: tuple[Header, ...] = ()
    etag: bool = False
    refusals: tuple[int, ...] = ()
    #: The media type of a response that is not JSON (declared without a JSON schema).
    media_type: str | None = None
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag: str = "directory"
    #: Also answers as CSV (``?format=csv`` or ``Accept: text/csv``).
    csv: bool = False


IDEMPOTENCY_KEY = Header(
    "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255,
                        "pattern": r"^[\x21-\x7e]+$"},
    required=True, description="A retry with the same key and body replays the answer "
                               "(kept 24 h); another body with the same key is a 422.")
IF_MATCH = Header(
    "If-Match", {"type": "string"},
    description='The ETag of the version read (e.g. "v3"); any other is a 412.')

APPOINTMENT = "#/components/schemas/Appointment"
_appointment_links = {
    "GetAppointment": {"operationId": "get_appointment",
                       "parameters": {"id": "$response.body#/id"}},
    "CancelAppointment": {"operationId": "cancel",
                          "parameters": {"id": "$response.body#/id"}},
    "RescheduleAppointment": {"operationId": "reschedule",
                              "parameters": {"id": "$response.body#/id"}},
    "JoinAppointment": {"operationId": "join", "parameters": {"id": "$response.body#/id"}},
    "AppointmentCallLog": {"operationId": "call_log",
                           "parameters": {"id": "$response.body#/id"}},
}


def operations() -> list[Operation]:
    """Every operation of /api/v1 (the OpenAPI document describes exactly these)."""
    op = Operation  # a short name keeps the table readable
    return [
        op("POST", "/auth/token", auth.issue_token, "Log in", api.Token, body=api.Login,
          auth=False, refusals=(401, 429), tag="auth"),
        op("POST", "/auth/logout", auth.log_out, "Revoke this token", status=204, tag="auth"),
        op("GET", "/sites", directory.list_sites, "Sites in scope", api.Page[api.Site]),
        op("POST", "/sites", directory.create_site, "Create a site (admin)", api.Site,
          status=201, body=api.SiteCreate, refusals=(403, 422),
          links={"GetSite": {"operationId": "get_site",
                             "parameters": {"id": "$response.body#/id"}}}),
        op("GET", "/sites/{id}", directory.get_site, "A site", api.Site, refusals=(404,)),
        op("PATCH", "/sites/{id}", directory.update_site, "Change a site (admin)", api.Site,
          body=api.SiteUpdate, refusals=(403, 404, 422)),
        op("POST", "/sites/{id}/stops", directory.add_stops, "Add tour stops (admin)",
          api.Page[api.Stop], status=201, body=api.StopsCreate, refusals=(403, 404, 409, 422)),
        op("DELETE", "/sites/{id}/stops/{stop_id}", directory.remove_stop,
          "Remove a tour stop (admin)", status=204, refusals=(403, 404, 409)),
        op("GET", "/operators", directory.list_operators, "Operators",
          api.Page[api.OperatorDetail], query=api.OperatorQuery),
        op("POST", "/operators", directory.create_operator, "Create an operator (admin)",
          api.OperatorDetail, status=201, body=api.OperatorCreate, refusals=(403, 409, 422),
          links={"GetOperator": {"operationId": "get_operator",
                                 "parameters": {"id": "$response.body#/id"}}}),
        op("GET", "/operators/{id}", directory.get_operator, "An operator with its desks",
          api.OperatorDetail, refusals=(404,)),
        op("PATCH", "/operators/{id}", directory.update_operator, "Change an operator (admin)",
          api.OperatorDetail, body=api.OperatorUpdate, refusals=(403, 404, 422)),
        op("POST", "/operators/{id}/webhooks", webhooks.create,
          "Register a webhook endpoint (admin); its secret is shown once",
          api.WebhookSecret, status=201, body=api.WebhookCreate, refusals=(403, 404, 422),
          tag="webhooks"),
        op("GET", "/operators/{id}/webhooks", webhooks.list_,
          "An operator's webhook endpoints (admin)", api.Page[api.WebhookEndpoint],
          refusals=(403, 404), tag="webhooks"),
        op("DELETE", "/operators/{id}/webhooks/{webhook_id}", webhooks.delete,
          "Remove a webhook endpoint (admin)", status=204, refusals=(403, 404),
          tag="webhooks"),
        op("POST", "/operators/{id}/webhooks/{webhook_id}/rotate", webhooks.rotate,
          "A new signing secret, shown once; the old one signs too for a while (admin)",
          api.WebhookSecret, refusals=(403, 404), tag="webhooks"),
        op("POST", "/operators/{id}/webhooks/{webhook_id}/enable", webhooks.enable,
          "Turn a disabled webhook endpoint on again (admin)", api.WebhookEndpoint,
          refusals=(403, 404), tag="webhooks"),
        op("GET", "/operators/{id}/webhooks/{webhook_id}/deliveries", webhooks.deliveries,
          "An endpoint's delivery log: attempts, status codes, latency (admin)",
          api.WebhookLog, refusals=(403, 404), tag="webhooks"),
        op("POST", "/operators/{id}/desks", directory.create_desk, "Add a desk (admin)",
          api.Desk, status=201, body=api.DeskCreate, refusals=(403, 404)),
        op("PUT", "/desks/{id}/territory", territories.put_territory,
          "Replace the départements and communes a desk serves (admin)", api.Territory,
          body=api.TerritoryUpdate, refusals=(403, 404, 422)),
        op("GET", "/themes", directory.list_themes, "Themes", api.Page[api.Theme]),
        op("GET", "/services", directory.list_services, "Services", api.Page[api.Service],
          query=api.ServiceQuery),
        op("POST", "/services", directory.create_service, "Create a service (admin)",
          api.Service, status=201, body=api.ServiceCreate, refusals=(403, 404, 409)),
        op("PATCH", "/services/{id}", directory.update_service, "Change a service (admin)",
          api.Service, body=api.ServiceUpdate, refusals=(403, 404)),
        op("POST", "/closures", directory.add_closure,
          "Close a site, operator or desk on a date (admin); 409 lists its bookings",
          api.Closure, status=201, body=api.ClosureCreate, refusals=(403, 404, 409, 422)),
        op("GET", "/users", directory.list_users, "Accounts (admin)", api.Page[api.User],
          refusals=(403,)),
        op("POST", "/users", directory.create_user, "Create an account (admin)", api.User,
          status=201, body=api.UserCreate, refusals=(403, 404, 409, 422)),
        op("PUT", "/users/{id}/grants", directory.grant_user,
          "Give an account its sites, staff member or départements, replacing what it had "
          "(admin); how a ProConnect account provisioned with nothing gets them", api.User,
          body=api.UserGrant, refusals=(403, 404, 422)),
        op("POST", "/users/{id}/password-reset", auth.force_password_reset,
          "Force a password reset (admin): the password stops working, every session "
          "ends, a link goes to the account", status=204, refusals=(403, 404), tag="auth"),
        op("GET", "/staff/{id}/availability", appointments.get_availability,
          "A staff member's availability", api.Availability, refusals=(404,),
          tag="availability"),
        op("PUT", "/staff/{id}/availability", appointments.put_availability,
          "Replace a staff member's availability", api.Availability,
          body=api.AvailabilityUpdate, refusals=(404, 409, 422), tag="availability"),
        op("GET", "/slots", appointments.search_slots, "Free slots", api.Page[api.Slot],
          query=api.SlotQuery, refusals=(404, 422, 429), tag="booking"),
        op("GET", "/appointments", appointments.list_appointments, "Appointments in scope",
          api.Page[api.Appointment], query=api.AppointmentQuery, refusals=(422,),
          tag="booking"),
        op("POST", "/appointments", appointments.book, "Book", api.Appointment, status=201,
          body=api.Booking, headers=(IDEMPOTENCY_KEY,), etag=True,
          refusals=(404, 409, 422), links=_appointment_links, tag="booking"),
        op("GET", "/appointments/{id}", appointments.get_appointment, "An appointment",
          api.Appointment, etag=True, refusals=(404,), tag="booking"),
        op("POST", "/appointments/{id}/cancel", appointments.cancel, "Cancel",
          api.Appointment, body=api.Cancellation, headers=(IF_MATCH,), etag=True,
          refusals=(403, 404, 409, 412), tag="booking"),
        op("POST", "/appointments/{id}/reschedule", appointments.reschedule,
          "Reschedule atomically (the same start changes nothing)", api.Appointment,
          body=api.Rescheduling, headers=(IF_MATCH,), etag=True,
          refusals=(403, 404, 409, 412, 422), tag="booking"),
        op("PATCH", "/appointments/{id}/usager", appointments.correct_usager,
          "Correct the usager's details or the note for the operator (a new phone or "
          "e-mail gets the confirmation again)", api.Appointment, body=api.UsagerCorrection,
          headers=(IF_MATCH,), etag=True, refusals=(403, 404, 409, 412, 422),
          tag="booking"),
        op("POST", "/appointments/{id}/resend", appointments.resend,
          "Send the usager's last message again (3 a day at most, within the daily cap)",
          api.Notification, status=202, refusals=(403, 404, 409, 429), tag="notifications"),
        op("POST", "/appointments/{id}/join", calls.join,
          "A join token for the appointment's call", api.JoinGrant, refusals=(404, 422),
          tag="calls"),
        op("GET", "/appointments/{id}/call-log", calls.call_log,
          "The appointment's call events, paginated", api.CallLog, query=api.CallLogQuery,
          refusals=(404,), tag="calls"),
        op("GET", "/appointments/{id}/invite.ics", calendars.invitation,
          "The appointment's invitation (iCalendar REQUEST, or CANCEL once cancelled)",
          media_type="text/calendar", refusals=(404,), tag="calendars"),
        op("POST", "/calendar-feeds", calendars.create_feed,
          "Create an agenda feed (its address is shown in this answer only)",
          api.FeedCreated, status=201, body=api.FeedCreate, refusals=(403, 404),
          tag="calendars"),
        op("GET", "/calendar-feeds", calendars.list_feeds, "The caller's agenda feeds",
          api.Page[api.Feed], tag="calendars"),
        op("DELETE", "/calendar-feeds/{id}", calendars.revoke_feed, "Revoke an agenda feed",
          status=204, refusals=(404,), tag="calendars"),
        op("POST", "/staff/{id}/calendars", calendars.import_calendar,
          "Register a staff member's own calendar for busy time (them, or an admin)",
          api.ImportedCalendar, status=201, body=api.CalendarImport,
          refusals=(404, 422), tag="calendars"),
        op("GET", "/staff/{id}/calendars", calendars.list_imported_calendars,
          "A staff member's imported calendars and their state",
          api.Page[api.ImportedCalendar], refusals=(404,), tag="calendars"),
        op("DELETE", "/staff/{id}/calendars/{calendar_id}", calendars.remove_imported_calendar,
          "Remove an imported calendar and its busy time", status=204, refusals=(404,),
          tag="calendars"),
        op("GET", "/appointments/{id}/notifications", notifications.list_notifications,
          "The appointment's notifications and their outcomes", api.Notifications,
          refusals=(404,), tag="notifications"),
        op("GET", "/appointments/{id}/convocation", usager.convocation,
          "A printable convocation in the usager's language (HTML)", media_type="text/html",
          refusals=(404,), tag="notifications"),
        op("POST", "/appointments/{id}/outcome", appointments.correct_outcome,
          "Set or correct the outcome (done or no_show) within 7 days, with a reason",
          api.Appointment, body=api.OutcomeCorrection, headers=(IF_MATCH,), etag=True,
          refusals=(403, 404, 409, 412, 422), tag="booking"),
        op("GET", "/figures", figures.get_figures,
          "Counts and rates per site, operator, theme, département, month or week",
          api.Figures, query=api.FiguresQuery, refusals=(422,), tag="figures", csv=True),
        op("GET", "/figures/appointments", figures.export_appointments,
          "Each appointment of a period without personal data (ids, times, outcomes)",
          api.Page[api.AppointmentFigures], query=api.ExportQuery, refusals=(422,),
          tag="figures", csv=True),
        op("GET", "/audit", audit.list_entries,
          "The audit trail in the order it was written (admins; coordinators: their "
          "départements' sites), paginated", api.Page[api.AuditEntry], query=api.AuditQuery,
          refusals=(403, 422), tag="audit"),
        op("GET", "/audit.csv", audit.export_csv,
          "The audit trail as CSV (UTF-8, a header row; sep=; for French spreadsheets)",
          query=api.AuditQuery, media_type="text/csv", refusals=(403, 422), tag="audit"),
        op("POST", "/test-calls", calls.test_call,
          "A token for a test call with the echo peer (HTTP POST to echo_url)",
          api.TestCall, refusals=(404, 409), tag="calls"),
    ]


def operation_id(operation: Operation) -> str:
    """The stable operationId: the handler's name."""
    return operation.handler.__name__


def api_routes() -> list[web.RouteDef]:
    """Every API route, from the declared operations, and the document itself."""
    from visio.api.openapi import serve_openapi

    routes = [web.get(f"{PREFIX}/openapi.json", serve_openapi)]
    routes += [web.route(op.method, PREFIX + op.path, op.handler) for op in operations()]
    return routes
