"""The OpenAPI 3.1 document of /api/v1, generated from the declared operations and types."""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import msgspec
from aiohttp import web

from visio.api.routes import PREFIX, Operation, operation_id, operations
from visio.contract import bodies as api
from visio.contract.fields import ID_PATTERN

JSON = "application/json"
PROBLEM = "application/problem+json"
REF = "#/components/schemas/{name}"

_PROBLEM_TEXTS = {
    400: "The request does not fit this document; `field` names the field.",
    401: "Not logged in, or the token expired (WWW-Authenticate: Bearer).",
    403: "Logged in, but not allowed to do this.",
    404: "Nothing at this address in the caller's scope.",
    409: "A conflict: a slot taken (with `alternatives`), or bookings in the way.",
    412: "If-Match names a version that is no longer the current one.",
    422: "Understood but cannot be done; `reason` is a stable code.",
    429: "Too many requests; see Retry-After.",
    503: "Busy; see Retry-After.",
}


def _problem_response(status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {"Content-Language": {
        "description": "The language of title and detail (fr, nl or en).",
        "required": True, "schema": {"type": "string", "enum": ["fr", "nl", "en"]}}}
    if status in (429, 503):
        headers["Retry-After"] = {"required": True, "schema": {"type": "string"}}
    if status == 401:
        headers["WWW-Authenticate"] = {"required": True, "schema": {"type": "string"}}
    return {"description": _PROBLEM_TEXTS.get(status, "An error, as RFC 9457 problem+json."),
            "headers": headers,
            "content": {PROBLEM: {"schema": {"$ref": REF.format(name="Problem")}}}}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    options = schema.get("anyOf")
    if options:
        kept = [s for s in options if s.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            return {**kept[0], **rest}
    return {k: v for k, v in schema.items() if k != "default"}


def _query_parameters(kind: type, components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = components[kind.__name__]
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required,
             "schema": _without_null(prop)}
            for name, prop in schema["properties"].items()]


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": 64,
                    "pattern": ID_PATTERN}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        parameters += _query_parameters(op.query, components)
    parameters += [{"name": h.name, "in": "header", "required": h.required,
                    "schema": h.schema, "description": h.description} for h in op.headers]
    responses: dict[str, Any] = {}
    if op.response is None and op.media_type is not None:
        responses[str(op.status)] = {"description": op.summary, "content": {
            op.media_type: {"schema": {"type": "string"}}}}
    elif op.response is None:
        responses[str(op.status)] = {"description": op.summary}
    else:
        ok: dict[str, Any] = {"description": op.summary, "content": {JSON: {
            "schema": msgspec.json.schema_components([op.response], ref_template=REF)[0][0]}}}
        if op.etag:
            ok["headers"] = {"ETag": {"required": True, "schema": {"type": "string"},
                                      "description": "The appointment's version."}}
        if op.links:
            ok["links"] = op.links
        if op.csv:
            ok["content"]["text/csv"] = {"schema": {"type": "string"}}
        responses[str(op.status)] = ok
    statuses = set(op.refusals) | {503}
    if parameters or op.body is not None:
        statuses.add(400)
    if op.auth:
        statuses.add(401)
    for status in sorted(statuses):
        responses[str(status)] = _problem_response(status)
    responses["default"] = _problem_response(500)
    document: dict[str, Any] = {
        "operationId": operation_id(op), "summary": op.summary, "tags": [op.tag],
        "responses": responses,
    }
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        document["requestBody"] = {"required": True, "content": {JSON: {
            "schema": {"$ref": REF.format(name=op.body.__name__)}}}}
    if not op.auth:
        document["security"] = []
    return document


def _declared_types(ops: list[Operation]) -> list[Any]:
    kinds: list[Any] = [api.Problem]
    for op in ops:
        kinds += [k for k in (op.response, op.body, op.query) if k is not None]
    return kinds


def _closed(components: dict[str, Any]) -> dict[str, Any]:
    """Request types refuse unknown fields: say so in the document."""
    for name, schema in components.items():
        kind = getattr(api, name, None)
        if isinstance(kind, type) and issubclass(kind, api.Request) \
                and schema.get("type") == "object":
            schema["additionalProperties"] = False
    return components


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a fresh copy: callers such as test tools mutate it)."""
    return copy.deepcopy(_document())


@cache
def _document() -> dict[str, Any]:
    ops = operations()
    _, components = msgspec.json.schema_components(_declared_types(ops), ref_template=REF)
    components = _closed(components)
    paths: dict[str, Any] = {
        f"{PREFIX}/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document", "security": [],
            "tags": ["meta"],
            "responses": {"200": {"description": "This document",
                                  "content": {JSON: {"schema": {"type": "object"}}}}}}},
    }
    for op in ops:
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "visio", "version": "1",
                 "description": "Video appointments between France Services sites and "
                                "operators. Errors are RFC 9457 problem+json in the "
                                "caller's language (Accept-Language: fr, nl, en)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"schemas": components, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


@cache
def _document_bytes() -> bytes:
    return msgspec.json.encode(_document())


async def serve_openapi(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json."""
    return web.Response(body=_document_bytes(), content_type=JSON)
