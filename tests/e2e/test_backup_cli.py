"""``sikker operator backup`` and ``restore``: the real CLI, a real server, both seal kinds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import Api, Machine, Server, init_and_unseal


def sikker(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIKKER_")}
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args],
        env=base | (env or {}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_backup_and_restore_with_shares_through_the_cli(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'src' / 'a.db'}", tmp_path / "data").start()
    try:
        (tmp_path / "src").chmod(0o700)
        shares, token = init_and_unseal(server.url, 3, 2)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "S", "value": "kept"})["id"]
        env = {"SIKKER_ADDR": server.url, "SIKKER_TOKEN": token}
        out = tmp_path / "nightly.backup"
        made = sikker("operator", "backup", "-o", str(out), "--json", env=env)
        assert made.returncode == 0, made.stderr
        result = json.loads(made.stdout)
        assert result["bytes"] == out.stat().st_size and result["sha256"] == out.read_bytes()[-32:].hex()
        assert out.stat().st_mode & 0o777 == 0o600
        again = sikker("operator", "backup", "-o", str(out), env=env)
        assert again.returncode == 2 and "exists" in again.stderr
        denied = sikker("operator", "backup", "-o", str(tmp_path / "x"), env=env | {"SIKKER_TOKEN": "nope"})
        assert denied.returncode == 3 and not (tmp_path / "x").exists()
    finally:
        server.stop()

    target = tmp_path / "restored"
    wrong = sikker("operator", "restore", str(out), "--data-dir", str(target), stdin="garbage\n")
    assert wrong.returncode == 2 and "share" in wrong.stderr and not target.exists()
    done = sikker(
        "operator", "restore", str(out), "--data-dir", str(target), "--json", stdin="\n".join(shares[1:])
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sourceStore"] == "sqlite"
    refused = sikker("operator", "restore", str(out), "--data-dir", str(target), stdin="\n".join(shares[:2]))
    assert refused.returncode == 5 and "--force" in refused.stderr

    restored = Server("", target).start()
    try:
        for share in shares[:2]:
            Api(restored.url).ok("POST", "/api/sys/unseal", {"share": share})
        assert Api(restored.url, token).ok("GET", f"/api/secrets/{secret}")["value"] == "kept"
        verify = sikker(
            "audit", "verify", "--vault", vault, env={"SIKKER_ADDR": restored.url, "SIKKER_TOKEN": token}
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        restored.stop()


def test_a_key_file_servers_backup_restores_with_its_key_file(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "unseal.key"
    server = Server("", tmp_path / "data", extra=["--seal-key-file", str(key)]).start()
    try:
        init = Api(server.url).ok("POST", "/api/sys/init", {})
        root = Api(server.url, init["rootToken"])
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "S", "value": "k"})["id"]
        enroll = root.ok(
            "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": [secret]}
        )["token"]
        machine = Machine.enroll(server, vault, enroll)
        out = tmp_path / "k.backup"
        env = {"SIKKER_ADDR": server.url, "SIKKER_TOKEN": init["rootToken"]}
        assert sikker("operator", "backup", "-o", str(out), env=env).returncode == 0
    finally:
        server.stop()
    target = tmp_path / "restored"
    missing = sikker("operator", "restore", str(out), "--data-dir", str(target))
    assert missing.returncode == 2 and "--key-file" in missing.stderr
    done = sikker("operator", "restore", str(out), "--data-dir", str(target), "--key-file", str(key))
    assert done.returncode == 0, done.stderr
    restored = Server("", target, extra=["--seal-key-file", str(key)]).start()
    try:
        assert Api(restored.url).ok("GET", "/api/sys/status")["sealed"] is False  # unsealed itself
        again = Machine(restored.url, machine.id, machine.key)
        assert again.request("GET", f"/v1/secret/{secret}").json() == {"value": "k"}
    finally:
        restored.stop()
