"""What ``sikker server`` imports before it serves: none of the libraries that only some
requests or some stores need (they are imported on first use), so a server starts faster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Imported on first use only: the PostgreSQL driver, Alembic (a store at head or a new SQLite
# store), HTTP clients and JWTs (SSO, JWT logins, webhook streams), cron schedules, the
# console's templates, Pygments, and rich (the CLI's tables; the server prints with click).
NOT_AT_START = ("psycopg", "alembic", "httpx", "jwt", "croniter", "jinja2", "pygments", "rich")


def test_a_dev_server_is_built_without_the_libraries_of_some_requests(tmp_path: Path) -> None:
    # A fresh interpreter: this test session has imported everything already.
    code = f"""
import sys
import click
from sikker.cli.main import cli
cli.get_command(click.Context(cli), "server")
from sikker.api.app import create_app
from sikker.cli.server import prepare
from sikker.config import load
from sikker.service.bootstrap import bootstrap
settings = load({{"dev": True, "data_dir": {str(tmp_path / "data")!r}}}, None)
settings.data_dir.mkdir(mode=0o700)
services = bootstrap(settings)
prepare(services)
create_app(services)
services.close()
print(" ".join(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = set(done.stdout.split())
    loaded = {m.split(".")[0] for m in modules}
    assert "sqlalchemy" in loaded
    assert not set(NOT_AT_START) & loaded
    # Nor SQLAlchemy's PostgreSQL dialect on a SQLite store (a dialect's option on a table
    # imports the dialect).
    assert "sqlalchemy.dialects.sqlite" in modules
    assert "sqlalchemy.dialects.postgresql" not in modules
