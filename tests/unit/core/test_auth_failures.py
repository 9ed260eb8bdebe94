"""FailureDigest: the first failure of a source per window is recorded, the rest counted."""

from __future__ import annotations

import pytest

from sikker.core.auth_failures import FailureDigest

# (source, time ms) -> expected (record now, count of an ended window to record with it)
CASES = [
    ("one failure is recorded at once", [("a", 0, (True, 0))]),
    (
        "the rest of the window is only counted",
        [("a", 0, (True, 0)), ("a", 10, (False, 0)), ("a", 999, (False, 0))],
    ),
    (
        "the next failure after the window records it and the count",
        [("a", 0, (True, 0)), ("a", 10, (False, 0)), ("a", 20, (False, 0)), ("a", 1000, (True, 2))],
    ),
    (
        "a window without repeats has no count",
        [("a", 0, (True, 0)), ("a", 5000, (True, 0))],
    ),
    (
        "sources have their own windows",
        [("a", 0, (True, 0)), ("b", 1, (True, 0)), ("a", 2, (False, 0)), ("b", 1001, (True, 0))],
    ),
]


@pytest.mark.parametrize(("name", "steps"), CASES, ids=[c[0] for c in CASES])
def test_fail_decides_record_or_count(name: str, steps: list[tuple[str, int, tuple[bool, int]]]) -> None:
    digest = FailureDigest(window_ms=1000)
    assert [digest.fail(source, now) for source, now, _ in steps] == [e for _, _, e in steps]


def test_due_returns_ended_windows_once_and_keeps_open_ones() -> None:
    digest = FailureDigest(window_ms=1000)
    for source, now in [("a", 0), ("a", 1), ("a", 2), ("b", 500), ("b", 600), ("c", 0)]:
        digest.fail(source, now)
    assert digest.due(999) == []
    assert digest.due(1000) == [("a", 2)]  # c ended with nothing to count
    assert digest.due(1000) == []
    assert digest.due(1500) == [("b", 1)]
    assert digest.fail("a", 1600) == (True, 0)  # a new window


def test_drain_returns_every_held_count() -> None:
    digest = FailureDigest(window_ms=1000)
    for source, now in [("a", 0), ("a", 1), ("b", 0), ("c", 0), ("c", 1), ("c", 2)]:
        digest.fail(source, now)
    assert sorted(digest.drain()) == [("a", 1), ("c", 2)]
    assert digest.drain() == []


def test_counts_add_up_to_the_failures() -> None:
    digest = FailureDigest(window_ms=1000)
    recorded = 0
    for now in range(0, 5000, 7):
        record, held = digest.fail("a", now)
        recorded += int(record) + held
    recorded += sum(n for _, n in digest.drain())
    assert recorded == len(range(0, 5000, 7))


def test_a_full_table_records_every_failure_of_new_sources() -> None:
    digest = FailureDigest(window_ms=1000, max_sources=2)
    digest.fail("a", 0)
    digest.fail("b", 0)
    assert [digest.fail("c", t) for t in (1, 2)] == [(True, 0), (True, 0)]


def test_a_count_that_could_not_be_written_is_held_again() -> None:
    digest = FailureDigest(window_ms=1000)
    digest.restore("a", 5, 0)
    assert digest.fail("a", 10) == (False, 0)
    assert digest.drain() == [("a", 6)]
