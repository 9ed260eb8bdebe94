"""The server's log handler (cli/logs.py) writes lines in batches, never loses or repeats one."""

from __future__ import annotations

import io
import logging
import os
import time

import pytest

from sikker.cli import logs

Logged = tuple[logging.Logger, logs.BatchedHandler, io.StringIO]


@pytest.fixture
def logger() -> Logged:
    stream = io.StringIO()
    handler = logs.BatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger(f"test-batches-{time.monotonic_ns()}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return log, handler, stream


def test_info_lines_are_written_within_the_flush_interval(logger: Logged) -> None:
    log, _, stream = logger
    log.info("one")
    log.info("two")
    deadline = time.monotonic() + 5
    while stream.getvalue() != "INFO one\nINFO two\n":
        assert time.monotonic() < deadline, stream.getvalue()
        time.sleep(0.01)


def test_a_warning_is_written_at_once_with_the_lines_before_it(logger: Logged) -> None:
    log, handler, stream = logger
    handler._flushing = True  # no flusher thread: only the warning may write
    log.info("first")
    assert stream.getvalue() == ""
    log.warning("careful")
    assert stream.getvalue() == "INFO first\nWARNING careful\n"


def test_a_full_batch_is_written_and_flush_writes_the_rest(logger: Logged) -> None:
    log, handler, stream = logger
    handler._flushing = True  # no flusher thread
    for i in range(logs.MAX_PENDING + 3):
        log.info("%d", i)
    assert stream.getvalue().count("\n") == logs.MAX_PENDING
    handler.flush()
    assert stream.getvalue().splitlines() == [f"INFO {i}" for i in range(logs.MAX_PENDING + 3)]


def test_a_forked_child_does_not_repeat_the_parents_pending_lines(logger: Logged) -> None:
    log, handler, stream = logger
    handler._flushing = True  # no flusher thread
    log.info("parent's")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports what it would write
        handler.stream = os.fdopen(write, "w")
        log.info("child's")
        handler.flush()
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as child:
        assert child.read() == "INFO child's\n"
    handler.flush()
    assert stream.getvalue() == "INFO parent's\n"
