"""Printing: JSON for scripts (``--json``), rich tables for people.

Names, values and messages are data: both consoles print every string literally, never reading
``[bold]`` as markup, ``:secret:`` as an emoji code or ``\\[`` as an escape. Styling is added
with ``rich.text.Text`` styles, never with markup in a string.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from rich.console import Console

# Made when first asked for (``__getattr__``): importing rich takes ~30 ms, and ``sikker
# server`` starts and serves without it.
console: Console
err_console: Console


def __getattr__(name: str) -> Console:
    if name not in ("console", "err_console"):  # e.g. ``__path__``, which imports look up
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    # Errors and warnings are never hard-wrapped mid-sentence: the terminal wraps them, and
    # they stay one line when captured or grepped.
    err = name == "err_console"
    made = Console(stderr=err, markup=False, emoji=False, highlight=False, soft_wrap=err)
    globals()[name] = made
    return made


def _console() -> Console:
    made: Console = globals()["console"] if "console" in globals() else __getattr__("console")
    return made


# The narrowest a column other than an id column is squeezed to before a table gives way to
# one block per row: narrower, names and times become a column of single characters.
_MIN_COLUMN = 8
_COLUMN_GAP = 2


@dataclass(slots=True)
class Invocation:
    """What one run of ``sikker`` asked for; ``main`` reads it when it prints an error."""

    json: bool = False


def emit_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def emit_error_json(message: str, code: int) -> None:
    """An error for scripts (``--json``): one JSON object on stderr."""
    sys.stderr.write(orjson.dumps({"error": message, "code": code}).decode() + "\n")


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _width(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.splitlines()), default=0)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], ids: Collection[str] = ("ID",)) -> None:
    """Print ``rows`` under ``columns``. The columns named in ``ids`` hold what the next command
    needs (ids, one per line when several): they are never wrapped nor cut; the other columns
    wrap. When the terminal is too narrow for that, each row is printed as a block of
    ``COLUMN value`` lines instead."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    out = _console()
    cells = [["-" if v is None else str(v) for v in row] for row in rows]
    natural = [max([cell_len(name), *(_width(row[i]) for row in cells)]) for i, name in enumerate(columns)]
    needed = sum(
        width if name in ids else min(width, _MIN_COLUMN)
        for name, width in zip(columns, natural, strict=True)
    ) + _COLUMN_GAP * (len(columns) - 1)
    if needed > out.width:
        _blocks(columns, cells)
        return
    t = Table(box=None, padding=(0, _COLUMN_GAP // 2), pad_edge=False, header_style="bold")
    for name, width in zip(columns, natural, strict=True):
        if name in ids:
            t.add_column(Text(name), no_wrap=True, min_width=width)
        else:
            t.add_column(Text(name), overflow="fold")
    for row in cells:
        t.add_row(*(Text(v) for v in row))
    out.print(t)


def _blocks(columns: Sequence[str], cells: list[list[str]]) -> None:
    from rich.cells import cell_len
    from rich.text import Text

    out, label = _console(), max(cell_len(name) for name in columns)
    for number, row in enumerate(cells):
        if number:
            out.print()
        for name, value in zip(columns, row, strict=True):
            lines = value.splitlines() or [""]
            head = Text(name.ljust(label), style="bold")
            out.print(Text.assemble(head, "  ", lines[0]), soft_wrap=True)
            for line in lines[1:]:
                out.print(Text(" " * (label + 2) + line), soft_wrap=True)
