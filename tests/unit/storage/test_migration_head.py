"""``database.HEAD`` names the newest migration, and a store already there skips Alembic."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from sikker.storage import database
from sikker.storage.database import Database, alembic_config


def _version(db: Database) -> set[str]:
    with db.read() as conn:
        return {str(v) for v in conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()}


def test_head_is_the_newest_migration_script() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [database.HEAD]


def test_a_new_store_migrates_and_a_store_at_head_skips_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'data' / 'sikker.db'}")
    try:
        db.migrate()
        assert _version(db) == {database.HEAD}

        def refuse(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("alembic ran on a store at head")

        monkeypatch.setattr(command, "upgrade", refuse)
        db.migrate()
        assert _version(db) == {database.HEAD}
    finally:
        db.dispose()


def test_a_store_behind_head_is_upgraded(tmp_path: Path) -> None:
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
