"""Names wherever ids are taken: ``--vault acme``, ``--project acme/payments``, a secret as
``acme/payments/DB``; run as a user runs it against a real server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support import Server, init_and_unseal


@dataclass
class World:
    server: Server
    root: str
    acme: str
    payments: str
    solo: str
    beta_payments: str
    db: str


def run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SIKKER_ADDR": world.server.url, "SIKKER_TOKEN": world.root, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args], env=env, capture_output=True, text=True, timeout=60
    )


def ok(world: World, *args: str) -> str:
    result = run(world, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("cli-names")
    server = Server(f"sqlite:///{base / 'sikker.db'}", base / "data").start()
    try:
        _, root = init_and_unseal(server.url)
        w = World(server, root, "", "", "", "", "")
        w.acme = ok(w, "vault", "create", "acme")
        beta = ok(w, "vault", "create", "beta")
        w.payments = ok(w, "project", "create", "--vault", "acme", "payments")  # a vault by name
        w.solo = ok(w, "project", "create", "--vault", w.acme, "solo")
        w.beta_payments = ok(w, "project", "create", "--vault", beta, "payments")
        w.db = ok(w, "secret", "create", "--project", "acme/payments", "DB", "--value", "one")
        yield w
    finally:
        server.stop()


def test_a_vault_is_taken_by_name(world: World) -> None:
    projects = json.loads(ok(world, "project", "list", "--vault", "acme", "--json"))
    assert {p["id"] for p in projects} == {world.payments, world.solo}
    assert world.payments in ok(world, "project", "list", "--vault", "acme")
    assert ok(world, "machine", "list", "--vault", "acme", "--json") == "[]"
    assert ok(world, "canary", "list", "--vault", "acme", "--json") == "[]"
    token = json.loads(ok(world, "token", "create", "--vault", "acme", "--json"))
    assert any(
        t["id"] == token["id"] and t["vaultId"] == world.acme
        for t in json.loads(ok(world, "token", "list", "--json"))
    )


def test_a_project_is_taken_by_path_or_by_a_name_that_only_one_vault_has(world: World) -> None:
    listed = json.loads(ok(world, "secret", "list", "--project", "acme/payments", "--json"))
    assert [s["id"] for s in listed] == [world.db]
    assert ok(world, "secret", "list", "--project", "solo", "--json") == "[]"
    assert ok(world, "secret", "list", "--project", "beta/payments", "--json") == "[]"
    # Within --vault, a bare project name is looked up in that vault only.
    created = ok(
        world,
        "enroll-token",
        "create",
        "--vault",
        "acme",
        "--project",
        "payments",
        "--secret",
        "DB",
        "--json",
    )
    assert "token" in json.loads(created)
    spare = ok(world, "project", "create", "--vault", "acme", "spare")
    assert ok(world, "project", "delete", "acme/spare", "--json") != ""
    assert spare not in ok(world, "project", "list", "--vault", "acme")


def test_a_secret_is_taken_by_path(world: World) -> None:
    assert ok(world, "secret", "get", "acme/payments/DB") == "one"
    ok(world, "secret", "update", "acme/payments/DB", "--value", "two")
    assert ok(world, "secret", "get", world.db) == "two"
    assert [
        v["version"] for v in json.loads(ok(world, "secret", "versions", "acme/payments/DB", "--json"))
    ] == [2, 1]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("project", "list", "--vault", "nope"), 4, "no vault named 'nope'"),
        (("secret", "list", "--project", "payments"), 2, "acme/payments"),  # two vaults have one
        (("secret", "list", "--project", "acme/nope"), 4, "no project named 'nope' in vault acme"),
        (("secret", "get", "acme/payments/NOPE"), 4, "no secret named 'NOPE'"),
        (("secret", "get", "DB"), 2, "PROJECT/NAME"),
        (("secret", "get", "payments/DB"), 2, "beta/payments"),
        (("secret", "get", "sk_bad"), 2, "malformed secret id"),  # ids go to the server untouched
        (("project", "list", "--vault", "vault_0123456789abcdef"), 4, "not found"),
    ],
)
def test_unknown_or_ambiguous_names_are_clear_errors(
    world: World, args: tuple[str, ...], code: int, message: str
) -> None:
    result = run(world, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr, result.stderr


def test_ambiguous_project_names_list_the_candidates(world: World) -> None:
    result = run(world, "secret", "list", "--project", "payments", "--json")
    error = json.loads(result.stderr)["error"]
    assert "acme/payments" in error and "beta/payments" in error


def test_rotation_and_stream_commands_take_names_too(world: World) -> None:
    """The last commands that took ids only: secret paths and vault names work there too."""
    shown = run(world, "secret", "rotation", "show", "acme/payments/DB", "--json")
    assert shown.returncode == 0 and '"rotations"' in shown.stdout, shown.stderr
    assert run(world, "secret", "rotation", "show", "acme/payments/NOPE").returncode == 4
    streams = run(world, "audit", "stream", "list", "--vault", "acme", "--json")
    assert streams.returncode == 0, streams.stderr
    listed = run(world, "audit", "list", "--vault", world.acme, "--secret", "acme/payments/DB", "--json")
    assert listed.returncode == 0 and world.db in listed.stdout, listed.stderr
