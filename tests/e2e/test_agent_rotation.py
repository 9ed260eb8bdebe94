"""`sikker agent` rotating real database credentials end to end: the live value changes only
after the agent applied and verified; alternating users keep the previous user working
through the grace period; an agent killed at any step leaves a working credential."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import IN_CI, Api, DatabaseTarget, Server, init_and_unseal, target_database


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


class RedisTarget:
    """The local Redis; the agent manages an ACL user through the passwordless default user."""

    provider, database, port, admin_user, admin_password = "redis", "0", 6379, "default", ""

    def __init__(self) -> None:
        import redis

        self.admin = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True, socket_connect_timeout=3)
        try:
            self.admin.ping()
        except redis.RedisError:
            if IN_CI:
                pytest.fail("Redis is not reachable at 127.0.0.1:6379 and CI=true: start it")
            pytest.skip("Redis is not running")

    def create(self, user: str, password: str) -> None:
        self.admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~app:*", "+ping", "+get")

    def drop(self, *users: str) -> None:
        for user in users:
            self.admin.acl_deluser(user)

    def login(self, user: str, password: str) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, username=user, password=password)
        try:
            return bool(client.ping())
        except redis.AuthenticationError:
            return False
        finally:
            client.close()


def test_dual_rotation_on_redis_retires_the_old_password_after_the_grace_period(
    server: Server, tmp_path: Path
) -> None:
    db = RedisTarget()
    user, password = f"sk_dual_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    db.create(user, password)
    try:
        root, cred, env = managed_credential(server, db, user, password, tmp_path, "dual", grace=0)  # type: ignore[arg-type]

        def tick() -> None:
            done = subprocess.run(
                [sys.executable, "-m", "sikker", "agent", "start", "--secret", cred, "--once"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr

        for _ in range(2):
            before = root.ok("GET", f"/api/secrets/{cred}")["fields"]
            root.ok("POST", f"/api/secrets/{cred}/rotate")
            tick()  # apply, verify, confirm: both passwords log in during the grace period
            after = root.ok("GET", f"/api/secrets/{cred}")["fields"]
            assert after["username"] == user and after["password"] != before["password"]
            assert db.login(user, after["password"]) and db.login(user, before["password"])
            tick()  # the grace period (0 s) is over: only the new password is left
            assert db.login(user, after["password"])
            assert not db.login(user, before["password"])
            assert not db.login(user, password)
    finally:
        db.drop(user)


def test_agent_test_refuses_dual_on_mariadb(server: Server, tmp_path: Path) -> None:
    with target_database("mariadb") as db:
        user, password = f"sk_dual_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
        db.create(user, password)
        try:
            # "mysql" may be a MySQL 8 with dual passwords: only the agent, which reaches the
            # database, can tell that it is MariaDB.
            _, cred, env = managed_credential(server, db, user, password, tmp_path, "dual", grace=60)
            checked = subprocess.run(
                [sys.executable, "-m", "sikker", "agent", "test", "--secret", cred],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert checked.returncode != 0
            assert "dual password is not supported by MariaDB" in checked.stdout + checked.stderr
            # --json: the report on stdout, the error on stderr, both JSON.
            as_json = subprocess.run(
                [sys.executable, "-m", "sikker", "agent", "test", "--secret", cred, "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            report, error = json.loads(as_json.stdout), json.loads(as_json.stderr)
            assert report["secret"] == cred and report["strategy"] == "dual"
            assert any("dual password is not supported by MariaDB" in p for p in report["problems"])
            assert as_json.returncode == 1
            assert error == {"error": f"1 problem(s) found for {cred}", "code": 1}
        finally:
            db.drop(user)
