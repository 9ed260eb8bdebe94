"""What can be checked of packaging/ on a machine without a container engine or a cluster
(docs/operator/deploy.md says what is and is not verified): the systemd units pass
``systemd-analyze verify``, the server works under MemoryDenyWriteExecute's rule (no memory
both writable and executable, set with prctl PR_SET_MDWE as systemd's filter would), the
Dockerfile passes hadolint, and the compose file and Helm chart are well-formed YAML that says
what the docs promise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml

from tests.support import Api, Machine, free_port, fresh_pg_database, init_and_unseal, require_postgres

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
CI = os.environ.get("CI") == "true"
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
# Runs sikker with memory that is writable and executable refused for the process and its
# children, the rule systemd's MemoryDenyWriteExecute=yes enforces (with a seccomp filter).
LAUNCH = f"""
import ctypes, mmap, runpy, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit("PR_SET_MDWE failed: errno %d" % ctypes.get_errno())
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("MDWE is not enforced")
except OSError:
    pass
sys.argv = ["sikker", *sys.argv[1:]]
runpy.run_module("sikker", run_name="__main__")
"""


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if CI:
            pytest.fail(f"{name} is missing")
        pytest.skip(f"{name} is missing")
    return found


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    sikker = Path(sys.executable).parent / "sikker"
    units = []
    for unit in sorted((PACKAGING / "systemd").glob("*.service")):
        # verify checks that ExecStart's program exists: point it at this installation's.
        text = unit.read_text().replace("/opt/sikker/bin/sikker", str(sikker))
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
        for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"):
            assert setting in text, (unit.name, setting)
        assert re.search(r"^CapabilityBoundingSet=$", text, re.M)
        assert "MemoryDenyWriteExecute=yes" in text and "SystemCallFilter=@system-service" in text
        assert re.search(r"^User=sikker", text, re.M) and "StateDirectory=" in text
    assert len(units) == 2
    result = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}"
    else:
        require_postgres()
        with fresh_pg_database() as url:
            yield url


def test_the_server_works_when_memory_cannot_be_writable_and_executable(
    database: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-c", LAUNCH, "server", "--listen", f"127.0.0.1:{port}", "--database", database]
    cmd += ["--data-dir", str(tmp_path / "data"), "--public-url", f"http://localhost:{port}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                httpx.get(f"{url}/api/sys/status", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
        _, token = init_and_unseal(url)
        root = Api(url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "x"})["id"]
        # A person: the password is hashed with Argon2 (argon2-cffi).
        root.ok(
            "POST", "/api/users", {"name": "ann", "email": "a@example.com", "password": "Zq8!vw-Lk3#pRt9u"}
        )
        enroll = root.ok(
            "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": [secret]}
        )["token"]
        machine = Machine.enroll(SimpleNamespace(url=url), vault, enroll)  # type: ignore[arg-type]
        for _ in range(3):  # Ed25519 (PyNaCl, cryptography), the read lane, the group commit
            response = machine.request("GET", f"/v1/secret/{secret}")
            assert response.status_code == 200 and response.json() == {"value": "x"}
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(15)
    assert "Traceback" not in log.read_text()


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint")
    result = subprocess.run([hadolint, str(PACKAGING / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (PACKAGING / "Dockerfile").read_text()
    assert "USER 10001:10001" in text and "HEALTHCHECK" in text and "/api/sys/health/live" in text
    assert re.search(r"^FROM python:3\.11-slim AS build$", text, re.M)


def test_the_compose_file_runs_postgres_and_two_auto_unsealed_nodes() -> None:
    compose = yaml.safe_load((PACKAGING / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "sikker-1", "sikker-2"}
    for name in ("sikker-1", "sikker-2"):
        node = services[name]
        assert node["read_only"] is True and "/tmp" in node["tmpfs"]
        assert node["environment"]["SIKKER_SEAL_KEY_FILE"] == "/run/secrets/unseal_key"
        assert node["environment"]["SIKKER_DATABASE"].startswith("postgresql://")
        assert "unseal_key" in node["secrets"] and node["cap_drop"] == ["ALL"]
        assert node["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert compose["secrets"]["unseal_key"]["file"] == "./secrets/unseal.key"


def test_the_helm_chart_is_well_formed() -> None:
    chart_dir = PACKAGING / "helm" / "sikker"
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "sikker"
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["metrics"]["serviceMonitor"]["enabled"] is False
    deployment = (chart_dir / "templates" / "deployment.yaml").read_text()
    assert "path: /api/sys/health/live" in deployment and "path: /api/sys/health/ready" in deployment
    assert "SIKKER_SEAL_KEY_FILE" in deployment
    for template in (chart_dir / "templates").glob("*.yaml"):
        text = template.read_text()
        assert text.count("{{") == text.count("}}"), template.name
        # Without helm, the template lines that hold no template action must still be YAML.
        plain = "\n".join(line for line in text.splitlines() if "{{" not in line)
        assert isinstance(yaml.safe_load(plain), dict | type(None)), template.name
