from __future__ import annotations

import pytest

from sikker.core.throttle import Throttle


def test_each_key_has_its_own_budget_per_window() -> None:
    throttle = Throttle(limit=3, window_ms=1_000)
    assert [throttle.admit("a", 0) for _ in range(4)] == [True, True, True, False]
    assert throttle.admit("b", 10)  # another key is not affected
    assert not throttle.admit("a", 999)
    assert throttle.admit("a", 1_000)  # a new window


def test_forgetting_keys_beyond_the_cap_starts_with_expired_windows() -> None:
    throttle = Throttle(limit=1, window_ms=1_000, max_keys=2)
    assert throttle.admit("old", 0) and throttle.admit("busy", 900)
    assert throttle.admit("new", 1_200)  # "old" expired and is forgotten, "busy" is kept
    assert not throttle.admit("busy", 1_300)


@pytest.mark.parametrize(("limit", "window_ms", "max_keys"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_bad_budgets_are_refused(limit: int, window_ms: int, max_keys: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        Throttle(limit, window_ms, max_keys)
