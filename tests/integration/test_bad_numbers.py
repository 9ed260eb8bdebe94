"""Numbers and names the API cannot use get a 4xx JSON answer on both stores, never a 500:
non-ASCII digits in query parameters, versions beyond the store's integers, an unknown
machine action, a cron expression that never fires."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import Api, Machine, Server, init_and_unseal


@dataclass
class World:
    server: Server
    root: Api
    vault: str
    secret: str
    machine: str


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("numbers")
    yield from _world(module_database_url, base)


def _world(database: str, base: Path) -> Iterator[World]:
    server = Server(database, base / "data").start()
    try:
        _, root_token = init_and_unseal(server.url)
        root = Api(server.url, root_token)
        vault = root.ok("POST", "/api/vaults", {"name": "acme"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "web"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "db", "value": "v"})["id"]
        root.ok("PUT", f"/api/secrets/{secret}", {"value": "v2"})
        token = root.ok(
            "POST",
            f"/api/vaults/{vault}/enrollment-tokens",
            {"projectIds": [project], "secretIds": [secret]},
        )["token"]
        machine = Machine.enroll(server, vault, token).id
        yield World(server, root, vault, secret, machine)
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def assert_json(response: httpx.Response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert "error" in response.json()


@pytest.mark.parametrize("value", ["²", "¹²", "٣", "\uff11", "-1", "0", "2147483648", "9" * 40])
def test_secret_version_query_must_be_an_ascii_integer_in_range(world: World, value: str) -> None:
    assert_json(world.root.raw("GET", f"/api/secrets/{world.secret}", params={"version": value}), 400)


def test_secret_version_query_in_range_still_works(world: World) -> None:
    assert world.root.ok("GET", f"/api/secrets/{world.secret}", params={"version": "1"})["value"] == "v"


@pytest.mark.parametrize("name", ["since", "until", "before", "limit"])
@pytest.mark.parametrize("value", ["²", "٣", "9" * 40])
def test_audit_query_integers_refuse_non_ascii_digits(world: World, name: str, value: str) -> None:
    assert_json(world.root.raw("GET", f"/api/audit/{world.vault}", params={name: value}), 400)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/export", "since"),
        ("/proof/inclusion", "seq"),
        ("/proof/inclusion", "treeSize"),
        ("/proof/consistency", "first"),
        ("/proof/consistency", "second"),
    ],
)
def test_audit_proof_and_export_integers_refuse_superscripts(world: World, path: str, name: str) -> None:
    response = world.root.raw("GET", f"/api/audit/{world.vault}{path}", params={name: "²"})
    assert_json(response, 400)


def test_stream_deliveries_limit_refuses_superscripts(world: World) -> None:
    assert_json(world.root.raw("GET", "/api/audit-streams/nope/deliveries", params={"limit": "²"}), 400)


def test_unknown_machine_action_is_404(world: World) -> None:
    assert_json(world.root.raw("POST", f"/api/machines/{world.machine}/frobnicate"), 404)


def test_known_machine_action_still_works(world: World) -> None:
    assert world.root.ok("POST", f"/api/machines/{world.machine}/disable")["enabled"] is False


@pytest.mark.parametrize("version", [2**31, 2**31 - 1, 2**63 - 1, 2**63, 2**64 - 1])
def test_rollback_to_a_version_out_of_range_is_400_or_404(world: World, version: int) -> None:
    response = world.root.raw("POST", f"/api/secrets/{world.secret}/rollback", json={"version": version})
    assert_json(response, 400, 404)


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *"])
def test_cron_that_never_fires_is_refused_at_creation(world: World, cron: str) -> None:
    response = world.root.raw("PUT", f"/api/secrets/{world.secret}/rotation", json={"cron": cron})
    assert_json(response, 400)
    assert "never" in response.json()["error"]


def test_cron_that_fires_rarely_is_accepted(world: World) -> None:
    response = world.root.raw("PUT", f"/api/secrets/{world.secret}/rotation", json={"cron": "0 0 29 2 *"})
    assert response.status_code == 200, response.text
