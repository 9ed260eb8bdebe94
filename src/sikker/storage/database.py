"""Database access: engine setup, transactions and error translation.

- SQLite (default): WAL journal, foreign keys on, write transactions that start with
  ``BEGIN IMMEDIATE`` so that writers queue instead of failing on a lock upgrade, group
  commit, and the WAL synced (``fsync``) after each commit, outside the write lock, before any
  writer of it returns (``Database.write``).
- PostgreSQL: psycopg 3; a connection idle for ``PING_AFTER_IDLE_SECONDS`` is pinged when
  checked out, so the first request after a PostgreSQL restart gets a fresh connection
  (``_ping_idle_connections``).

Driver errors that mean "the store is not reachable" become
``StoreUnavailable`` (HTTP 503) here, and nowhere else. At start-up (``migrate``) a PostgreSQL
connection failure says which one it is: the database or role missing, the login refused, the
host unreachable (``connect_failure``; never with the password). Services never see SQLAlchemy: they use
the ``Connection`` handed to them, ``savepoint`` and the domain errors storage raises.

The SQLite file is created 0600 (SQLite gives its WAL and SHM files the same mode), in a
directory that other users cannot enter: a data directory open to others is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ClauseElement,
    Column,
    Connection,
    Engine,
    RootTransaction,
    Table,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.pool import NullPool

from sikker import metrics
from sikker.errors import Conflict, InvalidInput, StoreUnavailable

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.sql.compiler import SQLCompiler

__all__ = [
    "Connection",
    "Database",
    "Prepared",
    "insert_rows",
    "insert_sql",
    "mark",
    "model_columns",
    "savepoint",
]

_log = logging.getLogger("sikker.store")
_MIGRATIONS = Path(__file__).with_name("migrations")
# The newest migration's revision (tests/unit/storage/test_migration_head.py holds it to the
# scripts). A store already there starts without importing Alembic.
HEAD = "0013"
# A new SQLite store is made from this dump of one that Alembic brought to HEAD (its schema and
# the rows the migrations insert; the same test holds it to the migrations and rewrites it):
# no Alembic import, and none of the table copies of SQLite's batch migrations.
SQLITE_HEAD = _MIGRATIONS / "sqlite_head.sql"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``sqlite:///path`` URLs; pick psycopg 3 for PostgreSQL."""
    try:
        parsed = make_url(url)
    except Exception as e:
        raise InvalidInput(f"malformed database URL: {e}") from e
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput("database URL must be sqlite:///PATH or postgresql://...")
    return parsed.render_as_string(hide_password=False)


# PostgreSQL's own databases: the one every client connects to first, and the templates.
MAINTENANCE_DATABASES = frozenset({"postgres", "template0", "template1"})


def refuse_maintenance_database(url: str) -> None:
    """Refuse a PostgreSQL URL naming ``postgres`` (or a template): Sikker would create its tables
    among the ones every tool and admin uses. ``--allow-maintenance-database`` skips this check."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "postgresql" or (parsed.database or "") not in MAINTENANCE_DATABASES:
        return
    host, port, user = parsed.host or "localhost", parsed.port or 5432, parsed.username or "sikker"
    raise InvalidInput(
        f'the database URL names PostgreSQL\'s maintenance database "{parsed.database}": Sikker would '
        f"create its tables there. Create a database of its own (createdb -h {host} -p {port} -O {user} "
        "sikker) and point --database at it, or pass --allow-maintenance-database "
        "(allow_maintenance_database = true) to use this one anyway"
    )


def connect_failure(url: str, error: BaseException) -> str:
    """What a failed PostgreSQL connection means for the operator, from the driver's message:
    database missing, role missing, login refused, server unreachable. Never the password."""
    parsed = make_url(url)
    host, port = parsed.host or "localhost", parsed.port or 5432
    user, database = parsed.username or "(default user)", parsed.database or "(default database)"
    where = f"{host}:{port}"
    text = str(getattr(error, "orig", None) or error)
    if parsed.password:
        text = text.replace(str(parsed.password), "***")
    if re.search(r'database ".*" does not exist', text):
        return (
            f'the PostgreSQL database "{database}" does not exist on {where}: create it '
            f"(createdb -h {host} -p {port} -O {user} {database}, or CREATE DATABASE {database} "
            f"OWNER {user}) and start again"
        )
    if re.search(r'role ".*" does not exist', text):
        return (
            f'PostgreSQL at {where} has no role "{user}": create it (CREATE ROLE {user} LOGIN '
            "PASSWORD '...') or fix the user in --database, and start again"
        )
    if "authentication failed" in text or "no password supplied" in text:
        return (
            f'PostgreSQL at {where} refused the login of user "{user}": authentication failed; '
            "check the user and password in --database (or SIKKER_DATABASE)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((r for r in _UNREACHABLE if r.lower() in text.lower()), None)
    detail = reason or (lines[0] if lines else type(error).__name__)
    return (
        f"cannot connect to PostgreSQL at {where} ({detail}): check the host and port in --database "
        "and that PostgreSQL is running and accepts TCP connections"
    )


_UNREACHABLE = (
    "Connection refused",
    "Name or service not known",
    "failed to resolve host",
    "timeout expired",
    "No route to host",
    "Network is unreachable",
)


# SQLite allows 32,766 parameters per statement, PostgreSQL 65,535.
MAX_PARAMETERS = 30_000


class Prepared:
    """A fixed Core statement of a hot path, compiled once per dialect and run on the driver's
    cursor. Executing a Core statement costs several times more than the driver call itself, even
    from SQLAlchemy's compiled cache: the cache key is rebuilt and each parameter and result
    column processed on every call (~35-80 us a statement here, against ~3 us for the driver).
    So: named ``bindparam``s only, given as a dict; rows come back as the driver's tuples, in the
    statement's column order, so only for columns whose driver values are what the caller
    wants (str, int, bytes, None; not Boolean, which SQLite returns as 0 or 1). Driver errors
    are raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``, ...), as from
    ``Connection.execute``."""

    __slots__ = ("_sql", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._sql: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    def first(self, conn: Connection, params: dict[str, Any]) -> tuple[Any, ...] | None:
        cursor = self._run(conn, params)
        try:
            row: tuple[Any, ...] | None = cursor.fetchone()
        finally:
            cursor.close()
        return row

    def execute(self, conn: Connection, params: dict[str, Any]) -> int:
        """Run a statement that returns no rows; the driver's row count."""
        cursor = self._run(conn, params)
        count: int = cursor.rowcount
        cursor.close()
        return count

    def _run(self, conn: Connection, params: dict[str, Any]) -> Any:
        return self.run_driver(conn.connection, conn.engine, params)

    def run_driver(self, dbapi_conn: Any, engine: Engine, params: dict[str, Any]) -> Any:
        """Run on a driver connection of ``engine``; the cursor (close it)."""
        dialect = engine.dialect
        sql = self._sql.get(dialect.name)
        if sql is None:
            compiled = cast("SQLCompiler", self.statement.compile(dialect=dialect))
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            sql = self._sql[dialect.name] = (compiled.string, order)
        text, order = sql
        args = tuple(params[n] for n in order) if order is not None else params
        return _driver_execute(dbapi_conn, engine, text, args)


def driver_execute(conn: Connection, sql: str, args: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
    """Run ``sql`` on a new cursor of ``conn``'s driver connection and return the cursor (close
    it). Driver errors are raised as SQLAlchemy's, as ``Connection.execute`` raises them, and
    as the engine's ``hide_parameters`` says: the parameters never reach the error's text."""
    return _driver_execute(conn.connection, conn.engine, sql, args)


def _driver_execute(dbapi_conn: Any, engine: Engine, sql: str, args: tuple[Any, ...] | dict[str, Any]) -> Any:
    dialect = engine.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(sql, args)
    except dbapi_error as e:
        cursor.close()
        raise DBAPIError.instance(
            sql, args, e, dbapi_error, hide_parameters=engine.hide_parameters, dialect=dialect
        ) from e
    return cursor


def model_columns(table: Table, model: type) -> list[Column[Any]]:
    """``table``'s columns named as the fields of the dataclass ``model``, in its order: a
    ``Prepared`` select of them gives rows that are ``model(*row)``."""
    return [table.c[f.name] for f in dataclasses.fields(model)]


def mark(conn: Connection) -> str:
    """The driver's positional placeholder, for SQL handed straight to it."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def insert_sql(
    conn: Connection, table: Table, columns: tuple[str, ...], count: int, on_conflict: str = ""
) -> str:
    """``INSERT INTO table (columns) VALUES`` with ``count`` rows of driver placeholders, and the
    caller's fixed ``on_conflict`` clause. Only the schema's own names are used (KeyError
    otherwise)."""
    names = [table.c[c].name for c in columns]
    values = ", ".join([f"({', '.join([mark(conn)] * len(names))})"] * count)
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES {values} {on_conflict}"  # noqa: S608


def insert_rows(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    on_conflict: str = "",
) -> int:
    """Multi-row INSERTs (one statement per 30,000 values) handed straight to the driver, for the
    batched hot paths: no per-row SQLAlchemy parameter processing, and one driver call (one GIL
    release) per statement instead of one per row. Values must be driver types (str, int, bytes,
    None). ``on_conflict`` is a fixed clause of the caller's. Returns the driver's row count."""
    per_statement = max(1, MAX_PARAMETERS // len(columns))
    count = 0
    for start in range(0, len(rows), per_statement):
        part = rows[start : start + per_statement]
        sql = insert_sql(conn, table, columns, len(part), on_conflict)
        cursor = driver_execute(conn, sql, tuple(v for row in part for v in row))
        count += cursor.rowcount
        cursor.close()
    return count


_SAVEPOINT_NAMES = itertools.count()


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """A nested transaction: an error inside rolls back only what was done inside. Issued on the
    driver: SQLAlchemy's ``begin_nested`` compiles SAVEPOINT and RELEASE anew each time (their
    names change), ~120 us against ~2 us here, and every SQLite write takes one
    (``Database.write``). Names are unique in the process, so savepoints nest."""
    name = f"sikker_{next(_SAVEPOINT_NAMES)}"
    driver_execute(conn, f"SAVEPOINT {name}").close()
    try:
        yield
    except BaseException:
        driver_execute(conn, f"ROLLBACK TO SAVEPOINT {name}").close()  # keeps it: release it
        driver_execute(conn, f"RELEASE SAVEPOINT {name}").close()
        raise
    driver_execute(conn, f"RELEASE SAVEPOINT {name}").close()


def prepare_sqlite_file(path: Path) -> None:
    """Refuse a directory others can enter; create the database file 0600 if it is new."""
    directory = path.parent
    if directory.exists() and directory.stat().st_mode & 0o007:
        raise InvalidInput(
            f"the data directory {directory} is open to other users; run 'chmod 700 {directory}'"
        )
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite store at ``url`` (normalised); None for PostgreSQL or in memory."""
    path = make_url(url).database if url.startswith("sqlite") else None
    return path if path and path != ":memory:" else None


# SQLite connections kept open per process: one for each thread that may use one at once,
# that is the API's thread pool (api.context.API_THREADS, 40) and the read commit; the
# console's and the background jobs' calls (Starlette's pool) use the overflow. With 8, a
# server with one worker under 16 concurrent admin writes opened and closed a connection for
# most token checks (8% of its CPU samples in py-spy).
SQLITE_POOL_SIZE = 41
# The key of the PostgreSQL advisory lock that stands for "this store is in use" ("sikker").
STORE_LOCK_KEY = 0x73696B6B6572


@contextmanager
def store_lock(url: str, exclusive: bool) -> Iterator[None]:
    """Who uses a store: every ``sikker server`` holds this lock shared for as long as it runs
    (its forked workers share it), a restore holds it exclusively; whichever comes second is
    refused at once (Conflict). On SQLite an flock on a file beside the database, on PostgreSQL
    a session advisory lock on a connection of its own; either ends with the process however
    that ends. Nothing for a database in memory."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        with _advisory_lock(url, exclusive):
            yield
        return
    path = sqlite_file(url)
    if path is None:
        yield
        return
    prepare_sqlite_file(Path(path))
    fd = os.open(f"{path}-inuse", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(path, exclusive) from None
        yield
    finally:
        os.close(fd)


def _in_use(where: str, exclusive: bool) -> Conflict:
    return Conflict(
        f"a server is running on {where}: stop it before restoring into this store"
        if exclusive
        else f"a restore is running on {where}: start the server once it has finished"
    )


@contextmanager
def _advisory_lock(url: str, exclusive: bool) -> Iterator[None]:
    """``store_lock`` on PostgreSQL: ``STORE_LOCK_KEY`` taken without waiting on a connection
    in autocommit (no transaction stays open), held until that connection closes. Advisory
    locks belong to one database, so stores in other databases do not interfere. A server's
    shared lock is kept by ``_LockKeeper``: lost with its connection (PostgreSQL restarted,
    the session killed), it is taken again."""
    parsed = make_url(url)
    where = f"database {parsed.database} at {parsed.host or 'localhost'}"
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        try:
            conn = _lock_connection(engine)
        except (OperationalError, InterfaceError) as e:
            raise StoreUnavailable(connect_failure(url, e)) from e
        keeper = None
        try:
            try:
                held = _try_lock(conn, exclusive)
            except (OperationalError, InterfaceError) as e:
                raise StoreUnavailable() from e
            if not held:
                raise _in_use(where, exclusive)
            if not exclusive:
                keeper = _LockKeeper(engine, conn, where)
                keeper.start()
            yield
        finally:
            holder = keeper.stop() if keeper is not None else conn
            with contextlib.suppress(DBAPIError):  # a connection already lost has let go too
                if holder is not None:
                    holder.close()
    finally:
        engine.dispose()


def _lock_connection(engine: Engine) -> Connection:
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _try_lock(conn: Connection, exclusive: bool) -> bool:
    take = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
    return bool(conn.exec_driver_sql(f"SELECT {take}({STORE_LOCK_KEY})").scalar())


STORE_LOCK_CHECK_SECONDS = 5.0  # how often a server checks that it still holds the store lock


class _LockKeeper(threading.Thread):
    """Checks every ``STORE_LOCK_CHECK_SECONDS`` that the server's shared store lock is still
    held (a ``SELECT 1`` on its connection); once the connection is gone, so is the lock, and
    it is taken again on a new connection as soon as PostgreSQL answers. If a restore took the
    store in between, it says so in the log (an error, every check) until the restore ends:
    the restore then replaced the store under this server, which should be restarted."""

    def __init__(self, engine: Engine, conn: Connection, where: str) -> None:
        super().__init__(name="sikker-store-lock", daemon=True)
        self.engine, self.where = engine, where
        self.conn: Connection | None = conn
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop.wait(STORE_LOCK_CHECK_SECONDS):
            with self._lock:
                if self._stop.is_set():
                    return
                self._check()

    def _check(self) -> None:
        if self.conn is not None:
            try:
                self.conn.exec_driver_sql("SELECT 1")
                return
            except DBAPIError:
                _log.warning(
                    "lost the connection that holds the store lock on %s: taking it again", self.where
                )
                with contextlib.suppress(DBAPIError):
                    self.conn.close()
                self.conn = None
        try:
            conn = _lock_connection(self.engine)
        except DBAPIError:
            return  # PostgreSQL not back yet: the next check tries again
        try:
            held = _try_lock(conn, exclusive=False)
        except DBAPIError:  # lost again at once: the next check tries again
            with contextlib.suppress(DBAPIError):
                conn.close()
            return
        if held:
            self.conn = conn
            _log.warning("took the store lock on %s again", self.where)
            return
        with contextlib.suppress(DBAPIError):
            conn.close()
        _log.error(
            "a restore holds the store lock on %s: it is replacing the store this server "
            "serves; restart the server once the restore has finished",
            self.where,
        )

    def stop(self) -> Connection | None:
        """End the checks; the connection that holds the lock now (None while it is lost)."""
        with self._lock:
            self._stop.set()
            return self.conn


def _count_connections_in_use(engine: Engine) -> None:
    """Keep ``sikker_db_connections_in_use`` (metrics.py) at the pool's checked-out count."""

    @event.listens_for(engine, "checkout")
    def _out(*_args: Any) -> None:
        metrics.DB_POOL_IN_USE.inc()

    @event.listens_for(engine, "checkin")
    def _in(*_args: Any) -> None:
        metrics.DB_POOL_IN_USE.dec()


PING_AFTER_IDLE_SECONDS = 1.0  # a PostgreSQL connection idle this long is pinged at checkout


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled PostgreSQL connection at checkout when it sat idle for
    ``PING_AFTER_IDLE_SECONDS``; a dead one is replaced (the pool retries on InvalidatePoolError).

    ``pool_pre_ping`` pings at every checkout: one more round trip per transaction, 6% of read
    throughput. A restart of PostgreSQL leaves the pool idle far longer than this, so the first
    request after it still gets a live connection; a request whose connection was in use, or
    idle for less than the interval, when PostgreSQL went down fails with 503 (the store was
    unreachable). A failed ping, like such a failure, makes the pool drop all its connections."""

    @event.listens_for(engine, "checkin")
    def _idle(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)  # raises when the connection is gone
            dbapi_conn.rollback()  # the ping's transaction: hand the connection over idle
        except Exception as e:  # PostgreSQL restarted or dropped it: the others are gone too
            raise InvalidatePoolError("the pooled connection is gone") from e


def _revisions(conn: Connection) -> set[str]:
    """The revisions Alembic recorded in the store (none in a new one), in a transaction of their
    own: Alembic starts from a connection with none open."""
    try:
        if not conn.dialect.has_table(conn, "alembic_version"):
            return set()
        return {str(v) for v in conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()}
    finally:
        conn.rollback()


def split_statements(script: str) -> list[str]:
    """The SQL statements of a script, one per entry (each ends with a semicolon)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return statements


def _create_sqlite_head(conn: Connection) -> bool:
    """Make an empty SQLite store the schema at HEAD from ``SQLITE_HEAD``, in one write
    transaction. False (nothing done) if the store holds anything."""
    conn.execution_options(sikker_write=True)  # BEGIN IMMEDIATE: two starting servers take turns
    try:
        with conn.begin():
            if conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one():
                return False
            for statement in split_statements(SQLITE_HEAD.read_text()):
                conn.exec_driver_sql(statement)
        return True
    finally:
        conn.execution_options(sikker_write=False)


# SQLite moves the WAL into the database file once it holds this many pages (4 KiB each, so
# up to about 64 MiB of WAL), instead of SQLite's 1,000. A page that many commits change (the
# audit log's last pages, the nonce index) is then written to the database file once per
# checkpoint rather than once per 1,000 pages: with the read lane's small batches, about 20%
# fewer bytes written per signed read (docs/performance.md).
WAL_AUTOCHECKPOINT_PAGES = 16_000
GROUP_MAX = 64  # writers one SQLite commit carries at most
GROUP_MAX_SECONDS = 0.02  # ... and the longest a group stays open for more


@dataclass(slots=True, eq=False)
class _Group:
    """One SQLite write transaction shared by the writers that queued for it."""

    conn: Connection
    transaction: RootTransaction
    started: float
    members: int = 0
    failure: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        path = sqlite_file(self.url)
        if path is not None:
            prepare_sqlite_file(Path(path))
        self.engine = self._create_engine()
        _count_connections_in_use(self.engine)
        # SQLite has one writer. Queue writers on locks instead of letting them spin in SQLite's
        # busy handler, which sleeps and retries (seconds of tail latency under load): a thread
        # lock within this process, and an flock on a file beside the database between the
        # processes of one server (--workers).
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._flock_path = f"{path}-writelock" if path is not None else None
        self._flock_fd: int | None = None
        self._group: _Group | None = None  # the open group-commit transaction (SQLite)
        self._depth = 0  # write() calls of the thread holding _write_lock
        self._queued = 0  # threads waiting for _write_lock
        self._queue_lock = threading.Lock()
        self._wal_path = f"{path}-wal" if self._flock_path else None
        self._wal_fd: int | None = None
        self._wal_lock = threading.Lock()

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            pg = create_engine(
                self.url,
                hide_parameters=True,  # statement parameters never reach logs or error text
                pool_size=10,
                max_overflow=20,
                pool_timeout=5,
                connect_args={"connect_timeout": 5},
            )
            _ping_idle_connections(pg)
            return pg
        engine = create_engine(
            self.url,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": 10},
            **(
                {"poolclass": NullPool}
                if ":memory:" in self.url
                # As many as the threads that may use one at a time: beyond the pool a
                # connection is opened (with its PRAGMAs) and closed per use.
                else {"pool_size": SQLITE_POOL_SIZE, "max_overflow": 32}
            ),
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control away from the driver so we can BEGIN IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # Commits do not sync; Database.write syncs the WAL before any writer returns.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get("sikker_write") else "BEGIN"
            driver_execute(conn, mode).close()

        return engine

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest migration (idempotent), or up to ``revision``. Run at
        start-up, so a store that cannot be reached is explained (``connect_failure``) rather
        than "retry shortly". Without Alembic: a store already at ``HEAD`` is left alone, and an
        empty SQLite store is made from ``SQLITE_HEAD``."""
        self._alembic("upgrade", revision)

    def downgrade(self, revision: str) -> None:
        """Take the schema back to ``revision`` (restoring an older backup into a newer store)."""
        self._alembic("downgrade", revision)

    def _alembic(self, direction: str, revision: str) -> None:
        try:
            conn = self.engine.connect()
        except (OperationalError, InterfaceError) as e:
            if self.is_sqlite:
                raise StoreUnavailable(f"cannot open the SQLite database: {e.orig}") from e
            raise StoreUnavailable(connect_failure(self.url, e)) from e
        with self._translate(), conn:
            if direction == "upgrade" and revision == "head":
                revisions = _revisions(conn)
                if revisions == {HEAD}:
                    return
                if self.is_sqlite and not revisions and _create_sqlite_head(conn):
                    self._sync_wal()
                    return
            from alembic import command

            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            run = command.upgrade if direction == "upgrade" else command.downgrade
            run(cfg, revision)
            conn.commit()
            self._sync_wal()

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read-only transaction that sees one point in time across every table (backups).
        SQLite: a read transaction in WAL mode (writers go on; the snapshot is taken at the first
        read). PostgreSQL: REPEATABLE READ, READ ONLY."""
        with self._translate(), self.engine.connect() as conn:
            if not self.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: commits on success, rolls back on any error.

        On SQLite, writers that queue for the one write lock share a transaction (group
        commit): each runs in its own savepoint, so an error rolls back only its own changes,
        and the last of them (none waiting, GROUP_MAX writers, or GROUP_MAX_SECONDS after the
        first began) commits for all. The commit writes the WAL without syncing it
        (``synchronous=NORMAL``); the WAL is synced after the write lock is released (``_sync``),
        so the next group writes while this one waits for the disk. Every writer returns only
        after that sync: nothing is acknowledged before it is durable. If the commit or the sync
        fails, each writer of the group gets the error."""
        if self._write_lock is None:  # PostgreSQL: a transaction per writer
            with self._translate(), self.engine.connect() as conn:
                conn = conn.execution_options(sikker_write=True)
                with conn.begin():
                    yield conn
            return
        with self._queue_lock:
            self._queued += 1
        self._write_lock.acquire()
        with self._queue_lock:
            self._queued -= 1
        outermost = self._depth == 0  # a nested write() of this thread is one more savepoint
        self._depth += 1
        group = None
        try:
            with self._translate():
                group = self._group or self._open_group()
                try:
                    with savepoint(group.conn):
                        yield group.conn
                except StoreUnavailable:
                    raise
                except (OperationalError, InterfaceError) as e:  # the connection may be unusable
                    group.failure = e
                    raise
        finally:
            self._depth -= 1
            closed = None
            if outermost and group is not None:
                group.members += 1
                if (
                    group.failure is not None
                    or self._queued == 0
                    or group.members >= GROUP_MAX
                    or time.monotonic() - group.started >= GROUP_MAX_SECONDS
                ):
                    self._close_group(group)
                    closed = group
            self._write_lock.release()
            if closed is not None:
                self._sync(closed)
        if outermost:
            group.done.wait()
            if group.failure is not None:
                with self._translate():
                    raise group.failure

    def _open_group(self) -> _Group:
        self._lock_file()
        try:
            conn = self.engine.connect().execution_options(sikker_write=True)
            try:
                self._group = _Group(conn, conn.begin(), time.monotonic())
            except BaseException:
                conn.close()
                raise
        except BaseException:
            self._unlock_file()
            raise
        return self._group

    def _close_group(self, group: _Group) -> None:
        """Commit (or, after a broken connection, roll back) for every writer of ``group``."""
        self._group = None
        try:
            if group.failure is None:
                group.transaction.commit()
            else:
                group.transaction.rollback()
        except BaseException as e:
            group.failure = group.failure or e
        finally:
            with contextlib.suppress(Exception):
                if group.failure is not None:  # never back to the pool: it may still be in a transaction
                    group.conn.invalidate()
                group.conn.close()
            self._unlock_file()

    def _sync(self, group: _Group) -> None:
        """Make ``group``'s commit durable, then let its writers return. Syncing the WAL file
        syncs every frame written to it so far, this group's included; frames a checkpoint
        already moved were synced by it (SQLite syncs the WAL before and the database after a
        checkpoint, also at ``synchronous=NORMAL``)."""
        try:
            if group.failure is None:
                self._sync_wal()
        except OSError as e:
            failure = StoreUnavailable()
            failure.__cause__ = e
            group.failure = failure
        finally:
            group.done.set()

    def _sync_wal(self) -> None:
        if self._wal_path is None:  # PostgreSQL, or SQLite in memory
            return
        try:
            current = os.stat(self._wal_path).st_ino
        except FileNotFoundError:  # the last connection checkpointed and removed it: all synced
            return
        with self._wal_lock:
            fd = self._wal_fd
            if fd is None or os.fstat(fd).st_ino != current:  # a new WAL file since we opened it
                if fd is not None:
                    os.close(fd)
                fd = self._wal_fd = os.open(self._wal_path, os.O_RDONLY | os.O_CLOEXEC)
        os.fsync(fd)

    def _lock_file(self) -> None:
        """Between the processes of one server; taken with the thread lock held, so one thread
        per process ever waits on it."""
        if self._flock_path is None:
            return
        if self._flock_fd is None:
            self._flock_fd = os.open(self._flock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._flock_fd, fcntl.LOCK_EX)

    def _unlock_file(self) -> None:
        if self._flock_fd is not None:
            fcntl.flock(self._flock_fd, fcntl.LOCK_UN)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._translate(), self.engine.connect() as conn, conn.begin():
            yield conn

    def read_row(self, statement: Prepared, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of one statement, run alone on a pooled driver connection: no SQLAlchemy
        ``Connection``, no BEGIN or COMMIT. For a lookup every request makes (the admin token):
        ~20 against ~60 us for ``read()`` here, and ~10% more admin writes/s on one worker
        (docs/performance.md). It sees what is committed when it runs (SQLite: the statement's
        own read transaction; PostgreSQL: the statement alone, in autocommit, so one round trip
        instead of BEGIN and the query, then a ROLLBACK when the connection goes back to the
        pool; the connection leaves autocommit before it is returned)."""
        driver_error = self.engine.dialect.loaded_dbapi.Error
        with self._translate():
            try:
                dbapi_conn = self.engine.raw_connection()
            except driver_error as e:  # the pool raises the driver's own error (cannot connect)
                raise StoreUnavailable() from e
            driver: Any = dbapi_conn.driver_connection
            try:
                if not self.is_sqlite:
                    driver.autocommit = True
                cursor = statement.run_driver(dbapi_conn, self.engine, params)
                try:
                    row: tuple[Any, ...] | None = cursor.fetchone()
                finally:
                    cursor.close()
                if not self.is_sqlite:
                    driver.autocommit = False
            except BaseException as e:
                dbapi_conn.invalidate()  # in an unknown state: never back to the pool
                if isinstance(e, driver_error):
                    raise StoreUnavailable() from e
                raise
            finally:
                dbapi_conn.close()
        return row

    @staticmethod
    @contextmanager
    def _translate() -> Iterator[None]:
        try:
            yield
        except IntegrityError as e:
            raise Conflict("the change conflicts with existing data (duplicate name?)") from e
        except (OperationalError, InterfaceError) as e:
            # OperationalError: server gone, restarting, refusing connections; InterfaceError:
            # the driver's connection object was closed under us (e.g. by a server restart).
            raise StoreUnavailable() from e
        except DBAPIError as e:
            if e.connection_invalidated:
                raise StoreUnavailable() from e
            raise

    def ping(self) -> None:
        """One trivial query (readiness probes); StoreUnavailable when the store does not answer."""
        with self.read() as conn:
            conn.exec_driver_sql("SELECT 1").scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._flock_fd is not None:
            os.close(self._flock_fd)
            self._flock_fd = None
        with self._wal_lock:
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
