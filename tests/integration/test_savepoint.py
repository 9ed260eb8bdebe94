"""``savepoint`` on both stores: an error inside undoes only what was done inside, the
transaction goes on (on PostgreSQL too, where an error aborts the transaction until it is
rolled back to the savepoint), and savepoints nest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from sikker.storage.database import Database, savepoint
from sikker.storage.tables import nonces

NOW = 1_700_000_000_000


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def _nonce(value: str) -> dict[str, object]:
    return {"machine_id": "mch_x", "nonce": value, "expires_ms": NOW}


def _nonces(db: Database) -> list[str]:
    with db.read() as conn:
        return sorted(conn.execute(select(nonces.c.nonce)).scalars())


def test_an_error_inside_undoes_only_the_savepoint_and_the_transaction_commits(db: Database) -> None:
    with db.write() as conn:
        conn.execute(insert(nonces).values(_nonce("outer")))
        with pytest.raises(IntegrityError), savepoint(conn):
            conn.execute(insert(nonces).values(_nonce("inner")))
            conn.execute(insert(nonces).values(_nonce("outer")))  # duplicate: the error
        with savepoint(conn), savepoint(conn):  # nested, both released
            conn.execute(insert(nonces).values(_nonce("after")))
    assert _nonces(db) == ["after", "outer"]


def test_an_error_in_a_nested_savepoint_keeps_the_enclosing_one(db: Database) -> None:
    with db.write() as conn, savepoint(conn):
        conn.execute(insert(nonces).values(_nonce("a")))
        with pytest.raises(ValueError), savepoint(conn):
            conn.execute(insert(nonces).values(_nonce("b")))
            raise ValueError("not a database error: still undone")
    assert _nonces(db) == ["a"]
