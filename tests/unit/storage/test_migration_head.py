"""Alembic is skipped at start-up, so what replaces it is held to the migrations here:
``database.HEAD`` names the newest migration, and ``SQLITE_HEAD`` (what a new SQLite store is
made from) is exactly what the migrations make. After adding a migration, rewrite it with
``PYTHONPATH=src python tests/unit/storage/test_migration_head.py``."""

from __future__ import annotations

import re
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from sikker.errors import StoreUnavailable
from sikker.storage import database
from sikker.storage.database import Database, alembic_config

REWRITE = "PYTHONPATH=src python tests/unit/storage/test_migration_head.py"


def _version(db: Database) -> set[str]:
    with db.read() as conn:
        return {str(v) for v in conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()}


def _dump(path: Path) -> str:
    """Every statement that rebuilds the store (schema and rows), one after another."""
    conn = sqlite3.connect(path)
    try:
        lines = [s for s in conn.iterdump() if s not in ("BEGIN TRANSACTION;", "COMMIT;")]
    finally:
        conn.close()
    return "\n".join(lines) + "\n"


CONSTRAINT = re.compile(r"\t(PRIMARY KEY|UNIQUE|FOREIGN KEY|CHECK|CONSTRAINT) ")


def _same_schema(dump: str) -> list[str]:
    """``dump`` with each table's constraints in sorted order (SQLite's batch migrations rebuild
    a table with its constraints in an order that changes from run to run), and no spaces at the
    ends of lines (SQLAlchemy's DDL has them; the dump file does not)."""
    out = []
    for statement in database.split_statements(dump):
        statement = "\n".join(line.rstrip() for line in statement.split("\n"))
        head, _, rest = statement.partition("(\n")
        if not statement.startswith("CREATE TABLE") or not rest:
            out.append(statement)
            continue
        body, _, tail = rest.rpartition("\n)")
        parts = [line.rstrip().rstrip(",") for line in body.split("\n")]
        columns = [line for line in parts if not CONSTRAINT.match(line)]
        constraints = sorted(line for line in parts if CONSTRAINT.match(line))
        out.append("\n".join([head + "(", *columns, *constraints, ")" + tail]))
    return out


def migrated_by_alembic(directory: Path) -> str:
    """The dump of a new SQLite store that Alembic brought to HEAD."""
    path = directory / "alembic" / "sikker.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.migrate(database.HEAD)  # a named revision: always through Alembic
    finally:
        db.dispose()
    return _dump(path)


def test_head_is_the_newest_migration_script() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [database.HEAD]


def test_the_sqlite_head_dump_is_what_the_migrations_make(tmp_path: Path) -> None:
    expected = _same_schema(migrated_by_alembic(tmp_path))
    assert _same_schema(database.SQLITE_HEAD.read_text()) == expected, f"out of date: {REWRITE}"
    path = tmp_path / "dump" / "sikker.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.migrate()
        assert _version(db) == {database.HEAD}
    finally:
        db.dispose()
    assert _same_schema(_dump(path)) == expected


def test_a_new_store_skips_alembic_and_so_does_a_store_at_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("alembic ran")

    monkeypatch.setattr(command, "upgrade", refuse)
    db = Database(f"sqlite:///{tmp_path / 'data' / 'sikker.db'}")
    try:
        db.migrate()
        db.migrate()
        assert _version(db) == {database.HEAD}
    finally:
        db.dispose()


def test_a_store_behind_head_is_upgraded_by_alembic(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'data' / 'sikker.db'}")
    try:
        db.migrate("0011")
        assert _version(db) == {"0011"}
        db.migrate()
        assert _version(db) == {database.HEAD}
        db.downgrade("0010")
        assert _version(db) == {"0010"}
    finally:
        db.dispose()


def test_a_store_with_tables_but_no_alembic_version_is_left_to_alembic(tmp_path: Path) -> None:
    path = tmp_path / "data" / "sikker.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE seal_config (id INTEGER PRIMARY KEY)")
        with pytest.raises(StoreUnavailable):
            db.migrate()  # Alembic's first migration meets the table, as before: no dump over it
        with db.read() as conn:
            tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
            assert list(tables.scalars()) == ["seal_config"]
    finally:
        db.dispose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        dump = migrated_by_alembic(Path(tmp))
    database.SQLITE_HEAD.write_text("".join(line.rstrip() + "\n" for line in dump.splitlines()))
    sys.stdout.write(f"wrote {database.SQLITE_HEAD}\n")
