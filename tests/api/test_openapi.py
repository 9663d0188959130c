"""The OpenAPI document describes exactly the routes of /api/v1, is valid, and is served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from tests.conftest import Client
from visio.api.openapi import openapi_document
from visio.api.routes import PREFIX
from visio.app import create_app
from visio.settings import Settings

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _registered_routes() -> set[tuple[str, str]]:
    """(METHOD, canonical path) of every route create_app registers under /api/v1."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:",
                              secret_key="openapi-test"))
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or not path.startswith(f"{PREFIX}/"):
            continue  # aiohttp adds HEAD next to every GET; /healthz is not the API
        found.add((route.method, path))
    return found


def _documented_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path)
            for path, item in openapi_document()["paths"].items()
            for method in item if method in HTTP_METHODS}


def test_routes_are_listed() -> None:
    # Guard against an empty comparison passing vacuously.
    routes = _registered_routes()
    assert ("GET", f"{PREFIX}/openapi.json") in routes
    assert ("POST", f"{PREFIX}/appointments") in routes
    assert len(routes) >= 20


def test_every_route_is_documented() -> None:
    missing = _registered_routes() - _documented_operations()
    assert not missing, f"routes without an OpenAPI operation: {sorted(missing)}"


def test_every_documented_operation_is_a_route() -> None:
    extra = _documented_operations() - _registered_routes()
    assert not extra, f"OpenAPI operations without a route: {sorted(extra)}"


def test_path_parameters_match_the_path_templates() -> None:
    for path, item in openapi_document()["paths"].items():
        in_template = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", [])
                        if p["in"] == "path"}
            assert declared == in_template, f"{method.upper()} {path}: {declared}"
            assert all(p["required"] for p in operation.get("parameters", [])
                       if p["in"] == "path")


def test_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1.")
    # The official OpenAPI 3.1 JSON Schema (bundled with Schemathesis; openapi-spec-validator
    # is not a dependency of this project).
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert not errors, errors
    # Schemathesis loads it, validates it, and sees every operation without error.
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()
    operations = list(schema.get_all_operations())
    assert all(result.ok() for result in operations), [
        result.err() for result in operations if not result.ok()]
    assert len(operations) == len(_documented_operations())


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every Schema Object embedded in the document (components, parameters, bodies)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield value
            else:
                yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_every_schema_is_valid_json_schema_2020_12() -> None:
    document = openapi_document()
    schemas = [*document["components"]["schemas"].values(), *_schemas(document["paths"])]
    assert len(schemas) > 30
    for schema in schemas:
        jsonschema_rs.meta.validate(schema)


def test_every_reference_resolves() -> None:
    document = openapi_document()

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in set(refs(document)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in document["components"]["schemas"], ref


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_document_is_served(client: Client) -> None:
    response = await client.get(f"{PREFIX}/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == openapi_document()
