"""``sikker server`` start-up as a newcomer meets it: a PostgreSQL store that is missing,
refuses the login or cannot be reached says which; the maintenance database is refused; dev
mode cleans up its temp dir. The real server, in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support import PG_ADMIN_URL, free_port, fresh_pg_database, require_postgres, scram_postgres


def start(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A server that is expected to stop at start-up; its output, with newlines kept."""
    cmd = [sys.executable, "-m", "sikker", "server", "--listen", f"127.0.0.1:{free_port()}"]
    cmd += ["--data-dir", str(tmp_path / "data"), *args]
    env = os.environ | {"COLUMNS": "60"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stdout[-2000:] + result.stderr[-2000:]
    return lines[0]


@pytest.mark.postgres
def test_a_missing_postgres_database_is_named_with_the_createdb_hint(tmp_path: Path) -> None:
    require_postgres()
    name = f"sikker_missing_{uuid.uuid4().hex[:8]}"
    result = start(tmp_path, "--database", f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    assert result.returncode == 7
    line = error_line(result)
    assert f'database "{name}" does not exist' in line and "createdb -h 127.0.0.1 -p 5432" in line
    assert "retry shortly" not in line


@pytest.mark.postgres
def test_an_unknown_postgres_role_is_named(tmp_path: Path) -> None:
    with fresh_pg_database() as url:
        result = start(tmp_path, "--database", url.replace("postgres@", "nosuchrole@", 1))
    assert result.returncode == 7
    line = error_line(result)
    assert 'has no role "nosuchrole"' in line and "CREATE ROLE" in line


@pytest.mark.postgres
def test_a_wrong_postgres_password_says_authentication_failed_and_never_shows_it(tmp_path: Path) -> None:
    with scram_postgres() as (port, admin, password):
        admin_url = f"postgresql://{admin}:{password}@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE sikker")
        wrong = f"wrong-{uuid.uuid4().hex}"
        result = start(tmp_path, "--database", f"postgresql://{admin}:{wrong}@127.0.0.1:{port}/sikker")
    assert result.returncode == 7
    line = error_line(result)
    assert "authentication failed" in line and f'user "{admin}"' in line
    assert wrong not in result.stdout + result.stderr and password not in result.stdout + result.stderr


def test_an_unreachable_postgres_server_is_named(tmp_path: Path) -> None:
    port = free_port()
    result = start(tmp_path, "--database", f"postgresql://sikker:pw-{port}@127.0.0.1:{port}/sikker")
    assert result.returncode == 7
    line = error_line(result)
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}" in line and "Connection refused" in line
    assert f"pw-{port}" not in result.stdout + result.stderr


def test_the_postgres_maintenance_database_is_refused_unless_allowed(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: an allowed start gets past the check and stops
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    refused = start(tmp_path, "--database", url)
    assert refused.returncode == 2
    line = error_line(refused)
    assert "maintenance database" in line and "--allow-maintenance-database" in line and "createdb" in line

    allowed = start(tmp_path, "--database", url, "--allow-maintenance-database")
    assert allowed.returncode == 7 and "cannot connect to PostgreSQL" in error_line(allowed)

    config = tmp_path / "sikker.toml"
    config.write_text("allow_maintenance_database = true\n")
    from_config = start(tmp_path, "--database", url, "--config", str(config))
    assert from_config.returncode == 7 and "cannot connect to PostgreSQL" in error_line(from_config)


def _dev_server(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "sikker", "server", "--dev", "--listen", f"127.0.0.1:{port}", *extra]
    env = os.environ | {"TMPDIR": str(tmp_path)}
    with (tmp_path / f"dev-{port}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / f"dev-{port}.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/sys/health", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("dev server did not start")


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_dev_mode_removes_its_temp_dir_on_exit(tmp_path: Path, stop: signal.Signals, workers: str) -> None:
    proc, _ = _dev_server(tmp_path, "--workers", workers)
    created = list(tmp_path.glob("sikker-dev-*"))
    assert len(created) == 1 and (created[0] / "dev-unseal.key").exists()
    proc.send_signal(stop)
    proc.wait(30)
    assert not list(tmp_path.glob("sikker-dev-*"))


def test_dev_mode_keeps_a_data_dir_it_was_given(tmp_path: Path) -> None:
    data = tmp_path / "kept"
    proc, _ = _dev_server(tmp_path, "--data-dir", str(data))
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    assert (data / "dev-unseal.key").exists() and (data / "sikker.db").exists()
