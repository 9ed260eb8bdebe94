"""SQLite group commit (storage/database.py ``Database.write``): writers that queue for the one
write lock share a transaction, each in its own savepoint, and none returns before the commit
that stores its change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DatabaseError

from sikker.errors import Conflict, NotFound, StoreUnavailable
from sikker.storage import database
from sikker.storage.database import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    database = Database(f"sqlite:///{data / 'g.db'}")
    with database.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE child (p INTEGER REFERENCES parent(id))")
    return database


def count_commits(db: Database) -> list[int]:
    commits = [0]

    @event.listens_for(db.engine, "commit")
    def _commit(_conn: object) -> None:
        commits[0] += 1

    return commits


def stored(db: Database) -> set[str]:
    with db.read() as conn:
        return {row[0] for row in conn.execute(text("SELECT k FROM t"))}


def wait_until(ok: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not ok():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.001)


class Writer(threading.Thread):
    """Writes ``key`` in one db.write(), after ``gate`` opens; ``error`` raised inside."""

    def __init__(
        self, db: Database, key: str, gate: threading.Event | None = None, error: Exception | None = None
    ):
        super().__init__(daemon=True)
        self.db, self.key, self.gate, self.error = db, key, gate, error
        self.inside = threading.Event()
        self.outcome: object = None

    def run(self) -> None:
        try:
            with self.db.write() as conn:
                conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": self.key})
                self.inside.set()
                if self.gate is not None:
                    assert self.gate.wait(10)
                if self.error is not None:
                    raise self.error
            self.outcome = "ok"
        except Exception as e:
            self.outcome = e


def test_queued_writers_share_one_commit_and_return_only_after_it(db: Database) -> None:
    commits = count_commits(db)
    gate = threading.Event()
    first = Writer(db, "a", gate)
    first.start()
    assert first.inside.wait(10)
    others = [Writer(db, f"b{i}") for i in range(5)]
    for w in others:
        w.start()
    wait_until(lambda: db._queued == 5)
    gate.set()
    for w in [first, *others]:
        w.join(10)
    assert [w.outcome for w in [first, *others]] == ["ok"] * 6
    assert stored(db) == {"a", "b0", "b1", "b2", "b3", "b4"}
    assert commits[0] < 6  # at least two of the six shared a commit


def test_a_writer_is_not_acknowledged_before_the_group_commits(db: Database) -> None:
    hold, gate = threading.Event(), threading.Event()
    holder = Writer(db, "held", hold)
    first = Writer(db, "a")
    late = Writer(db, "b", gate)
    holder.start()
    assert holder.inside.wait(10)
    first.start()
    wait_until(lambda: db._queued == 1)
    late.start()
    wait_until(lambda: db._queued == 2)
    hold.set()  # all three are in one group; "b" stays inside its block until the gate opens
    assert late.inside.wait(10)
    time.sleep(0.2)
    assert (holder.outcome, first.outcome) == (None, None)
    assert stored(db) == set()
    gate.set()
    for w in (holder, first, late):
        w.join(10)
    assert (holder.outcome, first.outcome, late.outcome) == ("ok", "ok", "ok")
    assert stored(db) == {"held", "a", "b"}


def test_an_error_undoes_only_its_own_writer(db: Database) -> None:
    gate = threading.Event()
    writers = [
        Writer(db, "a", gate),
        Writer(db, "b", error=NotFound("no such thing")),
        Writer(db, "c"),
        Writer(db, "a"),  # duplicate key: Conflict, the first "a" stays
    ]
    writers[0].start()
    assert writers[0].inside.wait(10)
    for i, w in enumerate(writers[1:], start=1):
        w.start()
        wait_until(lambda i=i: db._queued == i)
    gate.set()
    for w in writers:
        w.join(10)
    assert writers[0].outcome == "ok" and writers[2].outcome == "ok"
    assert isinstance(writers[1].outcome, NotFound)
    assert isinstance(writers[3].outcome, Conflict)
    assert stored(db) == {"a", "c"}


def test_a_failed_commit_fails_every_writer_of_the_group(db: Database) -> None:
    gate = threading.Event()

    def orphan() -> None:  # a foreign key checked only at COMMIT: the whole commit fails
        with db.write() as conn:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            conn.exec_driver_sql("INSERT INTO child (p) VALUES (42)")
            assert gate.wait(10)

    outcome: list[object] = []

    def run_orphan() -> None:
        try:
            orphan()
            outcome.append("ok")
        except Exception as e:
            outcome.append(e)

    t = threading.Thread(target=run_orphan, daemon=True)
    t.start()
    wait_until(lambda: db._depth == 1)
    good = Writer(db, "a")
    good.start()
    wait_until(lambda: db._queued == 1)
    gate.set()
    t.join(10)
    good.join(10)
    assert isinstance(good.outcome, Conflict) and isinstance(outcome[0], Conflict)
    assert stored(db) == set()
    with db.write() as conn:  # the store goes on working
        conn.execute(text("INSERT INTO t (k) VALUES ('after')"))
    assert stored(db) == {"after"}


def test_a_nested_write_is_a_savepoint_of_the_same_transaction(db: Database) -> None:
    commits = count_commits(db)
    with db.write() as conn:
        conn.execute(text("INSERT INTO t (k) VALUES ('outer')"))
        with pytest.raises(NotFound), db.write() as inner:
            inner.execute(text("INSERT INTO t (k) VALUES ('undone')"))
            raise NotFound("x")
        with db.write() as inner:
            inner.execute(text("INSERT INTO t (k) VALUES ('inner')"))
    assert commits[0] == 1
    assert stored(db) == {"outer", "inner"}


def test_many_concurrent_writers_lose_nothing(db: Database) -> None:
    def write(n: int) -> None:
        for i in range(25):
            with db.write() as conn:
                conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": f"{n}-{i}"})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(stored(db)) == 200


def test_a_store_that_cannot_be_opened_fails_the_writer_and_frees_the_locks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    db = Database(f"sqlite:///{data / 'g.db'}")
    (data / "g.db").write_bytes(b"not a database at all" * 100)
    for _ in range(2):  # the second attempt is not stuck behind the first
        with pytest.raises(DatabaseError, match="not a database"), db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE t (k TEXT)")


def test_writers_return_after_the_wal_is_synced_and_the_next_group_writes_meanwhile(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = database.os.fsync
    syncing, release = threading.Event(), threading.Event()
    synced: list[int] = []

    def slow_fsync(fd: int) -> None:
        if not syncing.is_set():  # the first group's sync waits for the test
            syncing.set()
            assert release.wait(10)
        real_fsync(fd)
        synced.append(fd)

    monkeypatch.setattr(database.os, "fsync", slow_fsync)
    first = Writer(db, "a")
    first.start()
    assert syncing.wait(10)
    assert first.outcome is None  # committed, not yet durable: not acknowledged
    with db.write() as conn:  # the write lock is free while the first group syncs
        conn.execute(text("INSERT INTO t (k) VALUES ('b')"))
    assert first.outcome is None
    release.set()
    first.join(10)
    assert first.outcome == "ok" and len(synced) == 2
    assert stored(db) == {"a", "b"}


def test_a_failed_sync_fails_the_writers(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(database.os, "fsync", broken_fsync)
    with pytest.raises(StoreUnavailable), db.write() as conn:
        conn.execute(text("INSERT INTO t (k) VALUES ('a')"))


def test_the_wal_is_moved_into_the_database_once_it_holds_the_checkpoint_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The WAL stays bounded (the disk does not fill): SQLite checkpoints it once it holds
    WAL_AUTOCHECKPOINT_PAGES pages and then reuses it from the start."""
    with Database(f"sqlite:///{tmp_path / 'default.db'}").engine.connect() as conn:
        setting = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
    assert setting == database.WAL_AUTOCHECKPOINT_PAGES
    monkeypatch.setattr(database, "WAL_AUTOCHECKPOINT_PAGES", 50)
    db = Database(f"sqlite:///{tmp_path / 'small.db'}")
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    for k in range(300):  # about 2 pages a commit: 600 pages without a checkpoint
        with db.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (?, zeroblob(5000))", (k,))
    assert (tmp_path / "small.db-wal").stat().st_size < 60 * (page + 24)  # 50 pages, the last commit
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 300
