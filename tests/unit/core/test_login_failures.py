"""The sign-in lock rule (core/people.after_failure), with time passed in."""

from __future__ import annotations

from sikker.core.people import NameFailures, after_failure

LIMIT, WINDOW, LOCK = 3, 60_000, 300_000


def _fail(state: NameFailures | None, now: int) -> tuple[NameFailures, bool]:
    return after_failure(state, now, LIMIT, WINDOW, LOCK)


def test_the_limit_within_one_window_starts_a_lock_and_the_count_starts_again() -> None:
    state, started = _fail(None, 1_000)
    assert state == NameFailures(1_000, 1, 0) and not started and not state.locked(1_000)
    state, started = _fail(state, 2_000)
    assert state == NameFailures(1_000, 2, 0) and not started
    state, started = _fail(state, 3_000)
    assert started and state == NameFailures(3_000, 0, 303_000)
    assert state.locked(3_000) and state.locked(302_999) and not state.locked(303_000)


def test_a_failure_after_the_window_starts_a_new_count() -> None:
    state, _ = _fail(None, 0)
    state, _ = _fail(state, 1)
    state, started = _fail(state, WINDOW)  # the window [0, WINDOW) has closed
    assert state == NameFailures(WINDOW, 1, 0) and not started


def test_counting_during_a_lock_keeps_the_lock_and_a_new_lock_extends_it() -> None:
    state = NameFailures(0, 0, LOCK)
    state, started = _fail(state, 10)
    assert state == NameFailures(0, 1, LOCK) and state.locked(LOCK - 1) and not started
    state, _ = _fail(state, 20)
    state, started = _fail(state, 30)
    assert started and state == NameFailures(30, 0, 30 + LOCK)
