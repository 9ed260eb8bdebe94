from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server, fresh_pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each backend in turn: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sikker.db'}"
    else:
        with fresh_pg_database() as url:
            yield url


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A fresh, uninitialised server on loopback."""
    srv = Server(database_url, tmp_path / "data").start()
    try:
        yield srv
    finally:
        srv.stop()
