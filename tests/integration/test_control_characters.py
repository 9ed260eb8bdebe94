"""Control characters (NUL, other C0, DEL, C1) in a URL or a JSON string field are refused
with a 400 JSON error at the edge, on both stores; never a 500 (PostgreSQL refuses NUL in
text, and that driver error used to escape as a plain-text 500 with a traceback in the log).

Secret values and structured fields are content: they may hold any character.
"""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sikker.api import admin, audit, canaries, jwt_roles, machine, machines_admin, rotation, sys
from tests.support import Api, Server, init_and_unseal

BAD = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9f"]


@dataclass
class World:
    server: Server
    root: Api
    vault: str
    project: str
    secret: str


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("control")
    yield from _world(module_database_url, base)


def _world(database: str, base: Path) -> Iterator[World]:
    server = Server(database, base / "data", env={"SIKKER_AUTH_LOCKOUT_FAILURES": "100000"}).start()
    try:
        _, root_token = init_and_unseal(server.url)
        root = Api(server.url, root_token)
        vault = root.ok("POST", "/api/vaults", {"name": "acme"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "web"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "db", "value": "v"})["id"]
        yield World(server, root, vault, project, secret)
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert "error" in response.json()


def bogus_signature() -> dict[str, str]:
    return {
        "X-Machine-Id": str(uuid.uuid4()),
        "X-Timestamp": str(int(time.time())),
        "X-Nonce": base64.b64encode(os.urandom(16)).decode(),
        "X-Signature": base64.b64encode(os.urandom(64)).decode(),
    }


@pytest.mark.parametrize("char", ["%00", "%01", "%7F", "%C2%85"])
def test_signed_read_of_a_secret_id_with_a_control_character_is_400(world: World, char: str) -> None:
    response = httpx.get(f"{world.server.url}/v1/secret/x{char}", headers=bogus_signature(), timeout=30)
    assert_refused(response)


@pytest.mark.parametrize("name", ["actor", "action", "secret", "severity", "since"])
def test_audit_filters_with_nul_are_400(world: World, name: str) -> None:
    assert_refused(world.root.raw("GET", f"/api/audit/{world.vault}?{name}=a%00"))


def test_stream_list_vault_with_nul_is_400(world: World) -> None:
    assert_refused(world.root.raw("GET", "/api/audit-streams?vault=a%00"))


@pytest.mark.parametrize("char", BAD)
@pytest.mark.parametrize("field", ["hostname", "name"])
def test_enrollment_hostname_and_name_with_control_characters_are_400(
    world: World, field: str, char: str
) -> None:
    token = world.root.ok(
        "POST",
        f"/api/vaults/{world.vault}/enrollment-tokens",
        {"projectIds": [world.project], "secretIds": [world.secret]},
    )["token"]
    public = base64.b64encode(os.urandom(32)).decode()
    body = {"token": token, "publicKey": public, "hostname": "host", field: f"a{char}b"}
    response = httpx.post(f"{world.server.url}/v1/{world.vault}/enroll/register", json=body, timeout=30)
    assert_refused(response)


@pytest.mark.parametrize("field", ["hostnamePattern", "namePattern", "name", "approval", "sourceCidr"])
def test_enrollment_token_patterns_with_nul_are_400(world: World, field: str) -> None:
    body = {"projectIds": [world.project], "secretIds": [world.secret], field: "web-\x00*"}
    assert_refused(world.root.raw("POST", f"/api/vaults/{world.vault}/enrollment-tokens", json=body))


def test_enrollment_token_with_nul_in_a_list_item_is_400(world: World) -> None:
    body = {"projectIds": [world.project + "\x00"], "secretIds": [world.secret]}
    assert_refused(world.root.raw("POST", f"/api/vaults/{world.vault}/enrollment-tokens", json=body))


@pytest.mark.parametrize("char", BAD)
def test_admin_token_name_with_control_characters_is_400(world: World, char: str) -> None:
    body = {"vaultId": world.vault, "name": f"ci{char}"}
    assert_refused(world.root.raw("POST", "/api/tokens", json=body))


def test_rotate_keys_project_id_with_nul_is_400(world: World) -> None:
    assert_refused(world.root.raw("POST", "/api/sys/rotate-keys", json={"projectId": "p\x00"}))


def test_jwt_role_fields_with_control_characters_are_400(world: World) -> None:
    body = {"name": "r", "issuer": "https://i.example", "publicKeys": ["k"], "boundAudiences": ["a\x00"]}
    assert_refused(world.root.raw("POST", f"/api/vaults/{world.vault}/jwt-roles", json=body))
    claims = {
        "name": "r",
        "issuer": "https://i.example",
        "boundAudiences": ["a"],
        "boundClaims": {"x": ["\x1b"]},
    }
    assert_refused(world.root.raw("POST", f"/api/vaults/{world.vault}/jwt-roles", json=claims))


def test_every_route_refuses_nul_in_its_path(world: World) -> None:
    """Each route, its path parameters replaced by a value holding NUL: 400, never 500."""
    routes = [
        *admin.ROUTES,
        *audit.ROUTES,
        *canaries.ROUTES,
        *jwt_roles.ROUTES,
        *machine.ROUTES,
        *machines_admin.ROUTES,
        *rotation.ROUTES,
        *sys.ROUTES,
    ]
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "x%00", route.path)
        for method in route.methods or ():
            if method == "HEAD" or path == route.path:
                continue
            response = world.root.raw(method, path, json={}, headers=bogus_signature())
            assert response.status_code == 400, (method, path, response.status_code, response.text)


def test_secret_values_and_fields_may_hold_any_character(world: World) -> None:
    odd = "".join(BAD) + "\t\n\r"
    created = world.root.ok(
        "POST", f"/api/projects/{world.project}/secrets", {"name": "odd", "value": f"a{odd}b"}
    )
    assert world.root.ok("GET", f"/api/secrets/{created['id']}")["value"] == f"a{odd}b"
    structured = world.root.ok(
        "POST", f"/api/projects/{world.project}/secrets", {"name": "odd-fields", "fields": {"k": odd}}
    )
    assert world.root.ok("GET", f"/api/secrets/{structured['id']}")["fields"] == {"k": odd}
