"""The official SikkerKey Python SDK (``pip install sikkerkey``) against a real Sikker server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sikkerkey import SikkerKey
from sikkerkey.exceptions import AccessDeniedError, AuthenticationError, SikkerKeyError

from tests.support import Api, Server, init_and_unseal


@pytest.fixture
def setup(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    _, root_token = init_and_unseal(server.url)
    root = Api(server.url, root_token)
    vault = root.ok("POST", "/api/vaults", {"name": "acme"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "web"})["id"]
    plain = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "api-key", "value": "k-1"})["id"]
    structured = root.ok(
        "POST",
        f"/api/projects/{project}/secrets",
        {"name": "db", "fields": {"host": "db.local", "password": "pw-1"}},
    )["id"]
    token = root.ok(
        "POST",
        f"/api/vaults/{vault}/enrollment-tokens",
        {"projectIds": [project], "secretIds": [plain, structured], "maxUses": 10},
    )["token"]
    monkeypatch.setenv("SIKKERKEY_API_URL", server.public_url)
    monkeypatch.setenv("SIKKERKEY_HOME", str(tmp_path / "home"))
    yield {
        "root": root_token,
        "vault": vault,
        "project": project,
        "plain": plain,
        "structured": structured,
        "token": token,
    }


def test_bootstrap_in_memory_reads_everything(setup: dict[str, str]) -> None:
    sk = SikkerKey.bootstrap_in_memory(setup["vault"], setup["token"], name="lambda-1")
    assert sk.vault_id == setup["vault"] and sk.api_url.startswith("http://localhost:")
    assert sk.get_secret(setup["plain"]) == "k-1"
    assert sk.get_fields(setup["structured"]) == {"host": "db.local", "password": "pw-1"}
    assert sk.get_field(setup["structured"], "password") == "pw-1"
    listed = {s.id: s for s in sk.list_secrets()}
    assert set(listed) == {setup["plain"], setup["structured"]}
    assert listed[setup["plain"]].field_names is None
    assert [s.id for s in sk.list_secrets_by_project(setup["project"])] == [s.id for s in sk.list_secrets()]
    assert sk.export() == {"API_KEY": "k-1", "DB_HOST": "db.local", "DB_PASSWORD": "pw-1"}
    assert sk.export(setup["project"]) == sk.export()


def test_sdk_sees_revocation_as_authentication_error_and_no_grant_as_access_denied(
    server: Server, setup: dict[str, str]
) -> None:
    sk = SikkerKey.bootstrap_in_memory(setup["vault"], setup["token"])
    root = Api(server.url, setup["root"])
    root.ok("POST", f"/api/machines/{sk.machine_id}/grants/remove", {"secretIds": [setup["plain"]]})
    with pytest.raises(AccessDeniedError):
        sk.get_secret(setup["plain"])
    root.ok("POST", f"/api/machines/{sk.machine_id}/revoke")
    with pytest.raises(AuthenticationError):
        sk.get_secret(setup["structured"])


def test_watch_reports_changed_deleted_and_access_denied(server: Server, setup: dict[str, str]) -> None:
    root = Api(server.url, setup["root"])
    extra = root.ok("POST", f"/api/projects/{setup['project']}/secrets", {"name": "gone", "value": "g"})["id"]
    sk = SikkerKey.bootstrap_in_memory(setup["vault"], setup["token"])
    root.ok("POST", f"/api/machines/{sk.machine_id}/grants", {"secretIds": [extra]})
    events: dict[str, object] = {}
    done = threading.Event()

    def record(event: object) -> None:
        events[event.secret_id] = event  # type: ignore[attr-defined]
        if len(events) == 3:
            done.set()

    first_poll = threading.Event()
    real_request = sk._request

    def spy(method: str, path: str, body: str | None = None, expect_status: int = 200) -> str:
        result = real_request(method, path, body, expect_status)
        if path == "/v1/secrets/poll":
            first_poll.set()
        return result

    sk._request = spy  # type: ignore[method-assign]
    sk.set_poll_interval(10)
    for secret_id in (setup["plain"], setup["structured"], extra):
        sk.watch(secret_id, record)
    assert first_poll.wait(10), "the SDK did not poll"
    root.ok("PUT", f"/api/secrets/{setup['plain']}", {"value": "k-2"})
    root.ok("DELETE", f"/api/secrets/{extra}")
    root.ok("POST", f"/api/machines/{sk.machine_id}/grants/remove", {"secretIds": [setup["structured"]]})
    assert done.wait(25), f"only saw {list(events)}"
    sk.close()
    changed = events[setup["plain"]]
    assert changed.status.value == "changed" and changed.value == "k-2"  # type: ignore[attr-defined]
    assert events[extra].status.value == "deleted"  # type: ignore[attr-defined]
    assert events[setup["structured"]].status.value == "access_denied"  # type: ignore[attr-defined]


def test_encrypted_fallback_cache_serves_when_the_server_is_down(
    server: Server, setup: dict[str, str]
) -> None:
    sk = SikkerKey.bootstrap_in_memory(setup["vault"], setup["token"]).enable_cache()
    assert sk.get_secret(setup["plain"]) == "k-1"
    server.stop()
    assert sk.get_secret(setup["plain"]) == "k-1"  # after the SDK's retries, from its cache


def _assert_identity_files(home: Path, vault: str) -> dict[str, str]:
    folder = home / "vaults" / vault
    identity = json.loads((folder / "identity.json").read_text())
    assert set(identity) == {"machineId", "machineName", "vaultId", "apiUrl", "privateKeyPath"}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("identity.json", "private.pem"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    return identity


def test_bootstrap_script_enrolls_a_host_with_openssl_and_curl(
    server: Server, setup: dict[str, str], tmp_path: Path
) -> None:
    script = httpx.get(f"{server.url}/v1/bootstrap/{setup['token']}").text
    assert script.startswith("#!/bin/sh")
    home = Path(os.environ["SIKKERKEY_HOME"])
    env = os.environ | {"SIKKERKEY_HOME": str(home)}
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    identity = _assert_identity_files(home, setup["vault"])
    del os.environ["SIKKERKEY_API_URL"]  # a real host uses the apiUrl from its identity
    sk = SikkerKey(setup["vault"])
    assert sk.machine_id == identity["machineId"]
    assert sk.get_secret(setup["plain"]) == "k-1"


def test_bootstrap_script_for_an_invalid_token_is_404(server: Server, setup: dict[str, str]) -> None:
    r = httpx.get(f"{server.url}/v1/bootstrap/nope")
    assert r.status_code == 404 and list(r.json()) == ["error"]


def test_identity_written_by_sikker_machine_bootstrap_is_loaded_by_the_sdk(
    server: Server, setup: dict[str, str]
) -> None:
    home = Path(os.environ["SIKKERKEY_HOME"])
    env = os.environ | {"SIKKERKEY_HOME": str(home)}
    env.pop("SIKKERKEY_API_URL", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sikker",
            "machine",
            "bootstrap",
            "--url",
            server.public_url,
            "--vault",
            setup["vault"],
            "--token",
            setup["token"],
            "--name",
            "web-1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    identity = _assert_identity_files(home, setup["vault"])
    assert identity["machineName"] == "web-1" and identity["apiUrl"] == server.public_url
    del os.environ["SIKKERKEY_API_URL"]
    sk = SikkerKey(setup["vault"])
    assert sk.machine_id == identity["machineId"]
    assert sk.get_field(setup["structured"], "host") == "db.local"


def test_a_canary_tripped_in_one_project_stops_reads_in_every_project_of_the_machine(
    server: Server, setup: dict[str, str]
) -> None:
    """The reported bypass, as a user meets it with the SDK: a machine in projects A and B
    reads a canary in B; B freezes; its reads of A's real secret must stay refused (423),
    not be served again once the read lane has a fresh plan."""
    root = Api(server.url, setup["root"])
    other = root.ok("POST", f"/api/vaults/{setup['vault']}/projects", {"name": "billing"})["id"]
    canary = root.ok(
        "POST", f"/api/projects/{other}/canaries", {"name": "STRIPE_BACKUP", "looksLike": "api-token"}
    )["id"]
    token = root.ok(
        "POST",
        f"/api/vaults/{setup['vault']}/enrollment-tokens",
        {"projectIds": [setup["project"], other], "secretIds": [setup["plain"], canary]},
    )["token"]
    sk = SikkerKey.bootstrap_in_memory(setup["vault"], token)
    assert sk.get_secret(setup["plain"]) == "k-1"  # the read lane now holds a plan for it
    sk.get_secret(canary)  # the decoy is served; project B freezes
    outcomes = []
    for _ in range(5):
        try:
            outcomes.append(sk.get_secret(setup["plain"]))
        except SikkerKeyError as e:
            outcomes.append(type(e).__name__)
    assert "k-1" not in outcomes, outcomes
