"""The OpenAPI document: every route the app serves is in it, every body-carrying route says
what it takes, and the document is valid OpenAPI 3.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from sikker.api import openapi
from sikker.api.app import create_app
from sikker.config import Settings
from sikker.service.bootstrap import bootstrap
from tests.support import Server


def served(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path template) of every /api and /v1 route of the app, walked from its router."""
    services = bootstrap(Settings(database=f"sqlite:///{tmp_path / 'r.db'}", data_dir=tmp_path))
    try:
        app: Any = create_app(services)
        while not hasattr(app, "routes"):
            app = app.app
        routes = app.routes
    finally:
        services.close()
    return {
        (m, openapi.template(r.path))
        for r in routes
        if isinstance(r, Route) and r.path.startswith(("/api/", "/v1/"))
        for m in (r.methods or set()) - {"HEAD"}
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("openapi")
    server = Server(f"sqlite:///{base / 'a.db'}", base / "data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def doc(server: Server) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/openapi.json", timeout=10)  # sealed: still answered
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def test_every_route_the_app_serves_is_described(doc: dict[str, Any], tmp_path: Path) -> None:
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routes = served(tmp_path)
    assert routes - described == set()
    assert described - routes == set()


def test_every_route_with_a_body_names_its_schema(tmp_path: Path) -> None:
    routes = served(tmp_path)
    with_body = {(m, p) for m, p in routes if m in ("POST", "PUT", "PATCH")}
    assert with_body - set(openapi.BODIES) - openapi.NO_BODY == set(), "decide: BODIES or NO_BODY"
    assert set(openapi.BODIES) - routes == set() and openapi.NO_BODY - routes == set()
    assert set(openapi.BODIES).isdisjoint(openapi.NO_BODY)
    assert {k for k in openapi.QUERIES} <= routes


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_bodies_carry_the_validation_limits(doc: dict[str, Any]) -> None:
    create = doc["paths"]["/api/projects/{project}/secrets"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False and "name" in schema["required"]
    assert schema["properties"]["name"] == {"type": "string", "maxLength": 255}
    read = doc["paths"]["/v1/secret/{secret}"]["get"]
    assert read["security"] == openapi.SIGNED
    assert doc["paths"]["/api/sys/status"]["get"]["security"] == []
    assert "security" not in doc["paths"]["/api/vaults"]["post"]  # the document's default: bearer
