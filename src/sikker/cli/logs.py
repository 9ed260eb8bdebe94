"""The server's log output: JSON lines or plain text on stdout, at one level.

``auto`` (the default) writes JSON when stdout is not a terminal (a container, systemd, a
file) and text when a person is watching. Access-log lines (``sikker.access``) carry their
fields as JSON keys, or as ``key=value`` after the message in text.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

import orjson

ACCESS_KEYS = (
    "request_id",
    "method",
    "path",
    "route",
    "status",
    "duration_ms",
    "bytes",
    "client",
    "principal_kind",
    "principal_id",
)


_second: list[Any] = [-1, ""]  # the last second formatted: one strftime per second, not per line


def _timestamp(record: logging.LogRecord) -> str:
    second = int(record.created)
    if second != _second[0]:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second[1]}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, plus an access line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            line += "".join(f" {k}={access[k]}" for k in ACCESS_KEYS if k in access)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


FLUSH_SECONDS = 0.1
MAX_PENDING = 512


class BatchedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines in batches: at most FLUSH_SECONDS after they were logged (a thread per
    process flushes), at once from WARNING up or when MAX_PENDING wait, and at exit. One write
    system call per batch instead of a write and a flush per line: under load an access line
    per request cost a read-lane request several percent of its CPU."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flushing = False  # this process's flusher thread runs
        os.register_at_fork(after_in_child=self._forked)

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            self._pending.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._pending) >= MAX_PENDING:
            self._write()
        elif not self._flushing:
            self._flushing = True
            threading.Thread(target=self._flush_forever, name="sikker-log-flush", daemon=True).start()

    def _forked(self) -> None:
        """In a forked child: the parent writes the lines pending at the fork, and its flusher
        thread did not come along."""
        self._pending.clear()
        self._flushing = False

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _write(self) -> None:
        lines, self._pending[:] = self._pending[:], []
        if lines:
            with contextlib.suppress(OSError, ValueError):  # a closed or full stdout fails no request
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()


def resolve_format(log_format: str, stream: TextIO) -> str:
    if log_format != "auto":
        return log_format
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def configure(log_format: str, log_level: str, stream: TextIO | None = None) -> str:
    """Send every log record (Sikker's, uvicorn's) through one handler on ``stream`` (stdout).
    Returns the format chosen."""
    stream = stream or sys.stdout
    chosen = resolve_format(log_format, stream)
    # Facts no line prints, skipped (the logging HOWTO's "Optimization"): an access line per
    # request must stay cheap next to a read-lane request.
    logging._srcfile = None  # no caller frame lookup
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchedHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.setLevel(log_level.upper())  # also for loggers with a level of their own (uvicorn's)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(log_level.upper())
    return chosen
