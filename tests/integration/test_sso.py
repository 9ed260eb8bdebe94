"""Single sign-on end to end: a real Sikker server, a real OpenID provider (tests/oidc), the
code flow with PKCE over loopback HTTP, just-in-time users and roles from groups."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.oidc_provider import REDIRECT_URI, TestProvider, sign_in
from tests.support import Api, Server, init_and_unseal


@dataclass
class World:
    server: Server
    root: Api
    idp: TestProvider
    prod: str  # the vault the config maps "platform" to (viewer)
    staging: str  # the vault a role binding gives "contractors" (developer)
    prod_secret: str = ""
    staging_secret: str = ""

    def start(self) -> dict[str, str]:
        return dict(
            Api(self.server.url).ok("POST", "/api/auth/oidc/test/start", {"redirectUri": REDIRECT_URI})
        )

    def finish(self, handle: str, query: dict[str, str]) -> tuple[int, dict[str, object]]:
        body = {"handle": handle, "query": query}
        return Api(self.server.url).call("POST", "/api/auth/oidc/test/finish", body)

    def sign_in(self, user: str) -> dict[str, object]:
        started = self.start()
        status, body = self.finish(started["handle"], sign_in(started["url"], user))
        assert status == 201, body
        return body


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("sso")
    idp = TestProvider(base).start()
    env = {"SIKKER_TEST_OIDC_SECRET": idp.client_secret}
    server = Server(module_database_url, base / "data", env=env).start()
    try:
        shares, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        prod = root.ok("POST", "/api/vaults", {"name": "prod"})["id"]
        staging = root.ok("POST", "/api/vaults", {"name": "staging"})["id"]
        root.ok(
            "POST", "/api/role-bindings", {"role": "developer", "vaultId": staging, "group": "contractors"}
        )
        # The provider's settings name the vault, so they are written now and read at restart.
        config = base / "sikker.toml"
        config.write_text(
            f"""
[[oidc_providers]]
name = "test"
issuer = "{idp.issuer}"
client_id = "sikker"
client_secret_env = "SIKKER_TEST_OIDC_SECRET"
scopes = ["openid", "email", "profile", "groups"]
redirect_uri = "{REDIRECT_URI}"

[[oidc_providers.group_roles]]
group = "platform"
role = "viewer"
vault = "{prod}"
"""
        )
        server.extra = ["--config", str(config)]
        server.restart()
        for share in shares[:2]:
            Api(server.url).ok("POST", "/api/sys/unseal", {"share": share})
        world = World(server, root, idp, prod, staging)
        for vault, attr in ((prod, "prod_secret"), (staging, "staging_secret")):
            project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "app"})["id"]
            made = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "DB", "value": f"{attr}-v"})
            setattr(world, attr, made["id"])
        yield world
    finally:
        server.stop()
        idp.stop()


def roles(world: World, signed_in: dict[str, object]) -> set[tuple[str, str]]:
    me = Api(world.server.url, str(signed_in["token"])).ok("GET", "/api/auth/whoami")
    return {(b["role"], b["vaultId"]) for b in me["bindings"]}


def test_the_providers_are_listed(world: World) -> None:
    assert Api(world.server.url).ok("GET", "/api/auth/oidc") == {"providers": ["test"]}


def test_first_sign_in_creates_the_user_with_the_roles_of_their_groups(world: World) -> None:
    world.idp.set_groups("alice", ["platform", "everyone"])
    alice = world.sign_in("alice")
    assert alice["user"]["name"] == "alice"  # type: ignore[index]
    assert roles(world, alice) == {("viewer", world.prod)}
    bob = world.sign_in("bob")  # contractors: the role binding made with 'sikker role bind --group'
    assert roles(world, bob) == {("developer", world.staging)}
    users = {u["name"]: u for u in world.root.ok("GET", "/api/users")["users"]}
    assert users["alice"]["sso"] and users["alice"]["groups"] == ["platform", "everyone"]
    again = world.sign_in("alice")  # the same person, not a second account
    assert again["user"] == alice["user"]


def test_a_person_reads_only_what_the_roles_of_their_groups_allow(world: World) -> None:
    world.idp.set_groups("alice", ["platform"])
    alice = Api(world.server.url, str(world.sign_in("alice")["token"]))
    bob = Api(world.server.url, str(world.sign_in("bob")["token"]))
    assert alice.call("GET", f"/api/secrets/{world.prod_secret}/versions")[0] == 200  # viewer: metadata
    assert alice.call("GET", f"/api/secrets/{world.prod_secret}")[0] == 403  # ... never values
    assert alice.call("GET", f"/api/secrets/{world.staging_secret}")[0] == 404  # another vault
    assert bob.ok("GET", f"/api/secrets/{world.staging_secret}")["value"] == "staging_secret-v"
    assert bob.call("GET", f"/api/secrets/{world.prod_secret}")[0] == 404


def test_leaving_a_group_at_the_provider_removes_the_role_at_the_next_sign_in(world: World) -> None:
    world.idp.set_groups("alice", ["platform"])
    before = world.sign_in("alice")
    assert roles(world, before) == {("viewer", world.prod)}
    world.idp.set_groups("alice", ["everyone"])
    after = world.sign_in("alice")
    assert roles(world, after) == set()
    status, _ = Api(world.server.url, str(after["token"])).call(
        "GET", f"/api/secrets/{world.prod_secret}/versions"
    )
    assert status == 404


def test_a_tampered_handle_or_state_gives_no_session_and_is_audited(world: World) -> None:
    started = world.start()
    query = sign_in(started["url"], "bob")
    raw = bytearray(base64.urlsafe_b64decode(started["handle"]))
    raw[-1] ^= 1
    status, body = world.finish(base64.urlsafe_b64encode(bytes(raw)).decode(), query)
    assert status == 401 and "token" not in body
    started = world.start()
    query = sign_in(started["url"], "bob") | {"state": "forged"}
    status, body = world.finish(started["handle"], query)
    assert status == 401 and "token" not in body
    fails = [
        r
        for r in world.root.ok("GET", "/api/audit/system?limit=200")["records"]
        if r["action"] == "user:auth:fail"
    ]
    assert {"tampered or unknown sign-in handle", "refused: state"} <= {r["reason"] for r in fails}


def test_only_a_loopback_redirect_may_be_chosen_by_the_client(world: World) -> None:
    status, body = Api(world.server.url).call(
        "POST", "/api/auth/oidc/test/start", {"redirectUri": "https://evil.example/cb"}
    )
    assert status == 400 and "loopback" in body["error"]


def test_a_disabled_user_cannot_sign_in_through_the_provider(world: World) -> None:
    world.sign_in("bob")
    world.root.ok("POST", "/api/users/bob/disable")
    try:
        started = world.start()
        status, _ = world.finish(started["handle"], sign_in(started["url"], "bob"))
        assert status == 401
    finally:
        world.root.ok("POST", "/api/users/bob/enable")


def test_the_cli_signs_in_through_the_provider_with_a_loopback_callback(world: World, tmp_path: Path) -> None:
    env = os.environ | {"SIKKER_ADDR": world.server.url, "SIKKER_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("SIKKER_TOKEN", None)
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sikker",
            "login",
            "--oidc",
            "test",
            "--no-browser",
            "--callback-port",
            "8250",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert cli.stderr is not None
        url = ""
        while not url.startswith("http"):
            url = cli.stderr.readline().strip()
            assert url or cli.poll() is None, "the CLI ended before printing the sign-in URL"
        query = sign_in(url, "alice")  # the provider redirects the "browser" to the CLI's callback
        httpx.get(REDIRECT_URI, params=query, timeout=10)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, err
    assert "Signed in as alice" in out
    who = subprocess.run(
        [sys.executable, "-m", "sikker", "whoami", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert who.returncode == 0 and '"alice"' in who.stdout


def test_the_device_flow_signs_a_person_in_without_a_browser_on_this_machine(world: World) -> None:
    api = Api(world.server.url)
    started = api.ok("POST", "/api/auth/oidc/test/device")
    assert started["userCode"] and "handle" in started
    assert api.call("POST", "/api/auth/oidc/test/device/poll", {"handle": started["handle"]})[0] == 202
    sign_in(started["verificationUriComplete"], "bob", stop_at="never")  # approved on "another device"
    status, body = api.call("POST", "/api/auth/oidc/test/device/poll", {"handle": started["handle"]})
    assert status == 201 and body["user"]["name"] == "bob"
    tampered = started["handle"][:-4] + ("AAAA" if not started["handle"].endswith("AAAA") else "BBBB")
    assert api.call("POST", "/api/auth/oidc/test/device/poll", {"handle": tampered})[0] == 401
