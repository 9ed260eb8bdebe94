"""`sikker agent` rotating real database credentials end to end: the live value changes only
after the agent applied and verified; alternating users keep the previous user working
through the grace period; an agent killed at any step leaves a working credential."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import Api, DatabaseTarget, Server, init_and_unseal, target_database


def managed_credential(
    server: Server, db: DatabaseTarget, user: str, password: str, tmp_path: Path, strategy: str, grace: int
) -> tuple[Api, str, dict[str, str]]:
    """A server with a credential of ``db`` managed by an agent machine bootstrapped in tmp_path.
    Returns the root API, the credential's secret id and the environment for `sikker agent`."""
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "db"})["id"]
    fields = {"username": db.admin_user, "password": db.admin_password}
    admin = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "db-admin", "fields": fields})["id"]
    fields = {"username": user, "password": password}
    cred = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "app-db", "fields": fields})["id"]
    managed = {
        "provider": db.provider,
        "host": "127.0.0.1",
        "port": db.port,
        "database": db.database,
        "adminSecretId": admin,
        "strategy": strategy,
        "graceSeconds": grace,
    }
    if strategy == "alternating":
        managed["altUsername"] = f"{user}_b"
    root.ok("PUT", f"/api/secrets/{cred}/managed", managed)
    enroll = root.ok(
        "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": [cred]}
    )["token"]
    env = os.environ | {"SIKKERKEY_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    env.pop("SIKKERKEY_API_URL", None)
    bootstrap = ["machine", "bootstrap", "--url", server.public_url, "--vault", vault, "--token", enroll]
    boot = subprocess.run(
        [sys.executable, "-m", "sikker", *bootstrap], env=env, capture_output=True, text=True, timeout=60
    )
    assert boot.returncode == 0, boot.stderr
    return root, cred, env


def test_alternating_rotation_in_a_live_mariadb(server: Server, tmp_path: Path) -> None:
    with target_database("mariadb") as db:
        user, password = f"sk_e2e_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        db.create(user, password)
        try:
            check_alternating_rounds(server, db, user, password, tmp_path)
        finally:
            db.drop(user, f"{user}_b")


def check_alternating_rounds(
    server: Server, db: DatabaseTarget, user: str, password: str, tmp_path: Path
) -> None:
    root, cred, env = managed_credential(server, db, user, password, tmp_path, "alternating", grace=0)

    def sikker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sikker", *args], env=env, capture_output=True, text=True, timeout=120
        )

    def live() -> dict[str, str]:
        fields: dict[str, str] = root.ok("GET", f"/api/secrets/{cred}")["fields"]
        return fields

    for round_ in range(2):
        before = live()
        root.ok("POST", f"/api/secrets/{cred}/rotate")
        assert live() == before  # nothing changes until the agent confirms
        tick = sikker("agent", "start", "--secret", cred, "--once")
        assert tick.returncode == 0, tick.stdout + tick.stderr
        after = live()
        assert after["username"] != before["username"] and after["password"] != before["password"]
        assert db.login(after["username"], after["password"])
        assert db.login(before["username"], before["password"])  # previous user: grace period
        time.sleep(1.1)
        retire = sikker("agent", "start", "--secret", cred, "--once")  # grace over: lock the previous user
        assert retire.returncode == 0, retire.stdout + retire.stderr
        assert not db.login(before["username"], before["password"])
        assert db.login(after["username"], after["password"])
        assert after["username"] == (f"{user}_b" if round_ == 0 else user)
    shown = root.ok("GET", f"/api/secrets/{cred}/rotation")
    assert [r["status"] for r in shown["rotations"]] == ["current", "current"]
    assert shown["managed"]["agentStatus"] == "healthy"


STEPS = ["before-apply", "after-apply", "after-verify", "after-confirm"]


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
@pytest.mark.parametrize("strategy", ["alternating", "single"])
def test_the_agent_killed_at_any_step_leaves_a_working_credential_and_no_orphan(
    server: Server, tmp_path: Path, strategy: str, engine: str
) -> None:
    with target_database(engine) as db:
        user, password = f"sk_kill_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        db.create(user, password)
        try:
            root, cred, env = managed_credential(server, db, user, password, tmp_path, strategy, grace=3600)
            launcher = str(Path(__file__).resolve().parents[1] / "helpers" / "crashing_agent.py")
            for step in STEPS:
                root.ok("POST", f"/api/secrets/{cred}/rotate")
                agent = ["agent", "start", "--secret", cred, "--once"]
                crashed = subprocess.run(
                    [sys.executable, launcher, step, "--", *agent],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert crashed.returncode == -signal.SIGKILL, (step, crashed.stderr)
                for _ in range(2):  # restart; a second tick settles what the first one confirmed
                    subprocess.run(
                        [sys.executable, "-m", "sikker", *agent],
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                live = root.ok("GET", f"/api/secrets/{cred}")["fields"]
                assert db.login(live["username"], live["password"]), f"stored credential broken after {step}"
                rotation = root.ok("GET", f"/api/secrets/{cred}/rotation")["rotations"][0]
                assert rotation["status"] == "current", (step, rotation)
                assert db.users(user) <= {user, f"{user}_b"}, f"orphaned users after a kill {step}"
        finally:
            db.drop(user, f"{user}_b")
