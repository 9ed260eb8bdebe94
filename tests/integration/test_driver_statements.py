"""What storage hands to the driver directly, on both stores. ``savepoint``: an error inside
undoes only what was done inside, the transaction goes on (on PostgreSQL too, where an error
aborts the transaction until it is rolled back to the savepoint), and savepoints nest.
``Prepared``: the same rows as the Core statement, and driver errors raised as SQLAlchemy's,
so callers translate them as before (a duplicate is a Conflict, a replayed nonce Replayed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from sikker.errors import Conflict, Replayed
from sikker.storage import machines as machine_store
from sikker.storage.database import Database, Prepared, savepoint
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


_NONCE = Prepared(insert(nonces).values({c.name: bindparam(c.name) for c in nonces.c}))
_OF_MACHINE = Prepared(
    select(nonces.c.nonce, nonces.c.expires_ms).where(nonces.c.machine_id == bindparam("m"))
)
_MISSING = Prepared(select(Table("no_such_table", MetaData(), Column("x", Integer))))


def test_a_prepared_statement_gives_the_core_rows_and_the_core_errors(db: Database) -> None:
    with db.write() as conn:
        assert _NONCE.execute(conn, _nonce("n1")) == 1
        assert _OF_MACHINE.first(conn, {"m": "mch_x"}) == ("n1", NOW)
        assert _OF_MACHINE.first(conn, {"m": "mch_nobody"}) is None
        with pytest.raises(IntegrityError) as duplicate, savepoint(conn):
            _NONCE.execute(conn, _nonce("n1"))
        # As the engine says (hide_parameters): no parameter in the error's text.
        assert str(NOW) not in str(duplicate.value) and "parameters hidden" in str(duplicate.value)
        with pytest.raises(Replayed):  # its callers' translations still apply
            machine_store.record_nonce(conn, "mch_x", "n1", NOW)
    with pytest.raises(Conflict), db.write() as conn:  # and the store's own
        _NONCE.execute(conn, _nonce("n1"))
    missing_table = OperationalError if db.is_sqlite else ProgrammingError
    with db.engine.connect() as conn, pytest.raises(missing_table):
        _MISSING.first(conn, {})
    assert _nonces(db) == ["n1"]
