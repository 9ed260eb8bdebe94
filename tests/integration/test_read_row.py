"""``Database.read_row``: the one-statement lookup outside a transaction that every admin request
makes for its token. It sees what is committed, and a store that is down is ``StoreUnavailable``
(503), never a driver error (500); a connection that failed never goes back to the pool."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from sikker.core.model import Token
from sikker.errors import StoreUnavailable
from sikker.storage import tokens as token_store
from sikker.storage.database import Database
from tests.support import PG_ADMIN_URL, fresh_pg_database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    store = Database(database_url)
    store.migrate()
    yield store
    store.engine.dispose()


def _insert(db: Database, token_id: str, token_hash: bytes) -> None:
    with db.write() as conn:
        token_store.insert_token(conn, Token(token_id, "root", None, "root", 1, None, None), token_hash)


def test_it_sees_each_commit_at_once_and_nothing_uncommitted(db: Database) -> None:
    assert token_store.look_up_by_hash(db, b"h" * 32) is None
    _insert(db, "tok_a", b"h" * 32)
    found = token_store.look_up_by_hash(db, b"h" * 32)
    assert found is not None and found.id == "tok_a" and found.revoked_ms is None
    with db.write() as conn:
        token_store.revoke(conn, "tok_a", 5)
    revoked = token_store.look_up_by_hash(db, b"h" * 32)
    assert revoked is not None and revoked.revoked_ms == 5
    with db.write() as conn:
        token_store.insert_token(conn, Token("tok_c", "root", None, "root", 1, None, None), b"c" * 32)
        assert token_store.look_up_by_hash(db, b"c" * 32) is None  # not committed yet
    assert token_store.look_up_by_hash(db, b"c" * 32) is not None


@pytest.mark.postgres
def test_postgres_refusing_connections_is_store_unavailable_and_a_broken_connection_is_dropped() -> None:
    with fresh_pg_database() as url:
        db = Database(url)
        db.migrate()
        _insert(db, "tok_b", b"k" * 32)
        name = url.rsplit("/", 1)[1]
        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                )
            # Pooled connections are dead and new ones refused: each call fails cleanly.
            for _ in range(3):
                with pytest.raises(StoreUnavailable):
                    token_store.look_up_by_hash(db, b"k" * 32)
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        found = token_store.look_up_by_hash(db, b"k" * 32)  # back at once, on a new connection
        assert found is not None and found.id == "tok_b"
        db.engine.dispose()


def test_the_connection_it_used_still_writes_all_or_nothing(db: Database) -> None:
    """On PostgreSQL the lookup runs in autocommit (one round trip); the pooled connection goes
    back to transactions, or a later write on it would apply statement by statement."""
    _insert(db, "tok_a", b"h" * 32)
    for _ in range(2):
        assert token_store.look_up_by_hash(db, b"h" * 32) is not None
        with pytest.raises(RuntimeError), db.write() as conn:
            token_store.insert_token(conn, Token("tok_x", "root", None, "root", 1, None, None), b"x" * 32)
            raise RuntimeError("the writer fails after its insert")
        assert token_store.look_up_by_hash(db, b"x" * 32) is None
    assert db.engine.pool.checkedout() == 0
