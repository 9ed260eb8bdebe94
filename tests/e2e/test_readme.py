"""The README's tour, run as written against a dev server (only the port differs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import Server, free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_gives_the_two_commands() -> None:
    first = shell_blocks()[0]
    assert "make dev" in first and "make test" in first
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    blocks = shell_blocks()
    tour = next(b for b in blocks if "sikker vault create" in b)
    teammate = next(b for b in blocks if "sikker user create" in b)
    machines = next(b for b in blocks if "sikker machine bootstrap" in b)
    port = free_port()
    server = Server("", tmp_path / "dev", extra=["--dev", "--dev-root-token", "devroot"])
    server.port, server.url = port, f"http://127.0.0.1:{port}"
    server.public_url = f"http://localhost:{port}"
    server.start()
    try:
        script = "set -euo pipefail\n" + (tour + teammate + machines).replace(
            "localhost:8300", f"localhost:{port}"
        )
        env = os.environ | {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": str(tmp_path / "home"),
            "SIKKERKEY_HOME": str(tmp_path / "home" / ".sikkerkey"),
        }
        env.pop("SIKKER_TOKEN", None)
        result = subprocess.run(
            ["bash", "-c", script], cwd=README.parent, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "POSTGRES_PASSWORD=hunter2" in result.stdout  # rolled back to version 1
        assert "POSTGRES_USERNAME=payments" in result.stdout
        assert "sikker_" in result.stdout  # the admin token was printed once
        assert "Signed in as alice" in result.stdout and "developer at proj_" in result.stdout
    finally:
        server.stop()
    assert "dev mode" in server.output() and "Not for production" in server.output()
