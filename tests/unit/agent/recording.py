"""A DB-API connection that records statements and answers from a script (for SQL unit tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Answer = Callable[[str, Any], Sequence[Sequence[Any]]]


class RecordingCursor:
    def __init__(self, log: list[tuple[str, Any]], answer: Answer) -> None:
        self._log, self._answer, self._rows = log, answer, []  # type: ignore[var-annotated]

    def execute(self, operation: str, params: Any = None) -> None:
        self._log.append((operation, params))
        self._rows = list(self._answer(operation, params))

    def fetchall(self) -> list[Sequence[Any]]:
        return list(self._rows)

    def fetchone(self) -> Sequence[Any] | None:
        return self._rows[0] if self._rows else None

    def __enter__(self) -> RecordingCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class RecordingConnection:
    def __init__(self, log: list[tuple[str, Any]], answer: Answer) -> None:
        self._log, self._answer, self.closed = log, answer, False

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self._log, self._answer)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> RecordingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
