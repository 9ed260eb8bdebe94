"""Rotation: schedules that run once, plain and structured rotation, and the two-phase
server side of database-credential rotation (what `sikker agent` talks to)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sikker.config import Settings
from sikker.core import audit, rotation, values
from sikker.core.model import Principal
from sikker.service.bootstrap import Services, bootstrap
from tests.integration.test_services import ACTOR, ROOT, FakeClock
from tests.support import Api, Machine, Server, init_and_unseal

HOUR_MS = 3_600_000


@pytest.fixture
def nodes(database_url: str, tmp_path: Path) -> Iterator[tuple[Services, Services, FakeClock]]:
    """Two independent service stacks ("nodes") on one store, sharing a fake clock."""
    clock = FakeClock()
    first = bootstrap(Settings(database=database_url, data_dir=tmp_path), clock)
    first.deps.db.migrate()
    share = first.seal.init(1, 1, ACTOR).shares[0]
    first.seal.submit_share(share, ACTOR)
    second = bootstrap(Settings(database=database_url, data_dir=tmp_path), clock)
    second.seal.submit_share(share, ACTOR)
    yield first, second, clock
    first.close()
    second.close()


def _secret(svc: Services, value: values.SecretValue) -> str:
    vault = svc.vaults.create_vault(ROOT, ACTOR, "v")
    project = svc.vaults.create_project(ROOT, ACTOR, vault.id, "p")
    return svc.secrets.create(ROOT, ACTOR, project.id, "s", value).id


def test_a_due_rotation_runs_exactly_once_across_nodes_and_missed_runs_once(
    nodes: tuple[Services, Services, FakeClock],
) -> None:
    a, b, clock = nodes
    sid = _secret(a, values.standard("initial"))
    a.rotation.set_policy(
        ROOT, ACTOR, sid, rotation.Schedule(interval_s=3600), rotation.Generator(16, "hex"), None
    )
    assert a.rotation.run_due() == 0  # not due yet

    clock.now += 10 * HOUR_MS  # the server was down for ten intervals
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(s.rotation.run_due())) for s in (a, b, a, b)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 1
    revealed = a.secrets.reveal(ROOT, ACTOR, sid)
    assert revealed.version == 2 and len(revealed.value.plaintext) == 16
    policy, _, _ = a.rotation.get_policy(ROOT, sid)
    assert policy is not None and policy.next_due_ms == clock.now + HOUR_MS
    assert a.rotation.run_due() == 0


def test_structured_rotation_changes_only_the_chosen_fields(
    nodes: tuple[Services, Services, FakeClock],
) -> None:
    a, _, _ = nodes
    sid = _secret(a, values.structured({"host": "db.internal", "password": "old"}))
    a.rotation.set_policy(
        ROOT, ACTOR, sid, rotation.Schedule(interval_s=3600), rotation.Generator(20, "base64"), ["password"]
    )
    a.rotation.rotate_now(ROOT, ACTOR, sid)
    fields = json.loads(a.secrets.reveal(ROOT, ACTOR, sid).value.plaintext)
    assert fields["host"] == "db.internal" and fields["password"] != "old" and len(fields["password"]) == 20


def test_a_failing_scheduled_rotation_is_audited(nodes: tuple[Services, Services, FakeClock]) -> None:
    a, _, clock = nodes
    sid = _secret(a, values.structured({"password": "x"}))
    a.rotation.set_policy(
        ROOT, ACTOR, sid, rotation.Schedule(interval_s=3600), rotation.Generator(), ["password"]
    )
    a.secrets.update(ROOT, ACTOR, sid, values.structured({"renamed": "x"}))  # the field is gone
    clock.now += HOUR_MS
    assert a.rotation.run_due() == 0
    policy, _, _ = a.rotation.get_policy(ROOT, sid)
    assert policy is not None and policy.last_error and "no field" in policy.last_error
    with a.deps.db.read() as conn:
        from sikker.storage import audit as audit_store

        vault = a.vaults.list_vaults(Principal("root", "t", None))[0].id
        actions = [s.entry.action for s in audit_store.list_entries(conn, vault)]
    assert audit.Action.SYSTEM_ROTATION_FAIL.value in actions


# -- the agent protocol, over HTTP -----------------------------------------------------------
@pytest.fixture
def managed(server: Server) -> Iterator[dict[str, object]]:
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "db"})["id"]
    cred = root.ok(
        "POST",
        f"/api/projects/{project}/secrets",
        {"name": "app-db", "fields": {"username": "app", "password": "live-pw", "host": "db"}},
    )["id"]
    admin = root.ok(
        "POST",
        f"/api/projects/{project}/secrets",
        {"name": "admin", "fields": {"username": "postgres", "password": "admin-pw"}},
    )["id"]
    enroll = root.ok(
        "POST",
        f"/api/vaults/{vault}/enrollment-tokens",
        {"projectIds": [project], "secretIds": [cred], "maxUses": 2},
    )["token"]
    agent = Machine.enroll(server, vault, enroll)
    yield {"root": root, "cred": cred, "admin": admin, "agent": agent}


def _sync(agent: Machine, cred: object) -> dict[str, object]:
    r = agent.request("GET", f"/v1/secret/{cred}/sync-config")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _post(agent: Machine, cred: object, what: str, body: dict[str, str]) -> int:
    return agent.request("POST", f"/v1/secret/{cred}/agent/{what}", json.dumps(body).encode()).status_code


def test_live_value_changes_only_when_the_agent_confirms(managed: dict[str, object]) -> None:
    root, cred, agent = managed["root"], managed["cred"], managed["agent"]
    assert isinstance(root, Api) and isinstance(agent, Machine)
    root.ok(
        "PUT",
        f"/api/secrets/{cred}/managed",
        {
            "provider": "postgresql",
            "host": "127.0.0.1",
            "port": 5432,
            "database": "app",
            "adminSecretId": managed["admin"],
            "strategy": "alternating",
            "altUsername": "app_b",
            "graceSeconds": 600,
        },
    )
    idle = _sync(agent, cred)
    assert idle["rotationStatus"] == "idle" and idle["connection"] == {
        "host": "127.0.0.1",
        "port": 5432,
        "database": "app",
        "adminUser": "postgres",
        "adminPass": "admin-pw",
    }
    assert idle["managedUsername"] == "app" and idle["strategy"] == "alternating"

    started = root.ok("POST", f"/api/secrets/{cred}/rotate")
    assert started["status"] == "pending"
    assert root.call("POST", f"/api/secrets/{cred}/rotate")[0] == 409  # one at a time
    pending = _sync(agent, cred)
    new = json.loads(str(pending["pendingValue"]))
    assert new["username"] == "app_b" and new["password"] != "live-pw" and new["host"] == "db"
    live = json.loads(agent.request("GET", f"/v1/secret/{cred}").json()["value"])
    assert live["password"] == "live-pw"  # nothing changes before the confirm

    assert _post(agent, cred, "heartbeat", {"status": "healthy", "error": ""}) == 200
    assert _post(agent, cred, "confirm-rotation", {"rotationId": str(pending["pendingRotationId"])}) == 200
    assert _post(agent, cred, "confirm-rotation", {"rotationId": str(pending["pendingRotationId"])}) == 200
    live = json.loads(agent.request("GET", f"/v1/secret/{cred}").json()["value"])
    assert live == new
    after = _sync(agent, cred)
    assert after["rotationStatus"] == "idle" and after["previousUsername"] == "app"
    assert isinstance(after["disablePreviousAt"], int)
    shown = root.ok("GET", f"/api/secrets/{cred}/rotation")
    assert shown["rotations"][0]["status"] == "current" and shown["managed"]["agentStatus"] == "healthy"


def test_a_rejected_rotation_leaves_the_live_value_and_records_the_error(managed: dict[str, object]) -> None:
    root, cred, agent = managed["root"], managed["cred"], managed["agent"]
    assert isinstance(root, Api) and isinstance(agent, Machine)
    root.ok(
        "PUT",
        f"/api/secrets/{cred}/managed",
        {"provider": "mysql", "host": "127.0.0.1", "port": 3306, "adminSecretId": managed["admin"]},
    )
    root.ok("POST", f"/api/secrets/{cred}/rotate")
    rotation_id = str(_sync(agent, cred)["pendingRotationId"])
    assert (
        _post(agent, cred, "reject-rotation", {"rotationId": rotation_id, "error": "verification failed"})
        == 200
    )
    live = json.loads(agent.request("GET", f"/v1/secret/{cred}").json()["value"])
    assert live["password"] == "live-pw"
    shown = root.ok("GET", f"/api/secrets/{cred}/rotation")
    assert (
        shown["rotations"][0]["status"] == "rejected"
        and "verification failed" in shown["rotations"][0]["error"]
    )
    assert _post(agent, cred, "confirm-rotation", {"rotationId": rotation_id}) == 404


def test_agent_routes_need_a_grant_and_a_managed_secret(managed: dict[str, object]) -> None:
    root, cred, admin, agent = managed["root"], managed["cred"], managed["admin"], managed["agent"]
    assert isinstance(root, Api) and isinstance(agent, Machine)
    assert agent.request("GET", f"/v1/secret/{cred}/sync-config").status_code == 404  # not managed
    assert agent.request("GET", f"/v1/secret/{admin}/sync-config").status_code == 403  # no grant


def _manage(root: Api, cred: object, admin: object, **extra: object) -> tuple[int, dict[str, object]]:
    body = {"provider": "redis", "host": "127.0.0.1", "port": 6379, "adminSecretId": admin} | extra
    status, answer = root.call("PUT", f"/api/secrets/{cred}/managed", body)
    return status, answer


@pytest.mark.parametrize("provider", ["mariadb", "postgresql", "mongodb", "mssql"])
def test_dual_on_an_engine_without_two_passwords_is_refused_when_configured(
    managed: dict[str, object], provider: str
) -> None:
    root = managed["root"]
    assert isinstance(root, Api)
    status, answer = _manage(root, managed["cred"], managed["admin"], provider=provider, strategy="dual")
    assert status == 400 and "alternating" in str(answer["error"]), answer
    assert root.ok("GET", f"/api/secrets/{managed['cred']}/rotation")["managed"] is None
    status, _ = _manage(
        root,
        managed["cred"],
        managed["admin"],
        provider=provider,
        strategy="alternating",
        altUsername="app_b",
    )
    assert status == 200


def test_a_confirmed_dual_rotation_retires_the_old_password_after_the_grace_period(
    managed: dict[str, object],
) -> None:
    root, cred, agent = managed["root"], managed["cred"], managed["agent"]
    assert isinstance(root, Api) and isinstance(agent, Machine)
    status, _ = _manage(root, cred, managed["admin"], strategy="dual", graceSeconds=600)
    assert status == 200
    root.ok("POST", f"/api/secrets/{cred}/rotate")
    pending = _sync(agent, cred)
    assert json.loads(str(pending["pendingValue"]))["username"] == "app"  # dual keeps the user
    before = time.time()
    assert _post(agent, cred, "confirm-rotation", {"rotationId": str(pending["pendingRotationId"])}) == 200
    after = _sync(agent, cred)
    # The same user keeps two passwords until the grace period ends; then the agent drops the old one.
    assert after["previousUsername"] == "app"
    assert isinstance(after["disablePreviousAt"], int)
    assert after["disablePreviousAt"] >= int(before) + 600 - 1  # not before the grace period ends


def test_scheduled_and_manual_rotations_of_a_plain_secret_are_in_its_history(
    nodes: tuple[Services, Services, FakeClock],
) -> None:
    a, _, clock = nodes
    sid = _secret(a, values.standard("initial"))
    a.rotation.set_policy(
        ROOT, ACTOR, sid, rotation.Schedule(interval_s=3600), rotation.Generator(16, "hex"), None
    )
    clock.now += HOUR_MS
    assert a.rotation.run_due() == 1
    clock.now += 1000
    a.rotation.rotate_now(ROOT, ACTOR, sid)

    _, _, history = a.rotation.get_policy(ROOT, sid)
    assert [(r.trigger, r.status, r.version) for r in history] == [
        ("manual", "current", 3),
        ("schedule", "current", 2),
    ]
    assert history[1].updated_ms == clock.now - 1000
    _, _, last = a.rotation.get_policy(ROOT, sid, history=1)
    assert [r.version for r in last] == [3]
