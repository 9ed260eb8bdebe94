"""The store's side of backups: every table read from one snapshot, and a restore's writes.

Reading: the tables of ``tables.metadata`` in dependency order, each ordered by its primary
key and streamed (``yield_per``), so a backup never holds a table in memory. Writing: the
target is brought to the backup's schema revision, emptied, filled in one transaction with
multi-row INSERTs, and PostgreSQL's sequences are moved past the ids that were inserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, MetaData, inspect, select, text
from sqlalchemy.sql.sqltypes import Boolean, Float, Integer, LargeBinary, String

from sikker.core.backup import TableSpec
from sikker.errors import InvalidInput
from sikker.storage.database import MAX_PARAMETERS, Database, alembic_config, mark
from sikker.storage.tables import metadata

ALEMBIC_TABLE = "alembic_version"
# Rows that migrations themselves insert: a store holding only these is empty.
SEEDED = frozenset({"access_epoch"})
READ_BATCH = 1000


def _type_of(column: Any) -> str:
    kind = column.type
    for cls, name in ((Boolean, "bool"), (LargeBinary, "bytes"), (Integer, "int"), (Float, "float")):
        if isinstance(kind, cls):
            return name
    if isinstance(kind, String):  # Text is a String
        return "str"
    raise InvalidInput(f"column {column.table.name}.{column.name}: type {kind} cannot be backed up")


def table_specs() -> tuple[TableSpec, ...]:
    """Every table of the schema, in dependency order, with its columns' backup types."""
    return tuple(
        TableSpec(t.name, tuple(c.name for c in t.columns), tuple(_type_of(c) for c in t.columns))
        for t in metadata.sorted_tables
    )


def schema_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(ALEMBIC_TABLE):
        return None
    found = conn.execute(text(f"SELECT version_num FROM {ALEMBIC_TABLE}")).scalar_one_or_none()  # noqa: S608
    return str(found) if found is not None else None


def read_table(conn: Connection, spec: TableSpec) -> Iterator[tuple[Any, ...]]:
    """The rows of one table in primary-key order, fetched ``READ_BATCH`` at a time."""
    table = metadata.tables[spec.name]
    query = select(*(table.c[c] for c in spec.columns)).order_by(*table.primary_key.columns)
    result = conn.execution_options(yield_per=READ_BATCH).execute(query)
    for row in result:
        yield tuple(row)


# -- restore ---------------------------------------------------------------------------------


def known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory  # restores only: not imported by a starting server
    from alembic.util.exc import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def is_ancestor(older: str, newer: str) -> bool:
    """``older`` comes before (or is) ``newer`` in the migration history."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return any(r.revision == older for r in script.iterate_revisions(newer, "base"))


def occupied_tables(db: Database) -> dict[str, int]:
    """Tables holding rows (beyond what migrations insert), with their row counts."""
    with db.read() as conn:
        names = [n for n in inspect(conn).get_table_names() if n != ALEMBIC_TABLE and n not in SEEDED]
        counts = {n: _count(conn, n) for n in names}
    return {n: c for n, c in counts.items() if c}


def _count(conn: Connection, name: str) -> int:
    return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {_quote(conn, name)}").scalar_one())  # noqa: S608


def target_revision(db: Database) -> str | None:
    with db.read() as conn:
        return schema_revision(conn)


def wipe(db: Database) -> None:
    """Delete every row of every table (dependents first), in one transaction."""
    with db.write() as conn:
        _delete_all(conn, _present_tables(conn))


def _present_tables(conn: Connection) -> list[str]:
    reflected = MetaData()
    reflected.reflect(conn)
    return [t.name for t in reflected.sorted_tables if t.name != ALEMBIC_TABLE]


def _delete_all(conn: Connection, names: list[str]) -> None:
    for name in reversed(names):
        conn.exec_driver_sql(f"DELETE FROM {_quote(conn, name)}")  # noqa: S608


def check_layout(conn: Connection, specs: tuple[TableSpec, ...]) -> None:
    """Every table and column of the backup exists in the target (at the backup's revision)."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    for spec in specs:
        if spec.name not in present:
            raise InvalidInput(f"the target store has no table {spec.name} at the backup's schema revision")
        columns = {c["name"] for c in inspector.get_columns(spec.name)}
        missing = set(spec.columns) - columns
        if missing:
            lacking = ", ".join(sorted(missing))
            raise InvalidInput(f"the target's table {spec.name} lacks the columns {lacking}")


def clear_for_restore(conn: Connection, specs: tuple[TableSpec, ...]) -> None:
    """Inside the restore transaction: remove the rows migrations inserted (and anything else)."""
    _delete_all(conn, [s.name for s in specs])


def insert_batch(conn: Connection, spec: TableSpec, rows: list[tuple[Any, ...]]) -> None:
    """Multi-row INSERTs with the backup's explicit values (ids included)."""
    names = ", ".join(_quote(conn, c) for c in spec.columns)
    one = f"({', '.join([mark(conn)] * len(spec.columns))})"
    per_statement = max(1, MAX_PARAMETERS // len(spec.columns))
    for start in range(0, len(rows), per_statement):
        part = rows[start : start + per_statement]
        sql = f"INSERT INTO {_quote(conn, spec.name)} ({names}) VALUES {', '.join([one] * len(part))}"  # noqa: S608
        conn.exec_driver_sql(sql, tuple(v for row in part for v in row))


def reset_sequences(conn: Connection) -> None:
    """PostgreSQL: move every serial/identity sequence past the largest id restored, so the
    next insert does not collide. (SQLite takes max(rowid) + 1 by itself.)"""
    if conn.dialect.name != "postgresql":
        return
    found = conn.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() "
            "AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')"
        )
    ).all()
    for table_name, column in found:
        quoted = _quote(conn, str(table_name))
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "  # noqa: S608
                f"COALESCE((SELECT MAX({_quote(conn, str(column))}) FROM {quoted}), 0) + 1, false)"
            ),
            {"table": quoted, "column": str(column)},
        )


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)
