"""Dynamic PostgreSQL secrets end to end: the real ``sikker`` CLI against a real server minting
users in the local PostgreSQL, ``sikker run --dynamic``, the lease commands and the official
SikkerKey SDK reading a dynamic secret unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sikkerkey import SikkerKey

from sikker.cli import identity
from sikker.cli.machine_client import MachineClient
from tests.support import PG_ADMIN_URL, Server, fresh_pg_database, init_and_unseal

pytestmark = pytest.mark.postgres


@dataclass
class World:
    server: Server
    root: str
    home: Path
    vault: str
    project: str
    dynamic: str
    database: str
    group: str
    machine: str
    enroll: str


def run(world: World, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "SIKKER_ADDR": world.server.url,
        "SIKKER_TOKEN": world.root,
        "COLUMNS": "200",
        "SIKKERKEY_HOME": str(world.home),
        "SIKKERKEY_API_URL": world.server.public_url,
        "HOME": str(world.home.parent),
    }
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(world: World, *args: str, stdin: str | None = None) -> str:
    result = run(world, *args, stdin=stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def members(group: str) -> set[str]:
    """The users in the group role: every user Sikker minted for this test's dynamic secret."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT r.rolname FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid "
            "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s",
            (group,),
        ).fetchall()
    return {str(r[0]) for r in rows}


def role_exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def eventually_gone(name: str, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not role_exists(name):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("dynamic-cli")
    group = f"sikker_e2e_{uuid.uuid4().hex[:10]}"
    with fresh_pg_database() as database_url:
        database = database_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{group}" NOLOGIN')
            conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{group}"')
        # The database is local: the operator opens loopback (refused by default).
        env = {"SIKKER_DYNAMIC_ALLOWED_NETWORKS": "127.0.0.0/8"}
        server = Server(f"sqlite:///{base / 'sikker.db'}", base / "data", env=env).start()
        try:
            _, root = init_and_unseal(server.url)
            w = World(server, root, base / "home" / ".sikkerkey", "", "", "", database, group, "", "")
            w.vault = ok(w, "vault", "create", "acme").strip()
            w.project = ok(w, "project", "create", "--vault", w.vault, "payments").strip()
            # The admin the server mints with: the local superuser (trust authentication).
            ok(
                w, "secret", "create", "--project", w.project, "PG_ADMIN",
                "--field", "username=postgres", "--field-file", "password=-", stdin="unused",
            )  # fmt: skip
            w.dynamic = ok(
                w, "dynamic", "create", "--project", "acme/payments", "pg-ro", "--engine", "postgresql",
                "--host", "127.0.0.1", "--port", "5432", "--database", database,
                "--admin-secret", "PG_ADMIN", "--grant-role", group,
                "--default-ttl", "1h", "--max-ttl", "2h",
            ).strip()  # fmt: skip
            w.enroll = json.loads(
                ok(
                    w, "enroll-token", "create", "--vault", w.vault, "--project", w.project,
                    "--secret", w.dynamic, "--max-uses", "10", "--json",
                )
            )["token"]  # fmt: skip
            bootstrap = ["machine", "bootstrap", "--url", server.public_url, "--vault", w.vault, "--json"]
            w.machine = json.loads(ok(w, *bootstrap, "--token", w.enroll))["machineId"]
            yield w
        finally:
            server.stop()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                for user in members(group):
                    conn.execute(f'DROP ROLE IF EXISTS "{user}"')
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{group}"')


def lease_raw(world: World, dynamic: str | None = None) -> dict[str, object]:
    """A lease taken as the machine, as an SDK would (signed POST /v1/dynamic/{id}/leases)."""
    ident, key = identity.load(world.home / "vaults" / world.vault / "identity.json")
    client = MachineClient(ident, key)
    try:
        return dict(client.request("POST", f"/v1/dynamic/{dynamic or world.dynamic}/leases", b"{}"))
    finally:
        client.close()


# -- definitions ----------------------------------------------------------------------------
def test_dynamic_list_and_show_by_name(world: World) -> None:
    listed = json.loads(ok(world, "dynamic", "list", "--project", "acme/payments", "--json"))
    assert [d["id"] for d in listed] == [world.dynamic]
    shown = json.loads(ok(world, "dynamic", "show", "acme/payments/pg-ro", "--json"))
    assert shown["engine"] == "postgresql" and shown["grantRole"] == world.group
    assert shown["defaultTtl"] == 3600 and shown["maxTtl"] == 7200
    assert "pg-ro" in ok(world, "dynamic", "show", world.dynamic)
    ok(world, "dynamic", "update", world.dynamic, "--default-ttl", "30m")
    assert json.loads(ok(world, "dynamic", "show", world.dynamic, "--json"))["defaultTtl"] == 1800


def test_a_default_ttl_beyond_the_max_is_refused(world: World) -> None:
    result = run(world, "dynamic", "update", world.dynamic, "--default-ttl", "3h", "--max-ttl", "2h")
    assert result.returncode == 2 and "--max-ttl" in result.stderr


@pytest.mark.parametrize(
    "bad",
    [
        ["--default-ttl", "0s"],
        ["--username-template", "x'; DROP ROLE postgres; --{{random}}"],
        ["--username-template", "%s{{random}}\\"],
        ["--grant-role", 'app"; DROP TABLE x; --'],
        ["--creation-statements", "-"],
    ],
)
def test_hostile_input_is_refused_and_creates_nothing(world: World, bad: list[str]) -> None:
    args = {
        "--engine": "postgresql", "--host": "127.0.0.1", "--port": "5432", "--database": world.database,
        "--admin-secret": "PG_ADMIN", "--grant-role": world.group, "--default-ttl": "5m", "--max-ttl": "1h",
    }  # fmt: skip
    args[bad[0]] = bad[1]
    statements = "CREATE ROLE {{name}} LOGIN; DROP ROLE postgres\n"
    flat = [part for pair in args.items() for part in pair]
    result = run(world, "dynamic", "create", "--project", world.project, "hostile", *flat, stdin=statements)
    assert result.returncode == 2, result.stdout + result.stderr
    listed = json.loads(ok(world, "dynamic", "list", "--project", world.project, "--json"))
    assert "hostile" not in {d["name"] for d in listed}


# -- sikker run --dynamic ----------------------------------------------------------------------
CONNECT = """
import os, psycopg
user = os.environ["PG_RO_USERNAME"]
with psycopg.connect(host="127.0.0.1", dbname=os.environ["DB"], user=user,
                     password=os.environ["PG_RO_PASSWORD"]) as conn:
    print(conn.execute("SELECT current_user").fetchone()[0])
print("lease", os.environ["PG_RO_LEASE_ID"])
"""


def test_run_with_dynamic_connects_as_the_leased_user_then_revokes(world: World) -> None:
    before = members(world.group)
    env = os.environ | {
        "DB": world.database,
        "SIKKERKEY_HOME": str(world.home),
        "SIKKERKEY_API_URL": world.server.public_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "sikker", "run", "--dynamic", "pg-ro", "--", sys.executable, "-c", CONNECT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    user, lease_line = result.stdout.splitlines()[:2]
    assert user not in before and user.strip()
    lease_id = lease_line.split()[1]
    assert eventually_gone(user), f"{user} still in pg_roles after the command exited"
    shown = json.loads(ok(world, "lease", "show", lease_id, "--json"))
    assert shown["state"] == "revoked" and shown["username"] == user
    assert "password" not in json.dumps(shown).lower()


def test_run_revokes_when_the_command_is_killed_by_sigterm(world: World) -> None:
    script = "import os, sys, time; print(os.environ['PG_RO_USERNAME'], flush=True); time.sleep(60)"
    command = ["run", "--dynamic", world.dynamic, "--", sys.executable, "-c", script]
    env = os.environ | {"SIKKERKEY_HOME": str(world.home), "SIKKERKEY_API_URL": world.server.public_url}
    with subprocess.Popen(
        [sys.executable, "-m", "sikker", *command], env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        user = proc.stdout.readline().strip()
        assert user and role_exists(user)
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 128 + 15
    assert eventually_gone(user), f"{user} outlived its sikker run"


# -- lease commands --------------------------------------------------------------------------
def test_lease_list_show_renew_and_revoke_never_print_a_password(world: World) -> None:
    leased = lease_raw(world)
    lease_id, user, password = str(leased["leaseId"]), str(leased["username"]), str(leased["password"])
    assert role_exists(user)
    listed = ok(world, "lease", "list", "--dynamic", world.dynamic, "--state", "active")
    assert lease_id in listed and user in listed
    as_json = json.loads(ok(world, "lease", "list", "--machine", world.machine, "--json"))
    assert lease_id in {x["id"] for x in as_json}
    by_project = json.loads(ok(world, "lease", "list", "--project", "acme/payments", "--json"))
    assert lease_id in {x["id"] for x in by_project}
    renewed = json.loads(ok(world, "lease", "renew", lease_id, "--ttl", "20m", "--json"))
    assert renewed["expiresAt"] <= json.loads(ok(world, "lease", "show", lease_id, "--json"))["maxExpiresAt"]
    shown = ok(world, "lease", "show", lease_id)
    for output in (listed, shown, json.dumps(as_json), json.dumps(renewed)):
        assert password not in output
    ok(world, "lease", "revoke", lease_id, "--reason", "e2e test", "--sync")
    assert not role_exists(user)
    shown_json = json.loads(ok(world, "lease", "show", lease_id, "--json"))
    assert shown_json["state"] == "revoked" and shown_json["revokeReason"] == "e2e test"
    # A revoked lease is not renewed.
    assert run(world, "lease", "renew", lease_id).returncode in (4, 5)


def test_revoke_every_lease_of_a_machine(world: World) -> None:
    users = {str(lease_raw(world)["username"]) for _ in range(2)}
    assert all(role_exists(u) for u in users)
    out = json.loads(ok(world, "lease", "revoke", "--machine", world.machine, "--sync", "--json"))
    assert out["revoked"] >= 2
    assert not any(role_exists(u) for u in users)
    assert not json.loads(
        ok(world, "lease", "list", "--machine", world.machine, "--state", "active", "--json")
    )


def test_a_forgotten_lease_leaves_an_orphan_that_the_sweeper_lists_then_drops(world: World) -> None:
    leased = lease_raw(world)
    lease_id, user = str(leased["leaseId"]), str(leased["username"])
    refused = run(world, "lease", "forget", lease_id, "--reason", "x", stdin="n\n")
    assert refused.returncode != 0 and role_exists(user)
    ok(world, "lease", "forget", lease_id, "--reason", "database restored from an old backup", "--yes")
    assert json.loads(ok(world, "lease", "show", lease_id, "--json"))["state"] == "forgotten"
    assert role_exists(user)  # forgetting drops nothing
    dry = json.loads(ok(world, "dynamic", "orphans", world.dynamic, "--json"))
    assert user in dry["orphans"] and role_exists(user)
    assert user in ok(world, "dynamic", "orphans", world.dynamic)
    dropped = json.loads(ok(world, "dynamic", "orphans", world.dynamic, "--drop", "--json"))
    assert user in dropped["dropped"] and not role_exists(user)


def test_delete_is_refused_while_leases_are_live_unless_revoking_them(world: World) -> None:
    other = ok(
        world, "dynamic", "create", "--project", world.project, "pg-tmp", "--engine", "postgresql",
        "--host", "127.0.0.1", "--port", "5432", "--database", world.database,
        "--admin-secret", "PG_ADMIN", "--grant-role", world.group, "--default-ttl", "5m", "--max-ttl", "1h",
    ).strip()  # fmt: skip
    ok(world, "grant", "add", "--machine", world.machine, "--secret", other)
    leased = lease_raw(world, other)
    refused = run(world, "dynamic", "delete", other)
    assert refused.returncode == 5, refused.stderr
    ok(world, "dynamic", "delete", other, "--revoke-leases")
    assert eventually_gone(str(leased["username"]))


# -- the official SDK -------------------------------------------------------------------------
def test_the_official_sdk_reads_a_dynamic_secret_as_a_structured_value(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIKKERKEY_API_URL", world.server.public_url)
    monkeypatch.setenv("SIKKERKEY_HOME", str(tmp_path / "sdk-home"))
    sk = SikkerKey.bootstrap_in_memory(world.vault, world.enroll, name="sdk")
    ok(world, "grant", "add", "--machine", sk.machine_id, "--secret", world.dynamic)
    fields = sk.get_fields(world.dynamic)
    assert set(fields) == {"username", "password", "leaseId", "expiresAt"}
    with psycopg.connect(
        host="127.0.0.1", dbname=world.database, user=fields["username"], password=fields["password"]
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (fields["username"],)
    again = sk.get_fields(world.dynamic)
    assert again["leaseId"] == fields["leaseId"]  # the live lease is reused before 2/3 of its TTL
    ok(world, "lease", "revoke", "--machine", sk.machine_id, "--sync")
    assert not role_exists(str(fields["username"]))
