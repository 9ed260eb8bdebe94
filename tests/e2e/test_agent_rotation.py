"""`sikker agent` rotating a real MariaDB credential end to end, in alternating-users mode:
the live value changes only after the agent applied and verified, the previous user keeps
working through the grace period, then is locked."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from tests.support import IN_CI, Api, Server, init_and_unseal


def mariadb_admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)


def can_login(user: str, password: str) -> bool:
    try:
        pymysql.connect(host="127.0.0.1", port=3306, user=user, password=password, connect_timeout=5).close()
        return True
    except pymysql.err.OperationalError:
        return False


@pytest.fixture
def base_user() -> Iterator[tuple[str, str]]:
    try:
        admin = mariadb_admin()
    except pymysql.err.OperationalError:
        if IN_CI:
            pytest.fail("MariaDB is not reachable at 127.0.0.1:3306 and CI=true: start it")
        pytest.skip("MariaDB is not running")
    user, password = f"sk_e2e_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    with admin.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute(f"GRANT SELECT ON test.* TO `{user}`@'%'")
    try:
        yield user, password
    finally:
        with admin.cursor() as cur:
            for name in (user, f"{user}_b"):
                cur.execute("DROP USER IF EXISTS %s@'%%'", (name,))
        admin.close()


def managed_credential(
    server: Server, base_user: tuple[str, str], tmp_path: Path, strategy: str, grace: int
) -> tuple[Api, str, dict[str, str]]:
    """A server with a MariaDB credential managed by an agent machine bootstrapped in tmp_path.
    Returns the root API, the credential's secret id and the environment for `sikker agent`."""
    user, password = base_user
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "db"})["id"]
    fields = {"username": "root", "password": ""}
    admin = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "mariadb-admin", "fields": fields})[
        "id"
    ]
    fields = {"username": user, "password": password}
    cred = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "app-db", "fields": fields})["id"]
    managed = {
        "provider": "mysql",
        "host": "127.0.0.1",
        "port": 3306,
        "database": "test",
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
    boot = subprocess.run(
        [
            sys.executable,
            "-m",
            "sikker",
            "machine",
            "bootstrap",
            "--url",
            server.public_url,
            "--vault",
            vault,
            "--token",
            enroll,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert boot.returncode == 0, boot.stderr
    return root, cred, env


def test_alternating_rotation_in_a_live_mariadb(
    server: Server, base_user: tuple[str, str], tmp_path: Path
) -> None:
    user, _ = base_user
    root, cred, env = managed_credential(server, base_user, tmp_path, "alternating", grace=0)

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
        assert can_login(after["username"], after["password"])
        assert can_login(before["username"], before["password"])  # previous user: grace period
        time.sleep(1.1)
        retire = sikker("agent", "start", "--secret", cred, "--once")  # grace over: lock the previous user
        assert retire.returncode == 0, retire.stdout + retire.stderr
        assert not can_login(before["username"], before["password"])
        assert can_login(after["username"], after["password"])
        expected = f"{user}_b" if round_ == 0 else user
        assert after["username"] == expected
    shown = root.ok("GET", f"/api/secrets/{cred}/rotation")
    assert [r["status"] for r in shown["rotations"]] == ["current", "current"]
    assert shown["managed"]["agentStatus"] == "healthy"


STEPS = ["before-apply", "after-apply", "after-verify", "after-confirm"]


@pytest.mark.parametrize("strategy", ["alternating", "single"])
def test_the_agent_killed_at_any_step_leaves_a_working_credential_and_no_orphan(
    server: Server, base_user: tuple[str, str], tmp_path: Path, strategy: str
) -> None:
    user, _ = base_user
    root, cred, env = managed_credential(server, base_user, tmp_path, strategy, grace=3600)
    launcher = str(Path(__file__).resolve().parents[1] / "helpers" / "crashing_agent.py")

    for step in STEPS:
        root.ok("POST", f"/api/secrets/{cred}/rotate")
        crashed = subprocess.run(
            [sys.executable, launcher, step, "--", "agent", "start", "--secret", cred, "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert crashed.returncode == -signal.SIGKILL, (step, crashed.stderr)
        for _ in range(2):  # restart; a second tick settles what the first one confirmed
            subprocess.run(
                [sys.executable, "-m", "sikker", "agent", "start", "--secret", cred, "--once"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        live = root.ok("GET", f"/api/secrets/{cred}")["fields"]
        assert can_login(live["username"], live["password"]), f"stored credential broken after a kill {step}"
        rotations = root.ok("GET", f"/api/secrets/{cred}/rotation")["rotations"]
        assert rotations[0]["status"] == "current", (step, rotations[0])
        with mariadb_admin() as conn, conn.cursor() as cur:
            cur.execute("SELECT User FROM mysql.user WHERE User LIKE %s", (f"{user}%",))
            users = {row[0] for row in cur.fetchall()}
        assert users <= {user, f"{user}_b"}, f"orphaned users after a kill {step}: {users}"
