from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Server, fresh_pg_database

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _store(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'sikker.db'}"
    else:
        with fresh_pg_database() as url:
            yield url


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each backend in turn: a SQLite file, then a fresh PostgreSQL database."""
    yield from _store(request.param, tmp_path)


@pytest.fixture(scope="module", params=STORES)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The same, shared by one test module (for module-scoped servers)."""
    yield from _store(request.param, tmp_path_factory.mktemp("store"))


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A fresh, uninitialised server on loopback."""
    srv = Server(database_url, tmp_path / "data").start()
    try:
        yield srv
    finally:
        srv.stop()
