"""The machine plane over real HTTP: enrollment, signed reads, grants and every refusal.

Each refusal is checked for its status AND for the audit record it leaves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from sikker.storage import tables
from tests.support import Api, Machine, Server, init_and_unseal


@dataclass
class World:
    server: Server
    root: Api
    vault: str
    project: str
    secret: str
    fields_secret: str
    other_project: str
    other_secret: str
    token: str

    def new_token(self, **kwargs: object) -> str:
        body = {
            "projectIds": [self.project],
            "secretIds": [self.secret, self.fields_secret],
            "maxUses": 100,
        } | kwargs
        return str(self.root.ok("POST", f"/api/vaults/{self.vault}/enrollment-tokens", body)["token"])

    def machine(self, **kwargs: object) -> Machine:
        return Machine.enroll(self.server, self.vault, self.new_token(**kwargs) if kwargs else self.token)

    def audit(self, **where: str) -> list[sa.Row]:  # type: ignore[type-arg]
        url = self.server.database.replace("postgresql://", "postgresql+psycopg://")
        engine = sa.create_engine(url)
        log = tables.audit_log
        query = sa.select(log).order_by(log.c.id)
        for column, value in where.items():
            query = query.where(getattr(log.c, column) == value)
        with engine.connect() as conn:
            rows = list(conn.execute(query))
        engine.dispose()
        return rows


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("machine-plane")
    yield from _world(module_database_url, base)


def _world(database: str, base: Path) -> Iterator[World]:
    server = Server(database, base / "data", env={"SIKKER_AUTH_LOCKOUT_FAILURES": "100000"}).start()
    try:
        _, root_token = init_and_unseal(server.url)
        root = Api(server.url, root_token)
        vault = root.ok("POST", "/api/vaults", {"name": "acme"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "web"})["id"]
        other_project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "batch"})["id"]
        secret = root.ok(
            "POST", f"/api/projects/{project}/secrets", {"name": "db-password", "value": "hunter2"}
        )["id"]
        fields = root.ok(
            "POST",
            f"/api/projects/{project}/secrets",
            {"name": "pg", "fields": {"username": "app", "password": "pw"}},
        )["id"]
        other = root.ok("POST", f"/api/projects/{other_project}/secrets", {"name": "x", "value": "x"})["id"]
        world = World(server, root, vault, project, secret, fields, other_project, other, "")
        world.token = world.new_token()
        yield world
    finally:
        server.stop()


# -- the happy path, byte for byte ------------------------------------------------------
def test_read_returns_exactly_the_value_key_with_200(world: World) -> None:
    m = world.machine()
    r = m.request("GET", f"/v1/secret/{world.secret}")
    assert r.status_code == 200 and r.json() == {"value": "hunter2"}
    rows = world.audit(action="machine:secret:read", actor_id=m.id)
    assert len(rows) == 1 and rows[0].result == "ok" and json.loads(rows[0].target)["secret"] == world.secret
    assert rows[0].source_ip == "127.0.0.1"


def test_structured_value_is_json_text_and_field_names_a_string(world: World) -> None:
    m = world.machine()
    value = m.request("GET", f"/v1/secret/{world.fields_secret}").json()["value"]
    assert json.loads(value) == {"username": "app", "password": "pw"}
    listed = m.request("GET", "/v1/secrets").json()
    assert set(listed) == {"secrets"}
    by_id = {s["id"]: s for s in listed["secrets"]}
    assert set(by_id) == {world.secret, world.fields_secret}
    assert by_id[world.secret] == {
        "id": world.secret,
        "name": "db-password",
        "fieldNames": None,
        "projectId": world.project,
    }
    assert json.loads(by_id[world.fields_secret]["fieldNames"]) == ["username", "password"]


def test_export_with_and_without_a_body(world: World) -> None:
    m = world.machine()
    everything = m.request("POST", "/v1/secrets/export").json()["secrets"]
    assert {e["id"] for e in everything} == {world.secret, world.fields_secret}
    assert all(set(e) == {"id", "name", "value", "fieldNames"} for e in everything)
    body = json.dumps({"projectId": world.project}).encode()
    assert len(m.request("POST", "/v1/secrets/export", body).json()["secrets"]) == 2
    assert len(m.request("POST", "/v1/secrets/list", body).json()["secrets"]) == 2


def test_cli_surfaces_list_projects_and_typed_secrets(world: World) -> None:
    m = world.machine()
    projects = m.request("GET", "/v1/cli/projects").json()["projects"]
    assert projects == [
        {"projectId": world.project, "projectName": "web", "applicationId": "", "applicationName": ""}
    ]
    types = {s["id"]: s["type"] for s in m.request("GET", "/v1/cli/secrets").json()["secrets"]}
    assert types == {world.secret: "secret", world.fields_secret: "structured"}


def test_enroll_response_has_only_contract_keys(world: World) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    token = world.new_token(namePattern="worker-{uuid8}", machineLifetimeSeconds=3600)
    r = Api(world.server.url).raw(
        "POST",
        f"/v1/{world.vault}/enroll/register",
        json={
            "token": token,
            "publicKey": base64.b64encode(key).decode(),
            "hostname": "h",
            "name": "ignored",
        },
    )
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"machineId", "machineName", "vaultId", "expiresAt", "apiUrl"}
    assert body["machineName"].startswith("worker-") and len(body["machineName"]) == 15
    assert body["apiUrl"] == world.server.public_url and body["vaultId"] == world.vault


def test_poll_reports_only_changes_and_is_rate_limited(world: World) -> None:
    m = world.machine()
    m.request("GET", f"/v1/secret/{world.secret}")
    watch = json.dumps({"watch": [world.secret, world.fields_secret]}).encode()
    first = m.request("POST", "/v1/secrets/poll", watch)
    assert first.status_code == 200 and first.json() == {"changes": {}}
    assert m.request("POST", "/v1/secrets/poll", watch).status_code == 429


# -- refusals ------------------------------------------------------------------------------
def _refused(world: World, machine: Machine, response: object, status: int, reason: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert list(response.json()) == ["error"]  # type: ignore[attr-defined]
    rows = [r for r in world.audit(actor_id=machine.id) if r.result == "denied" and reason in r.reason]
    assert rows, f"no denied audit record with {reason!r}"


def test_wrong_signature_is_401_and_audited(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    m = world.machine()
    r = m.request("GET", f"/v1/secret/{world.secret}", key=Ed25519PrivateKey.generate())
    _refused(world, m, r, 401, "invalid signature")


def test_body_altered_after_signing_is_401(world: World) -> None:
    m = world.machine()
    signed = json.dumps({"projectId": world.project}).encode()
    r = m.request("POST", "/v1/secrets/export", signed, send_body=signed.replace(b"proj", b"PROJ"))
    _refused(world, m, r, 401, "invalid signature")


def test_replayed_nonce_is_rejected(world: World) -> None:
    m = world.machine()
    assert m.request("GET", f"/v1/secret/{world.secret}", nonce="same-nonce").status_code == 200
    r = m.request("GET", f"/v1/secret/{world.secret}", nonce="same-nonce")
    _refused(world, m, r, 401, "replayed")


def test_timestamp_301_seconds_old_is_401(world: World) -> None:
    m = world.machine()
    r = m.request("GET", f"/v1/secret/{world.secret}", timestamp=int(time.time()) - 301)
    _refused(world, m, r, 401, "outside the allowed window")
    assert m.request("GET", f"/v1/secret/{world.secret}", timestamp=int(time.time()) - 290).status_code == 200


def test_query_string_is_refused(world: World) -> None:
    m = world.machine()
    r = m.request("GET", f"/v1/secret/{world.secret}", query="version=1")
    _refused(world, m, r, 400, "query strings")


def test_unknown_machine_is_401(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    ghost = Machine(world.server.url, "00000000-0000-4000-8000-000000000000", Ed25519PrivateKey.generate())
    r = ghost.request("GET", f"/v1/secret/{world.secret}")
    _refused(world, ghost, r, 401, "unknown or revoked machine")


def test_missing_signature_headers_are_401(world: World) -> None:
    r = Api(world.server.url).raw("GET", f"/v1/secret/{world.secret}")
    assert r.status_code == 401 and "x-machine-id" in r.json()["error"]


def test_disabled_then_revoked_machine(world: World) -> None:
    m = world.machine()
    world.root.ok("POST", f"/api/machines/{m.id}/disable")
    _refused(world, m, m.request("GET", f"/v1/secret/{world.secret}"), 403, "disabled")
    world.root.ok("POST", f"/api/machines/{m.id}/enable")
    assert m.request("GET", f"/v1/secret/{world.secret}").status_code == 200
    world.root.ok("POST", f"/api/machines/{m.id}/revoke")
    _refused(world, m, m.request("GET", f"/v1/secret/{world.secret}"), 401, "unknown or revoked")


def test_pending_machine_is_403_until_approved(world: World) -> None:
    token = world.new_token(approval="manual")
    m = Machine.enroll(world.server, world.vault, token, kind="standard")
    _refused(world, m, m.request("GET", f"/v1/secret/{world.secret}"), 403, "pending approval")
    world.root.ok("POST", f"/api/machines/{m.id}/approve")
    assert m.request("GET", f"/v1/secret/{world.secret}").status_code == 200


def test_expired_ephemeral_machine_is_401(world: World) -> None:
    m = world.machine(machineLifetimeSeconds=60)
    assert m.request("GET", f"/v1/secret/{world.secret}").status_code == 200
    engine = sa.create_engine(world.server.database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(
            sa.update(tables.machines)
            .where(tables.machines.c.id == m.id)
            .values(expires_ms=int(time.time() * 1000) - 1)
        )
    engine.dispose()
    _refused(world, m, m.request("GET", f"/v1/secret/{world.secret}"), 401, "expired")


def test_no_grant_no_read_even_with_a_valid_signature(world: World) -> None:
    m = world.machine()
    world.root.ok("POST", f"/api/machines/{m.id}/projects", {"projectId": world.other_project})
    _refused(world, m, m.request("GET", f"/v1/secret/{world.other_secret}"), 403, "no grant")


def test_grant_revoked_between_two_reads(world: World) -> None:
    m = world.machine()
    assert m.request("GET", f"/v1/secret/{world.secret}").status_code == 200
    world.root.ok("POST", f"/api/machines/{m.id}/grants/remove", {"secretIds": [world.secret]})
    _refused(world, m, m.request("GET", f"/v1/secret/{world.secret}"), 403, "no grant")


def test_membership_removed_stops_reads_at_once(world: World) -> None:
    m = world.machine()
    world.root.ok("DELETE", f"/api/machines/{m.id}/projects/{world.project}")
    _refused(world, m, m.request("GET", f"/v1/secret/{world.secret}"), 403, "not a member")


def test_secret_of_another_vault_is_404(world: World) -> None:
    vault = world.root.ok("POST", "/api/vaults", {"name": f"other-{time.time_ns()}"})["id"]
    project = world.root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    foreign = world.root.ok("POST", f"/api/projects/{project}/secrets", {"name": "f", "value": "nope"})["id"]
    m = world.machine()
    _refused(world, m, m.request("GET", f"/v1/secret/{foreign}"), 404, "not found")


def test_grant_requires_membership_first(world: World) -> None:
    m = world.machine()
    status, body = world.root.call(
        "POST", f"/api/machines/{m.id}/grants", {"secretIds": [world.other_secret]}
    )
    assert status == 409 and "sikker machine add" in body["error"]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"hostnamePattern": "web-[0-9]+"}, 403, "hostname"),
        ({"sourceCidr": "10.0.0.0/8"}, 403, "address"),
    ],
)
def test_enrollment_guardrails(world: World, kwargs: dict[str, str], status: int, message: str) -> None:
    import base64

    token = world.new_token(**kwargs)
    r = Api(world.server.url).raw(
        "POST",
        f"/v1/{world.vault}/enroll/register",
        json={"token": token, "publicKey": base64.b64encode(bytes(range(32))).decode(), "hostname": "db-1"},
    )
    assert r.status_code == status and message in r.json()["error"]


def test_used_up_revoked_and_unknown_enrollment_tokens_are_401(world: World) -> None:
    token = world.new_token(maxUses=1)
    Machine.enroll(world.server, world.vault, token)
    api = Api(world.server.url)
    key = "IVL40Zt5HSRFMkLhXy6rbLfP+ntqXtMAl5YOBpiB2xI="
    r = api.raw("POST", f"/v1/{world.vault}/enroll/register", json={"token": token, "publicKey": key})
    assert r.status_code == 401 and "no uses left" in r.json()["error"]
    r = api.raw("POST", f"/v1/{world.vault}/enroll/register", json={"token": "nope", "publicKey": key})
    assert r.status_code == 401
    created = world.root.ok(
        "POST", f"/api/vaults/{world.vault}/enrollment-tokens", {"projectIds": [], "secretIds": []}
    )
    world.root.ok("DELETE", f"/api/enrollment-tokens/{created['id']}")
    r = api.raw(
        "POST", f"/v1/{world.vault}/enroll/register", json={"token": created["token"], "publicKey": key}
    )
    assert r.status_code == 401 and "revoked" in r.json()["error"], r.text


def test_oversized_body_is_refused_before_any_work(world: World) -> None:
    m = world.machine()
    big = b'{"watch": [' + b'"sk_x",' * 300_000 + b'"sk_x"]}'
    r = m.request("POST", "/v1/secrets/poll", big)
    assert r.status_code == 413 and list(r.json()) == ["error"]


# -- server-wide states (own servers: they change global state) ------------------------------
def test_sealed_server_answers_503(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "d").start()
    try:
        _, root_token = init_and_unseal(server.url)
        root = Api(server.url, root_token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "v"})["id"]
        token = root.ok(
            "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": [secret]}
        )["token"]
        m = Machine.enroll(server, vault, token)
        root.ok("POST", "/api/sys/seal")
        r = m.request("GET", f"/v1/secret/{secret}")
        assert r.status_code == 503 and "sealed" in r.json()["error"]
    finally:
        server.stop()


def test_repeated_auth_failures_lock_the_source_out(tmp_path: Path) -> None:
    server = Server(
        f"sqlite:///{tmp_path / 's.db'}", tmp_path / "d", env={"SIKKER_AUTH_LOCKOUT_FAILURES": "3"}
    ).start()
    try:
        init_and_unseal(server.url)
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        ghost = Machine(server.url, "00000000-0000-4000-8000-000000000000", Ed25519PrivateKey.generate())
        statuses = [ghost.request("GET", "/v1/secret/sk_0123456789abcdef").status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429], server.log.read_text()[-3000:]
    finally:
        server.stop()
