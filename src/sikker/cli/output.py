"""Printing: JSON for scripts (``--json``), rich tables for people."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

console = Console()
# Errors and warnings are never hard-wrapped mid-sentence: the terminal wraps them, and
# they stay one line when captured or grepped.
err_console = Console(stderr=True, soft_wrap=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    t = Table(*columns, show_edge=False, header_style="bold")
    for row in rows:
        t.add_row(*("-" if v is None else str(v) for v in row))
    console.print(t)
