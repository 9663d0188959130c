"""The OpenAPI 3.1 document of /api/v1 (a test checks it matches the routes)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), *,
         closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


STR = {"type": "string"}
ID = {"type": "string", "minLength": 1, "maxLength": 64}
NSTR = {"type": ["string", "null"]}
INT = {"type": "integer"}
DT = {"type": "string", "format": "date-time"}
DATE = {"type": "string", "format": "date"}
HM = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
RANGE = _obj({"opens": HM, "closes": HM}, ("opens", "closes"))
LANG = {"type": "string", "enum": ["fr", "nl"]}


def _list_of(name: str) -> dict[str, Any]:
    return _obj({"items": {"type": "array", "items": _ref(name)},
                 "next_cursor": NSTR}, ("items", "next_cursor"), closed=False)


SCHEMAS: dict[str, Any] = {
    "Problem": _obj({"type": STR, "title": STR, "status": INT, "detail": STR},
                    ("title", "status", "detail"), closed=False),
    "Token": _obj({"access_token": STR, "token_type": {"const": "Bearer"}, "expires_at": DT},
                  ("access_token", "token_type", "expires_at")),
    "Stop": _obj({"id": STR, "date": DATE, "commune": STR, "place": STR, "opens": STR,
                  "closes": STR, "hours": {"type": "array", "items": RANGE}},
                 ("id", "date", "commune", "place", "opens", "closes"), closed=False),
    "Site": _obj({"id": STR, "name": STR, "kind": {"enum": ["fixed", "itinerant"]},
                  "commune": STR, "address": STR, "timezone": STR, "booths": INT,
                  "opening_hours": {"type": "object"},
                  "stops": {"type": "array", "items": _ref("Stop")}},
                 ("id", "name", "kind", "commune", "address", "timezone", "booths",
                  "opening_hours", "stops"), closed=False),
    "Operator": _obj({"id": STR, "name": STR, "code": STR, "country": {"enum": ["FR", "BE"]},
                      "kind": {"enum": ["national", "cross_border"]},
                      "languages": {"type": "array", "items": STR}, "timezone": STR,
                      "themes": {"type": "array", "items": STR}},
                     ("id", "name", "code", "country", "kind", "languages", "timezone",
                      "themes"), closed=False),
    "Theme": _obj({"id": STR, "code": STR, "label_fr": STR, "label_nl": STR},
                  ("id", "code"), closed=False),
    "Service": _obj({"id": STR, "operator_id": STR, "theme": STR, "duration_minutes": INT,
                     "languages": {"type": "array", "items": STR}},
                    ("id", "operator_id", "theme", "duration_minutes", "languages"),
                    closed=False),
    "Slot": _obj({"start": DT, "end": DT, "operator_id": STR, "desk_id": STR, "staff_id": STR,
                  "service_id": STR}, ("start", "end", "operator_id", "desk_id", "staff_id",
                                       "service_id"), closed=False),
    "Usager": _obj({"first_name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "last_name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "phone": NSTR, "email": NSTR, "language": LANG,
                    "consent": {"type": "boolean"}},
                   ("first_name", "last_name", "language")),
    "Appointment": _obj({
        "id": STR, "status": {"enum": ["booked", "cancelled", "done", "no_show"]},
        "start": DT, "end": DT, "site_id": STR, "stop_id": NSTR, "booth": INT,
        "operator_id": STR, "desk_id": STR, "staff_id": STR, "service_id": STR, "theme": STR,
        "usager": {"type": "object"}, "version": INT, "created_at": DT, "updated_at": DT,
        "cancel_reason": NSTR},
        ("id", "status", "start", "end", "site_id", "stop_id", "booth", "operator_id",
         "desk_id", "staff_id", "service_id", "theme", "usager", "version", "created_at",
         "updated_at", "cancel_reason"), closed=False),
    "Availability": _obj({"staff_id": STR, "timezone": STR, "rules": {"type": "array"},
                          "overrides": {"type": "array"}, "absences": {"type": "array"}},
                         ("staff_id", "rules", "overrides", "absences"), closed=False),
    "User": _obj({"id": STR, "email": STR, "role": STR}, ("id", "email", "role"),
                 closed=False),
    "Desk": _obj({"id": STR, "operator_id": STR, "name": STR}, ("id", "name"), closed=False),
    "JoinGrant": _obj({"signaling_url": STR, "token": STR, "expires_at": DT, "role": STR,
                       "ice_servers": {"type": "array", "items": {"type": "object"}}},
                      ("signaling_url", "token", "expires_at", "role", "ice_servers"),
                      closed=False),
    "TestCall": _obj({"echo_url": STR, "token": STR, "expires_at": DT,
                      "ice_servers": {"type": "array", "items": {"type": "object"}}},
                     ("echo_url", "token", "expires_at", "ice_servers"), closed=False),
    "CallLog": _obj({"appointment_id": STR, "summary": {"type": "object"},
                     "items": {"type": "array", "items": {"type": "object"}},
                     "next_cursor": NSTR}, ("appointment_id", "summary", "items"),
                    closed=False),
    "Closure": _obj({"id": STR, "date": DATE}, ("id", "date"), closed=False),
}

ERRORS = {
    str(code): {"description": text, "content": {PROBLEM: {"schema": _ref("Problem")}}}
    for code, text in ((400, "Invalid input"), (401, "Not authenticated"),
                       (403, "Forbidden"), (404, "Not found"), (409, "Conflict"),
                       (422, "Cannot be done"), (429, "Too many attempts"))
}


def _op(summary: str, *, ok: int = 200, schema: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None, params: list[dict[str, Any]] | None = None,
        auth: bool = True) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    if ok == 204:
        responses["204"] = {"description": "Done"}
    else:
        responses[str(ok)] = {"description": "Success",
                              "content": {JSON: {"schema": schema or {"type": "object"}}}}
    responses.update(ERRORS)
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if not auth:
        operation["security"] = []
    return operation


def _q(name: str, schema: dict[str, Any] | None = None, *,
       required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema or STR}


def _path(name: str = "id") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


HOURS = {"type": "object", "additionalProperties": {"type": "array", "items": RANGE}}
SITE_BODY = _obj({"name": STR, "kind": {"enum": ["fixed", "itinerant"]}, "commune": STR,
                  "address": STR, "timezone": STR, "booths": INT, "opening_hours": HOURS},
                 ("name", "kind", "commune", "address"))
SERVICE_NUMBERS = {"duration_minutes": INT, "buffer_minutes": INT, "notice_minutes": INT,
                   "horizon_days": INT}
LANGS = {"type": "array", "items": STR}
BOOKING_BODY = _obj({"site_id": ID, "stop_id": ID, "service_id": ID, "operator_id": ID,
                     "theme": STR, "start": DT, "staff_id": ID, "usager": _ref("Usager")},
                    ("site_id", "start", "usager"))
AVAILABILITY_BODY = _obj({
    "rules": {"type": "array", "items": _obj(
        {"weekday": {"type": "integer", "minimum": 0, "maximum": 6}, "opens": HM,
         "closes": HM, "valid_from": {"type": ["string", "null"], "format": "date"},
         "valid_until": {"type": ["string", "null"], "format": "date"}},
        ("weekday", "opens", "closes"))},
    "overrides": {"type": "array", "items": _obj(
        {"date": DATE, "ranges": {"type": "array", "items": RANGE}}, ("date", "ranges"))},
    "absences": {"type": "array", "items": _obj(
        {"start": DT, "end": DT, "reason": STR}, ("start", "end"))},
}, ("rules",))
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": True,
               "schema": {"type": "string", "minLength": 1, "maxLength": 255}}


def _paths() -> dict[str, Any]:
    return {
        "/api/v1/openapi.json": {"get": _op("This document", auth=False)},
        "/api/v1/auth/token": {"post": _op(
            "Log in", schema=_ref("Token"), auth=False,
            body=_obj({"email": STR, "password": STR}, ("email", "password")))},
        "/api/v1/auth/logout": {"post": _op("Revoke this token", ok=204)},
        "/api/v1/sites": {
            "get": _op("Sites in scope", schema=_list_of("Site")),
            "post": _op("Create a site (admin)", ok=201, schema=_ref("Site"), body=SITE_BODY),
        },
        "/api/v1/sites/{id}": {
            "get": _op("A site", schema=_ref("Site"), params=[_path()]),
            "patch": _op("Change a site (admin)", schema=_ref("Site"), params=[_path()],
                         body=_obj({k: v for k, v in SITE_BODY["properties"].items()
                                    if k != "kind"})),
        },
        "/api/v1/sites/{id}/stops": {"post": _op(
            "Add tour stops (admin)", schema=_list_of("Stop"), params=[_path()],
            body=_obj({"stops": {"type": "array", "items": _obj(
                {"date": DATE, "commune": STR, "place": STR,
                 "hours": {"type": "array", "items": RANGE}},
                ("date", "commune", "place", "hours"))}}, ("stops",)))},
        "/api/v1/sites/{id}/stops/{stop_id}": {"delete": _op(
            "Remove a tour stop (admin)", ok=204, params=[_path(), _path("stop_id")])},
        "/api/v1/operators": {
            "get": _op("Operators", schema=_list_of("Operator"),
                       params=[_q("country", {"enum": ["FR", "BE"]}), _q("theme")]),
            "post": _op("Create an operator (admin)", ok=201, schema=_ref("Operator"),
                        body=_obj({"name": STR, "code": STR, "country": {"enum": ["FR", "BE"]},
                                   "kind": {"enum": ["national", "cross_border"]},
                                   "languages": LANGS, "timezone": STR},
                                  ("name", "code", "country", "kind", "languages",
                                   "timezone"))),
        },
        "/api/v1/operators/{id}": {
            "get": _op("An operator with its desks", schema=_ref("Operator"),
                       params=[_path()]),
            "patch": _op("Change an operator (admin)", schema=_ref("Operator"),
                         params=[_path()],
                         body=_obj({"name": STR, "languages": LANGS, "timezone": STR})),
        },
        "/api/v1/operators/{id}/desks": {"post": _op(
            "Add a desk (admin)", ok=201, schema=_ref("Desk"), params=[_path()],
            body=_obj({"name": STR}, ("name",)))},
        "/api/v1/themes": {"get": _op("Themes", schema=_list_of("Theme"))},
        "/api/v1/services": {
            "get": _op("Services", schema=_list_of("Service"),
                       params=[_q("operator_id"), _q("theme")]),
            "post": _op("Create a service (admin)", ok=201, schema=_ref("Service"),
                        body=_obj({"operator_id": ID, "theme": STR, "languages": LANGS,
                                   **SERVICE_NUMBERS}, ("operator_id", "theme"))),
        },
        "/api/v1/services/{id}": {"patch": _op(
            "Change a service (admin)", schema=_ref("Service"), params=[_path()],
            body=_obj({"languages": LANGS, **SERVICE_NUMBERS}))},
        "/api/v1/closures": {"post": _op(
            "Close a site, operator or desk on a date (admin)", ok=201,
            schema=_ref("Closure"),
            body=_obj({"date": DATE, "reason": STR, "site_id": ID, "operator_id": ID,
                       "desk_id": ID}, ("date",)))},
        "/api/v1/users": {
            "get": _op("Accounts (admin)", schema=_list_of("User")),
            "post": _op("Create an account (admin)", ok=201, schema=_ref("User"),
                        body=_obj({"email": STR, "password": STR,
                                   "role": {"enum": ["agent", "staff", "admin"]},
                                   "display_name": STR,
                                   "site_ids": {"type": "array", "items": ID},
                                   "desk_id": ID},
                                  ("email", "password", "role", "display_name"))),
        },
        "/api/v1/staff/{id}/availability": {
            "get": _op("A staff member's availability", schema=_ref("Availability"),
                       params=[_path()]),
            "put": _op("Replace a staff member's availability", schema=_ref("Availability"),
                       params=[_path()], body=AVAILABILITY_BODY),
        },
        "/api/v1/slots": {"get": _op(
            "Free slots", schema=_list_of("Slot"),
            params=[_q("site_id", required=True), _q("theme", required=True),
                    _q("from", DT, required=True), _q("to", DT, required=True),
                    _q("operator_id"), _q("language", LANG), _q("stop_id"), _q("staff_id")])},
        "/api/v1/appointments": {
            "get": _op("Appointments in scope", schema=_list_of("Appointment"),
                       params=[_q("from", DT), _q("to", DT), _q("site_id"),
                               _q("operator_id"),
                               _q("status", {"enum": ["booked", "cancelled", "done",
                                                      "no_show"]}),
                               _q("cursor"),
                               _q("limit", {"type": "integer", "minimum": 1,
                                            "maximum": 200})]),
            "post": _op("Book", ok=201, schema=_ref("Appointment"), body=BOOKING_BODY,
                        params=[IDEMPOTENCY]),
        },
        "/api/v1/appointments/{id}": {"get": _op(
            "An appointment", schema=_ref("Appointment"), params=[_path()])},
        "/api/v1/appointments/{id}/cancel": {"post": _op(
            "Cancel", schema=_ref("Appointment"), params=[_path()],
            body=_obj({"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
                      ("reason",)))},
        "/api/v1/appointments/{id}/reschedule": {"post": _op(
            "Reschedule atomically", schema=_ref("Appointment"), params=[_path()],
            body=_obj({"start": DT, "staff_id": ID}, ("start",)))},
        "/api/v1/appointments/{id}/join": {"post": _op(
            "A join token for the appointment's call", schema=_ref("JoinGrant"),
            params=[_path()])},
        "/api/v1/test-calls": {"post": _op(
            "A token for a test call with the echo peer", schema=_ref("TestCall"))},
        "/api/v1/appointments/{id}/call-log": {"get": _op(
            "The appointment's call events", schema=_ref("CallLog"), params=[_path()])},
    }


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "visio", "version": "1",
                 "description": "Video appointments between France Services sites and "
                                "operators. Errors are RFC 9457 problem+json."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": _paths(),
    }


async def serve_openapi(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json."""
    return web.Response(text=json.dumps(openapi_document()), content_type=JSON)
