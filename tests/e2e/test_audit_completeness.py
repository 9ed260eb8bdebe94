"""Completeness: a scripted mix of every action; each appears exactly once with the right
fields, and a marker placed in every secret value appears in no audit record, log line or
error body."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sikker.core.audit import Action
from tests.support import Api, Machine, Server

MARKER = "MARKER-c0mpl3te-4a2f"
# Actions the script below does not produce, each covered by its own test.
NOT_SCRIPTED = {
    Action.SYSTEM_SECRET_PURGE,  # needs 30 days: tests/integration/test_services.py
    Action.MACHINE_AUTH_LOCKOUT,  # needs a low threshold: tests/integration/test_machine_plane.py
    Action.OPERATOR_UNSEAL_RESET,  # needs shares in progress: tests/integration/test_seal_lifecycle.py
    # Rotation and the agent protocol: tests/integration/test_rotation.py
    Action.ADMIN_ROTATION_SET,
    Action.ADMIN_ROTATION_DISABLE,
    Action.ADMIN_MANAGED_SET,
    Action.ADMIN_SECRET_ROTATE,
    Action.SYSTEM_SECRET_ROTATE,
    Action.SYSTEM_ROTATION_START,
    Action.SYSTEM_ROTATION_FAIL,
    Action.MACHINE_AGENT_SYNC,
    Action.MACHINE_AGENT_HEARTBEAT,
    Action.MACHINE_ROTATION_CONFIRM,
    Action.MACHINE_ROTATION_REJECT,
    # Canaries: tests/e2e/test_canary.py
    Action.CANARY_TRIP,
    Action.ADMIN_CANARY_ENABLE,
    Action.ADMIN_CANARY_DISABLE,
    Action.ADMIN_PROJECT_UNFREEZE,
    # People and single sign-on: tests/integration/test_people.py, test_sso.py
    Action.ADMIN_USER_CREATE,
    Action.ADMIN_USER_DISABLE,
    Action.ADMIN_USER_ENABLE,
    Action.ADMIN_USER_DELETE,
    Action.ADMIN_ROLE_BIND,
    Action.ADMIN_ROLE_UNBIND,
    Action.ADMIN_VAULT_MFA,
    Action.USER_LOGIN,
    Action.USER_LOGIN_FAIL,
    Action.USER_LOGOUT,
    Action.USER_MFA_ENROL,
    Action.USER_MFA_CONFIRM,
    Action.USER_MFA_RECOVERY,
    Action.USER_TOKEN_CREATE,
    # Dynamic secrets and leases: tests/integration/test_dynamic_secrets.py
    Action.ADMIN_DYNAMIC_CREATE,
    Action.ADMIN_DYNAMIC_UPDATE,
    Action.ADMIN_DYNAMIC_DELETE,
    Action.ADMIN_DYNAMIC_ORPHANS,
    Action.MACHINE_LEASE_CREATE,
    Action.MACHINE_LEASE_RENEW,
    Action.MACHINE_LEASE_REVOKE,
    Action.ADMIN_LEASE_RENEW,
    Action.ADMIN_LEASE_REVOKE,
    Action.ADMIN_LEASE_FORGET,
    Action.SYSTEM_LEASE_EXPIRE,
    Action.SYSTEM_LEASE_REVOKE,
    Action.SYSTEM_LEASE_FAIL,
    Action.SYSTEM_LEASE_STALLED,
}


def test_every_action_is_recorded_once_and_no_value_leaks(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "data").start()
    bodies: list[str] = []

    def keep(response: httpx.Response) -> httpx.Response:
        bodies.append(response.text)
        return response

    try:
        anon = Api(server.url)
        init = keep(anon.raw("POST", "/api/sys/init", json={"shares": 1, "threshold": 1})).json()
        keep(anon.raw("POST", "/api/sys/unseal", json={"share": init["shares"][0]}))
        root = Api(server.url, init["rootToken"])

        def call(method: str, path: str, body: object = None) -> dict:  # type: ignore[type-arg]
            response = keep(root.raw(method, path, json=body))
            assert response.status_code in (200, 201), response.text
            return response.json()  # type: ignore[no-any-return]

        vault = call("POST", "/api/vaults", {"name": "v"})["id"]
        project = call("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        spare = call("POST", f"/api/vaults/{vault}/projects", {"name": "spare"})["id"]
        secret = call("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": f"{MARKER}-1"})["id"]
        call("PUT", f"/api/secrets/{secret}", {"value": f"{MARKER}-2"})
        call("GET", f"/api/secrets/{secret}")
        call("POST", f"/api/secrets/{secret}/rollback", {"version": 1})
        call("DELETE", f"/api/secrets/{secret}")
        call("POST", f"/api/secrets/{secret}/restore")
        call("DELETE", f"/api/projects/{spare}")
        admin = call("POST", "/api/tokens", {"vaultId": vault})
        call("DELETE", f"/api/tokens/{admin['id']}")
        keep(Api(server.url, "sikker_wrong").raw("GET", "/api/vaults"))  # admin:auth:fail
        call("POST", "/api/sys/rotate-keys", {"projectId": project})
        enroll = call(
            "POST",
            f"/api/vaults/{vault}/enrollment-tokens",
            {"projectIds": [], "secretIds": [], "maxUses": 1, "approval": "manual"},
        )
        machine = Machine.enroll(server, vault, enroll["token"], kind="standard")
        call("DELETE", f"/api/enrollment-tokens/{enroll['id']}")
        call("POST", f"/api/machines/{machine.id}/approve")
        call("POST", f"/api/machines/{machine.id}/rename", {"name": "renamed"})
        call("POST", f"/api/machines/{machine.id}/projects", {"projectId": project})
        call("POST", f"/api/machines/{machine.id}/grants", {"secretIds": [secret]})
        keep(machine.request("GET", f"/v1/secret/{secret}"))
        keep(machine.request("GET", "/v1/secrets"))
        keep(machine.request("POST", "/v1/secrets/export"))
        keep(machine.request("POST", "/v1/secrets/poll", json.dumps({"watch": [secret]}).encode()))
        keep(machine.request("GET", "/v1/cli/projects"))
        keep(machine.request("GET", f"/v1/secret/{secret}", key=Ed25519PrivateKey.generate()))  # auth fail
        call("POST", f"/api/machines/{machine.id}/grants/remove", {"secretIds": [secret]})
        call("DELETE", f"/api/machines/{machine.id}/projects/{project}")
        call("POST", f"/api/machines/{machine.id}/disable")
        call("POST", f"/api/machines/{machine.id}/enable")
        call("POST", f"/api/machines/{machine.id}/revoke")
        stream = call(
            "POST",
            "/api/audit-streams",
            {"vaultId": vault, "kind": "jsonl", "path": "stream.jsonl"},  # in DATA_DIR/audit-streams
        )
        call("DELETE", f"/api/audit-streams/{stream['id']}")
        call("POST", "/api/sys/seal")

        keep(anon.raw("POST", "/api/sys/unseal", json={"share": init["shares"][0]}))
        records = []
        for chain in (vault, "system"):
            export = keep(root.raw("GET", f"/api/audit/{chain}/export"))
            records += [
                json.loads(line) for line in export.text.splitlines() if json.loads(line)["type"] == "record"
            ]
    finally:
        server.stop()

    counts = Counter(r["action"] for r in records)
    expected = {a.value for a in Action} - {a.value for a in NOT_SCRIPTED}
    assert set(counts) == expected, (expected - set(counts), set(counts) - expected)
    # Repeats on purpose: a second project (to delete) and a second unseal (to export).
    repeats = {a: n for a, n in counts.items() if n != 1}
    assert repeats == {"operator:seal:unseal": 2, "admin:project:create": 2}, repeats

    by_action = {r["action"]: r for r in records}
    read = by_action["machine:secret:read"]
    assert (read["actor_kind"], read["actor_id"], read["source_ip"]) == ("machine", machine.id, "127.0.0.1")
    assert read["target"]["secret"] == secret and read["result"] == "ok" and read["severity"] == "info"
    fail = by_action["machine:auth:fail"]
    assert (
        fail["result"] == "denied" and fail["reason"] == "invalid signature" and fail["severity"] == "medium"
    )
    assert by_action["admin:secret:update"]["actor_kind"] == "root"
    assert by_action["admin:machine:revoke"]["severity"] == "high"
    assert all(r["time_ms"] > 1_700_000_000_000 for r in records)

    assert MARKER not in json.dumps(records)
    assert MARKER not in server.output()
    errors = [b for b in bodies if b.startswith('{"error"')]
    assert errors, "the script should have produced some refusals"
    assert not [b for b in errors if MARKER in b]
