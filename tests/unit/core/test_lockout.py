"""Failure throttles (core/lockout.py): counted per key, expiring, bounded in memory."""

from __future__ import annotations

from sikker.core.lockout import Lockout


def test_the_nth_failure_in_the_window_starts_a_throttle_that_expires() -> None:
    lock = Lockout(failures=3, window_ms=1_000, lock_ms=5_000)
    assert [lock.fail("a", t) for t in (0, 10, 20)] == [False, False, True]
    assert lock.locked("a", 21) and not lock.locked("b", 21)
    assert lock.locked("a", 5_019) and not lock.locked("a", 5_020)


def test_failures_outside_the_window_do_not_add_up() -> None:
    lock = Lockout(failures=3, window_ms=1_000, lock_ms=5_000)
    assert [lock.fail("a", t) for t in (0, 600, 1_200, 1_800)] == [False, False, False, False]
    assert not lock.locked("a", 1_801)


def test_sweep_forgets_expired_throttles_and_quiet_keys_without_their_return() -> None:
    lock = Lockout(failures=2, window_ms=1_000, lock_ms=5_000)
    for i in range(50):
        lock.fail(f"10.0.0.{i}", 0)
        lock.fail(f"10.0.0.{i}", 1)  # throttled until 5,001
    lock.fail("10.1.0.1", 0)
    assert len(lock) == 51
    lock.sweep(2_000)  # the single failure left the window; the throttles still run
    assert len(lock) == 50
    lock.sweep(5_001)
    assert len(lock) == 0


def test_a_flood_of_distinct_keys_stays_bounded() -> None:
    lock = Lockout(failures=2, window_ms=60_000, lock_ms=300_000, max_keys=1_000)
    for i in range(100_000):
        lock.fail(f"k{i}", i)
        lock.fail(f"k{i}", i)
    assert len(lock) <= 2_000
