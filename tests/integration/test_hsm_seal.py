"""Auto-unseal through PKCS#11 against SoftHSM2 (docs/operator/seal-and-keys.md "HSM")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import IN_CI, Api, Server

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "4711-sikker"

KEYGEN = """
import sys, pkcs11
lib = pkcs11.lib(sys.argv[1])
with lib.get_token(token_label=sys.argv[2]).open(user_pin=sys.argv[3], rw=True) as session:
    session.generate_key(pkcs11.KeyType.AES, 256, label=sys.argv[4], store=True)
"""


@dataclass
class Hsm:
    conf: Path
    token: str = "sikker"
    key: str = "sikker-root"

    def env(self, pin: str = PIN) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf), "SIKKER_HSM_PIN": pin}

    def flags(self, key: str | None = None) -> list[str]:
        return ["--hsm-module", str(MODULE), "--hsm-token", self.token, "--hsm-key", key or self.key]


@pytest.fixture
def hsm(tmp_path: Path) -> Iterator[Hsm]:
    """A SoftHSM2 token (its own config and token directory) holding one AES-256 key."""
    if shutil.which("softhsm2-util") is None or not MODULE.exists():
        if IN_CI:
            pytest.fail("softhsm2 is not installed and CI=true (.ci/run installs it)")
        pytest.skip("softhsm2 is not installed")
    tokens = tmp_path / "hsm-tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    found = Hsm(conf)
    env = os.environ | {"SOFTHSM2_CONF": str(conf)}
    init = [
        "softhsm2-util",
        "--init-token",
        "--free",
        "--label",
        found.token,
        "--pin",
        PIN,
        "--so-pin",
        "so-1234",
    ]
    subprocess.run(init, env=env, check=True, capture_output=True)
    # In a subprocess: python-pkcs11 loads a module once per process, with its configuration.
    subprocess.run(
        [sys.executable, "-c", KEYGEN, str(MODULE), found.token, PIN, found.key], env=env, check=True
    )
    yield found


def start(tmp_path: Path, hsm: Hsm, pin: str = PIN, key: str | None = None) -> Server:
    return Server("", tmp_path / "data", extra=hsm.flags(key), env=hsm.env(pin)).start()


def test_hsm_seal_unseals_itself_and_refuses_clearly_and_recovery_shares_still_work(
    tmp_path: Path, hsm: Hsm
) -> None:
    server = start(tmp_path, hsm)
    try:
        init = Api(server.url).ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
        assert len(init["shares"]) == 3 and hsm.key in init["sealKeyFile"]
        state = Api(server.url).ok("GET", "/api/sys/status")
        assert (state["sealed"], state["kind"], state["threshold"]) == (False, "pkcs11", 2)
        root = Api(server.url, init["rootToken"])
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "S", "value": "in-hsm"})["id"]

        server.restart()  # unseals itself through the HSM
        assert Api(server.url).ok("GET", "/api/sys/status")["sealed"] is False
        assert root.ok("GET", f"/api/secrets/{secret}")["value"] == "in-hsm"
    finally:
        server.stop()

    for pin, key, expected in [
        ("0000", None, "refused the PIN"),
        (PIN, "no-such-key", "no AES key labelled"),
    ]:
        server = start(tmp_path, hsm, pin=pin, key=key)
        try:
            state = Api(server.url).ok("GET", "/api/sys/status")
            assert state["sealed"] is True and expected in state["error"], state
            assert "auto-unseal failed" in server.output() and expected in server.output()
            status, body = Api(server.url, init["rootToken"]).call("GET", "/api/vaults")
            assert status == 503 and expected in body["error"]
            assert Api(server.url).call("GET", "/api/sys/health/ready") == (503, {"error": "sealed"})
        finally:
            server.stop()

    # The HSM is gone altogether: the recovery shares unseal.
    shutil.rmtree(hsm.conf.parent / "hsm-tokens")
    server = start(tmp_path, hsm)
    try:
        assert Api(server.url).ok("GET", "/api/sys/status")["sealed"] is True
        for share in init["shares"][1:]:
            state = Api(server.url).ok("POST", "/api/sys/unseal", {"share": share})
        assert state["sealed"] is False and state["error"] == ""
        assert Api(server.url, init["rootToken"]).ok("GET", f"/api/secrets/{secret}")["value"] == "in-hsm"
    finally:
        server.stop()


def test_an_hsm_that_disappears_while_running_is_reported_and_the_server_keeps_serving(
    tmp_path: Path, hsm: Hsm
) -> None:
    """The token's directory is moved away under a running server (SoftHSM then fails every new
    session with CKR_GENERAL_ERROR): secrets are still served from the in-memory root key,
    /api/sys/health and /metrics report the provider down, readiness stays 200."""
    server = start(tmp_path, hsm)
    try:
        init = Api(server.url).ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
        root = Api(server.url, init["rootToken"])
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "S", "value": "kept"})["id"]
        health = Api(server.url).ok("GET", "/api/sys/health")
        assert health["sealProvider"] == {"kind": "pkcs11", "ok": True, "error": ""}
        assert 'sikker_seal_provider_up{kind="pkcs11"} 1.0' in Api(server.url).raw("GET", "/metrics").text

        (token_dir,) = (hsm.conf.parent / "hsm-tokens").iterdir()
        token_dir.rename(hsm.conf.parent / "gone")
        deadline = time.monotonic() + 60  # a health call re-checks once its last result is 5 s old
        while (provider := Api(server.url).ok("GET", "/api/sys/health")["sealProvider"])["ok"]:
            assert time.monotonic() < deadline, "the HSM's disappearance was never reported"
            time.sleep(0.5)
        assert provider["kind"] == "pkcs11" and provider["error"].startswith("HSM: "), provider
        assert PIN not in json.dumps(provider)
        assert 'sikker_seal_provider_up{kind="pkcs11"} 0.0' in Api(server.url).raw("GET", "/metrics").text
        assert root.ok("GET", f"/api/secrets/{secret}")["value"] == "kept"
        assert Api(server.url).call("GET", "/api/sys/health/ready")[0] == 200
        assert server.output().count("seal provider pkcs11 unusable") == 1
    finally:
        server.stop()


def sikker(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIKKER_")}
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args],
        env=base | env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_seal_from_shares_to_the_hsm_and_back(tmp_path: Path, hsm: Hsm) -> None:
    server = Server("", tmp_path / "data").start()
    try:
        init = Api(server.url).ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
        for share in init["shares"][:2]:
            Api(server.url).ok("POST", "/api/sys/unseal", {"share": share})
        root = Api(server.url, init["rootToken"])
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "S", "value": "moved"})["id"]
    finally:
        server.stop()
    data = ["--data-dir", str(tmp_path / "data")]

    wrong = sikker(
        "operator", "migrate-seal", "--to", "pkcs11", *data, *hsm.flags(), env=hsm.env(), stdin="x\ny\n"
    )
    assert wrong.returncode == 2, wrong.stderr
    to_hsm = sikker(
        "operator", "migrate-seal", "--to", "pkcs11", *data, *hsm.flags(), "--json",
        env=hsm.env(), stdin="\n".join(init["shares"][1:]),
    )  # fmt: skip
    assert to_hsm.returncode == 0, to_hsm.stderr
    recovery = json.loads(to_hsm.stdout)
    assert (recovery["from"], recovery["to"], len(recovery["shares"])) == ("shamir", "pkcs11", 5)

    server = start(tmp_path, hsm)
    try:
        assert Api(server.url).ok("GET", "/api/sys/status")["sealed"] is False  # through the HSM
        assert Api(server.url, init["rootToken"]).ok("GET", f"/api/secrets/{secret}")["value"] == "moved"
    finally:
        server.stop()

    counts = ["--shares", "3", "--threshold", "2"]
    back = sikker(
        "operator", "migrate-seal", "--to", "shamir", *data, *hsm.flags(), *counts, "--json", env=hsm.env()
    )
    assert back.returncode == 0, back.stderr
    fresh = json.loads(back.stdout)["shares"]

    server = Server("", tmp_path / "data").start()
    try:
        api = Api(server.url)
        assert api.ok("GET", "/api/sys/status")["kind"] == "shamir"
        api.ok("POST", "/api/sys/unseal", {"share": init["shares"][0]})
        old = api.call("POST", "/api/sys/unseal", {"share": init["shares"][1]})
        assert old[0] == 400 and "do not reconstruct" in old[1]["error"]  # the old shares are void
        for share in fresh[:2]:
            state = api.ok("POST", "/api/sys/unseal", {"share": share})
        assert state["sealed"] is False
        root = Api(server.url, init["rootToken"])
        assert root.ok("GET", f"/api/secrets/{secret}")["value"] == "moved"
        actions = [r["action"] for r in root.ok("GET", "/api/audit/system")["records"]]
        assert actions.count("operator:seal:migrate") == 2
    finally:
        server.stop()


# Holds a POSIX write lock on every file of a SoftHSM token until its stdin closes: SoftHSM
# then waits for the lock inside C_OpenSession / C_FindObjects, a real hung HSM call.
LOCKER = """
import fcntl, os, sys
from pathlib import Path
held = [os.open(f, os.O_RDWR) for f in Path(sys.argv[1]).iterdir()]
for fd in held:
    fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""

HUNG = """
import json, subprocess, sys, time
from pathlib import Path
from sikker.crypto.pkcs11_seal import Pkcs11Seal
from sikker.errors import Unavailable
module, token, key, pin, token_dir, locker = sys.argv[1:]
seal = Pkcs11Seal(Path(module), token, key, lambda: pin, timeout_s=1.0)

def attempt():
    start = time.monotonic()
    try:
        seal.check()
        outcome = "ok"
    except Unavailable as e:
        outcome = e.message
    return [outcome, time.monotonic() - start]

def lock():
    argv = [sys.executable, "-c", locker, token_dir]
    held = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    held.stdout.readline()
    return held

seen = {"before": attempt()}
held = lock()
seen["hung"] = attempt()
seen["while hung"] = attempt()
held.stdin.close()
held.wait()
deadline = time.monotonic() + 10
while "still not returned" in attempt()[0] and time.monotonic() < deadline:
    time.sleep(0.1)
seen["after"] = attempt()
held = lock()
seen["left hanging"] = attempt()  # this call never returns before the process exits
print(json.dumps(seen), flush=True)
"""


def test_an_hsm_that_hangs_costs_one_timeout_then_refuses_at_once_until_it_answers(
    tmp_path: Path, hsm: Hsm
) -> None:
    """A use of the HSM gets ``timeout_s`` to answer; while that call hangs every further use
    is refused at once; once it returns the HSM is used again; and a call still hanging does
    not keep the process from exiting (in a subprocess: python-pkcs11 loads one module per
    process, with the configuration it finds then)."""
    (token_dir,) = (hsm.conf.parent / "hsm-tokens").iterdir()
    argv = [sys.executable, "-c", HUNG, str(MODULE), hsm.token, hsm.key, PIN, str(token_dir), LOCKER]
    started = time.monotonic()
    done = subprocess.run(argv, env=os.environ | hsm.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["before"][0] == "ok"
    outcome, waited = seen["hung"]
    assert "did not answer within 1 s" in outcome and waited >= 1.0
    outcome, waited = seen["while hung"]
    assert "has still not returned" in outcome and waited < 0.5
    assert seen["after"][0] == "ok"
    assert "did not answer within 1 s" in seen["left hanging"][0]
    assert time.monotonic() - started < 30  # exited with the last call still hanging
