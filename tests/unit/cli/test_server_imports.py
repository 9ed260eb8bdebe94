"""What ``sikker server`` imports: start-up is mostly imports, so modules the server does not use
stay out of it (rich, ~30 ms; SQLAlchemy's PostgreSQL dialect on a SQLite store, ~25 ms)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sikker.cli import output

SERVER_PATH = "import sikker.cli.main, sikker.cli.server, sikker.api.app, sikker.api.edge"


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_server_path_imports_neither_rich_nor_the_postgresql_dialect() -> None:
    modules = _imported_after(SERVER_PATH)
    assert "sikker.cli.server" in modules and "sqlalchemy" in modules  # the probe did import
    assert not {m for m in modules if m == "rich" or m.startswith("rich.")}
    assert "sqlalchemy.dialects.postgresql" not in modules


def test_the_consoles_are_made_on_first_use_and_then_kept() -> None:
    assert "rich.console" in _imported_after("from sikker.cli.output import console")
    assert output.console is output.console
    assert output.err_console is not output.console
    assert output.err_console.file is sys.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = output.nothing  # type: ignore[attr-defined]
