"""``sikker secret rotation``: limits named by their CLI flags, and the rotation history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import Api, Server, init_and_unseal


def sikker(server: Server, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SIKKER_ADDR": server.url, "SIKKER_TOKEN": token, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    tmp = tmp_path_factory.mktemp("rotation")
    server = Server(f"sqlite:///{tmp / 'a.db'}", tmp / "data").start()
    try:
        _, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "x"})["id"]
        yield server, token, secret
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--interval", "1m", "between 5 minutes and 1 year"),
        ("--interval", "400d", "between 5 minutes and 1 year"),
        ("--cron", "* * * * *", "at least 5 minutes apart"),
        ("--cron", "*/2 * * * *", "at least 5 minutes apart"),
    ],
)
def test_rotation_limits_are_refused_naming_the_flag(
    world: tuple[Server, str, str], flag: str, value: str, says: str
) -> None:
    server, token, secret = world
    result = sikker(server, token, "secret", "rotation", "set", secret, flag, value)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"{flag} {value}" in message and says in message
    assert "intervalSeconds" not in message and "field '" not in message


def test_a_cron_five_minutes_apart_is_accepted(world: tuple[Server, str, str]) -> None:
    server, token, secret = world
    result = sikker(server, token, "secret", "rotation", "set", secret, "--cron", "*/5 * * * *")
    assert result.returncode == 0, result.stderr
    assert sikker(server, token, "secret", "rotation", "disable", secret).returncode == 0


def test_rotation_show_lists_recent_rotations_with_time_trigger_status_and_version(
    world: tuple[Server, str, str],
) -> None:
    server, token, secret = world
    for _ in range(3):
        assert sikker(server, token, "secret", "rotate", secret).returncode == 0
    shown = json.loads(sikker(server, token, "secret", "rotation", "show", secret, "--json").stdout)
    versions = [(r["trigger"], r["status"], r["version"]) for r in shown["rotations"]]
    assert versions[:3] == [("manual", "current", v) for v in (4, 3, 2)]

    text = sikker(server, token, "secret", "rotation", "show", secret, "--history", "2")
    assert text.returncode == 0, text.stderr
    rows = [line for line in text.stdout.splitlines() if "manual" in line]
    assert len(rows) == 2 and " 4 " in f" {rows[0]} " and "UTC" in rows[0]
