"""The backup's inner stream: JSON lines describing every table and its rows (pure logic).

This is what the encrypted frames of a backup file carry (docs/operator/backup.md)::

    {"type": "header", "format": "sikker-backup", "version": 1, "createdAt": "...Z",
     "createdMs": ..., "sourceStore": "sqlite" | "postgresql", "schemaRevision": "0010",
     "sikkerVersion": "...", "tables": [{"name": "vaults", "columns": [["id", "str"], ...]}, ...]}
    {"type": "table", "name": "vaults"}
    ["vault_...", "acme", 1764472000000, false]          one JSON array per row, in column order
    {"type": "end", "name": "vaults", "rows": 1}
    ...                                                  every table of the header, in its order
    {"type": "done", "tables": 27, "rows": 12345}

Column types: ``int``, ``str``, ``bool``, ``float`` as JSON; ``bytes`` as standard base64;
``null`` for NULL. Tables come in dependency order (a table after the tables it refers to), so
a restore inserts them as they come and deletes them in reverse.

``Parser`` checks all of it: the header first, every table announced in order, every row the
width of its table with values of the column's type, the counts in ``end`` and ``done``. A
stream that stops early (no ``done``) is refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from sikker.errors import InvalidInput

FORMAT = "sikker-backup"
VERSION = 1
TYPES = frozenset({"int", "str", "bool", "float", "bytes"})
# One line (a row) at most: values are at most 64 KiB before encryption; this bounds memory.
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Header:
    created_ms: int
    source_store: str
    schema_revision: str
    sikker_version: str
    tables: tuple[TableSpec, ...]


def created_at(ms: int) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2026-11-30T03:42:15.123Z``."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def header_line(header: Header) -> bytes:
    tables = [
        {"name": t.name, "columns": [list(c) for c in zip(t.columns, t.types, strict=True)]}
        for t in header.tables
    ]
    return _line(
        {
            "type": "header",
            "format": FORMAT,
            "version": VERSION,
            "createdAt": created_at(header.created_ms),
            "createdMs": header.created_ms,
            "sourceStore": header.source_store,
            "schemaRevision": header.schema_revision,
            "sikkerVersion": header.sikker_version,
            "tables": tables,
        }
    )


def table_line(name: str) -> bytes:
    return _line({"type": "table", "name": name})


def end_line(name: str, rows: int) -> bytes:
    return _line({"type": "end", "name": name, "rows": rows})


def done_line(tables: int, rows: int) -> bytes:
    return _line({"type": "done", "tables": tables, "rows": rows})


def row_line(spec: TableSpec, row: tuple[Any, ...]) -> bytes:
    """One row as a JSON array; bytes become base64 (memoryview too)."""
    encoded = [
        base64.b64encode(bytes(v)).decode() if kind == "bytes" and v is not None else v
        for v, kind in zip(row, spec.types, strict=True)
    ]
    return orjson.dumps(encoded) + b"\n"


def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rows:
    """A batch of decoded rows of one table."""

    table: TableSpec
    rows: list[tuple[Any, ...]]


def lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Split a stream of byte chunks into lines (without the newline); a last line without a
    newline, or a line longer than MAX_LINE_BYTES, is refused."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
        if len(pending) > MAX_LINE_BYTES:
            raise damaged("a line is longer than the format allows")
    if pending:
        raise damaged("the stream ends in the middle of a line")


def damaged(why: str) -> InvalidInput:
    return InvalidInput(f"the backup's content is not valid ({why}): the file is damaged or not a backup")


class Parser:
    """Turns the inner stream's lines into a ``Header`` and batches of rows, checking as it goes."""

    def __init__(self, batch_rows: int = 500) -> None:
        self.batch_rows = batch_rows
        self.header: Header | None = None
        self.total_rows = 0

    def parse(self, stream: Iterator[bytes]) -> Iterator[Rows]:
        it = iter(stream)
        self.header = parse_header(_next(it, "no header"))
        for spec in self.header.tables:
            start = _object(_next(it, f"table {spec.name} missing"))
            if start != {"type": "table", "name": spec.name}:
                raise damaged(f"expected table {spec.name}")
            count, batch = 0, []
            for line in it:
                if line[:1] == b"{":
                    end = _object(line)
                    if end != {"type": "end", "name": spec.name, "rows": count}:
                        raise damaged(f"table {spec.name} does not end where it says")
                    break
                batch.append(decode_row(spec, line))
                count += 1
                if len(batch) >= self.batch_rows:
                    yield Rows(spec, batch)
                    batch = []
            else:
                raise damaged(f"table {spec.name} is cut short")
            if batch:
                yield Rows(spec, batch)
            self.total_rows += count
        done = _object(_next(it, "the end marker is missing (truncated)"))
        if done != {"type": "done", "tables": len(self.header.tables), "rows": self.total_rows}:
            raise damaged("the end marker does not match the content")
        if next(it, None) is not None:
            raise damaged("content after the end marker")


def parse_header(line: bytes) -> Header:
    obj = _object(line)
    if obj.get("type") != "header" or obj.get("format") != FORMAT:
        raise damaged("no backup header")
    if obj.get("version") != VERSION:
        raise InvalidInput(
            f"backup content version {obj.get('version')!r} is not supported (this Sikker reads version "
            f"{VERSION}): restore it with the Sikker version that made it"
        )
    try:
        tables = tuple(_table_spec(t) for t in obj["tables"])
        header = Header(
            int(obj["createdMs"]),
            str(obj["sourceStore"]),
            str(obj["schemaRevision"]),
            str(obj["sikkerVersion"]),
            tables,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise damaged("malformed header") from e
    if len({t.name for t in tables}) != len(tables):
        raise damaged("a table is listed twice")
    return header


def _table_spec(obj: Any) -> TableSpec:
    name, columns = obj["name"], obj["columns"]
    if not isinstance(name, str) or not isinstance(columns, list) or not columns:
        raise ValueError("table")
    names = tuple(str(c[0]) for c in columns)
    types = tuple(str(c[1]) for c in columns)
    if not set(types) <= TYPES or any(len(c) != 2 for c in columns) or len(set(names)) != len(names):
        raise ValueError("columns")
    return TableSpec(name, names, types)


_CHECK: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "str": str,
    "bool": bool,
    "float": (int, float),
    "bytes": str,
}


def decode_row(spec: TableSpec, line: bytes) -> tuple[Any, ...]:
    try:
        values = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise damaged(f"a row of {spec.name} is not JSON") from e
    if not isinstance(values, list) or len(values) != len(spec.columns):
        raise damaged(f"a row of {spec.name} has the wrong width")
    out: list[Any] = []
    for value, kind, column in zip(values, spec.types, spec.columns, strict=True):
        if value is None:
            out.append(None)
            continue
        if not isinstance(value, _CHECK[kind]) or (isinstance(value, bool) and kind != "bool"):
            raise damaged(f"{spec.name}.{column} holds a value of the wrong type")
        if kind == "bytes":
            try:
                value = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError) as e:
                raise damaged(f"{spec.name}.{column} is not base64") from e
        out.append(value)
    return tuple(out)


def _next(it: Iterator[bytes], why: str) -> bytes:
    line = next(it, None)
    if line is None:
        raise damaged(why)
    return line


def _object(line: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise damaged("a line is not JSON") from e
    if not isinstance(obj, dict):
        raise damaged("expected a JSON object")
    return obj
