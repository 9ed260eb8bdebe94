"""``sikker server`` pauses the garbage collector while it starts (start-up allocates much and
frees little) and always turns it back on: before the first request, and on a failed start."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from sikker.cli.server import server


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    yield
    gc.unfreeze()  # the server froze this test process's objects: let them be collected again
    gc.enable()


def test_the_collector_runs_while_the_server_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def serve(app: object, **_options: object) -> None:  # instead of uvicorn's loop: look, then stop
        seen["enabled"], seen["frozen"] = gc.isenabled(), gc.get_freeze_count()

    monkeypatch.setattr(uvicorn, "run", serve)
    result = CliRunner().invoke(server, ["--dev", "--workers", "1", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert seen["enabled"] is True
    assert seen["frozen"] > 10_000  # start-up's objects, out of the collector's way
    assert gc.isenabled()


def test_a_failed_start_turns_the_collector_back_on(tmp_path: Path) -> None:
    result = CliRunner().invoke(server, ["--dev", "--listen", "no-port-here", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert gc.isenabled()
