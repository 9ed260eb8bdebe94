"""The backup's inner stream (core/backup.py): what is written is read back, and anything
cut short, misplaced or mistyped is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sikker.core import backup as fmt
from sikker.errors import InvalidInput

SPECS = (
    fmt.TableSpec("vaults", ("id", "name", "require_mfa"), ("str", "str", "bool")),
    fmt.TableSpec("blobs", ("id", "data", "n"), ("int", "bytes", "int")),
)
ROWS = {
    "vaults": [("v1", "acme", False), ("v2", "ümlaut \n name", True)],
    "blobs": [(i, bytes([i % 256]) * (i % 50), None) for i in range(1, 1200)],
}


def stream(rows: dict[str, list[tuple[object, ...]]] = ROWS) -> list[bytes]:
    out = [fmt.header_line(fmt.Header(1764472000123, "sqlite", "0010", "0.1", SPECS))]
    total = 0
    for spec in SPECS:
        out.append(fmt.table_line(spec.name))
        out += [fmt.row_line(spec, row) for row in rows[spec.name]]
        out.append(fmt.end_line(spec.name, len(rows[spec.name])))
        total += len(rows[spec.name])
    out.append(fmt.done_line(len(SPECS), total))
    return out


def parse(lines: list[bytes], chunk: int = 7) -> dict[str, list[tuple[object, ...]]]:
    data = b"".join(lines)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]

    parser = fmt.Parser(batch_rows=100)
    got: dict[str, list[tuple[object, ...]]] = {s.name: [] for s in SPECS}
    for batch in parser.parse(fmt.lines(chunks())):
        assert len(batch.rows) <= 100
        got[batch.table.name] += batch.rows
    assert parser.header is not None and parser.header.tables == SPECS
    return got


def test_rows_round_trip_in_batches_whatever_the_chunking() -> None:
    assert parse(stream()) == ROWS
    assert parse(stream(), chunk=65536) == ROWS


def test_created_at_is_iso_utc_with_milliseconds() -> None:
    assert fmt.created_at(1764472000123) == "2025-11-30T03:06:40.123Z"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: s[:-1], "end marker is missing"),
        (lambda s: s[:-3], "cut short"),
        (lambda s: [*s[:-1], b'{"type":"done","tables":2,"rows":1}\n'], "end marker does not match"),
        (lambda s: [s[0], *s[2:]], "expected a JSON object"),
        (lambda s: [s[0], fmt.table_line("blobs"), *s[2:]], "expected table vaults"),
        (lambda s: [*s[:2], b'["v1","acme"]\n', *s[3:]], "wrong width"),
        (lambda s: [*s[:2], b'["v1","acme",1]\n', *s[3:]], "wrong type"),
        (lambda s: [*s[:2], b'[1,"acme",true]\n', *s[3:]], "wrong type"),
        (lambda s: [*s, b'["extra"]\n'], "after the end marker"),
        (lambda s: [b'{"type":"header","format":"x"}\n', *s[1:]], "no backup header"),
    ],
)
def test_damaged_streams_are_refused(damage: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(damage(stream()))  # type: ignore[operator]


def test_a_stream_ending_mid_line_is_refused() -> None:
    with pytest.raises(InvalidInput, match="middle of a line"):
        parse([b"".join(stream())[:-5]])


def test_bytes_must_be_base64() -> None:
    lines = stream()
    at = lines.index(fmt.table_line("blobs")) + 1
    lines[at] = b'[1, "not base64!", null]\n'
    with pytest.raises(InvalidInput, match="not base64"):
        parse(lines)
