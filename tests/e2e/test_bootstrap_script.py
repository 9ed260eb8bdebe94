"""The shell script at GET /v1/bootstrap/{token}, run by a real /bin/sh against a real server:
it writes a valid identity.json whatever the machine's name or the local paths hold, and the
server refuses at start-up a public URL the script (or a client) could not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import Api, Server, free_port, init_and_unseal

HOSTILE = "we\"ird\\ $HOME `id` 'q'"


def test_the_script_writes_a_valid_identity_for_a_hostile_name_and_the_machine_works(
    server: Server, tmp_path: Path
) -> None:
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "v-1"})["id"]
    enroll = root.ok(
        "POST",
        f"/api/vaults/{vault}/enrollment-tokens",
        {"projectIds": [project], "secretIds": [secret], "namePattern": HOSTILE + "{uuid8}"},
    )["token"]
    home = tmp_path / 'home "x" \\ $y'  # the local path must be escaped too
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIKKER")}
    env |= {"SIKKERKEY_HOME": str(home), "HOME": str(tmp_path)}
    run = subprocess.run(
        ["/bin/sh", "-c", f'curl -fsS "{server.url}/v1/bootstrap/{enroll}" | /bin/sh'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    folder = home / "vaults" / vault
    identity = json.loads((folder / "identity.json").read_text())
    assert set(identity) == {"machineId", "machineName", "vaultId", "apiUrl", "privateKeyPath"}
    assert identity["machineName"].startswith(HOSTILE) and len(identity["machineName"]) == len(HOSTILE) + 8
    assert identity["vaultId"] == vault and identity["apiUrl"] == server.public_url
    assert identity["privateKeyPath"] == str(folder / "private.pem")
    machines = root.ok("GET", f"/api/vaults/{vault}/machines")["machines"]
    assert [m["name"] for m in machines] == [identity["machineName"]]

    got = subprocess.run(
        [sys.executable, "-m", "sikker", "get", secret],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert got.returncode == 0 and got.stdout.strip() == "v-1", got.stderr


@pytest.mark.parametrize(
    "url",
    [
        "http://user@sikker.example:8300",
        "http://sikker.example:8300/?next=x",
        "http://sikker.example:8300/#top",
        "ftp://sikker.example",
        "http://sikker.example:8300/a b",
        "http://sikker.example:8300/'",
        "sikker.example:8300",
    ],
)
def test_an_unusable_public_url_is_refused_at_start_up(tmp_path: Path, url: str) -> None:
    started = subprocess.run(
        [
            *(sys.executable, "-m", "sikker", "server", "--listen", f"127.0.0.1:{free_port()}"),
            *("--data-dir", str(tmp_path), "--public-url", url),
        ],
        capture_output=True,
        text=True,
        timeout=20,  # a server that accepted the URL would run until killed
    )
    assert started.returncode != 0
    assert "public URL" in started.stderr and "Traceback" not in started.stderr, started.stderr


def test_an_ipv6_or_tilde_public_url_gets_a_quoted_script(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 's.db'}", tmp_path / "data")
    server.public_url = f"http://[::1]:{server.port}/~sikker"
    server.start()
    try:
        _, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        enroll = root.ok(
            "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": []}
        )["token"]
        script = root.raw("GET", f"/v1/bootstrap/{enroll}")
        assert script.status_code == 200, script.text
        assert f"API_URL='{server.public_url}'" in script.text
        syntax = subprocess.run(["/bin/sh", "-n"], input=script.text, capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
    finally:
        server.stop()
