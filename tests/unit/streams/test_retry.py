from __future__ import annotations

import pytest

from sikker.service.streams.retry import RetryState, backoff


def test_backoff_doubles_from_base() -> None:
    ceilings = [backoff(n, base=1.0, cap=1000.0, jitter=0.0) * 2 for n in range(1, 8)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 64]


def test_backoff_is_capped() -> None:
    assert backoff(10, base=1.0, cap=300.0, jitter=0.999999) < 300.0
    assert backoff(10, base=1.0, cap=300.0, jitter=0.0) == 150.0
    assert backoff(10_000, base=1.0, cap=300.0, jitter=0.5) == 225.0  # no overflow either


@pytest.mark.parametrize("attempt", [1, 2, 5, 12, 40])
def test_jitter_keeps_delay_between_half_and_full_ceiling(attempt: int) -> None:
    ceiling = min(300.0, 2.0 ** (attempt - 1))
    low = backoff(attempt, jitter=0.0)
    high = backoff(attempt, jitter=0.9999)
    assert low == ceiling / 2
    assert low <= high < ceiling
    assert low <= backoff(attempt, jitter=0.37) <= high


def test_backoff_never_shrinks_as_failures_accumulate() -> None:
    floors = [backoff(n, jitter=0.0) for n in range(1, 20)]
    assert floors == sorted(floors)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0},
        {"attempt": 1, "jitter": 1.0},
        {"attempt": 1, "jitter": -0.1},
        {"attempt": 1, "base": 0.0},
        {"attempt": 1, "cap": -1.0},
    ],
)
def test_backoff_rejects_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        backoff(**kwargs)  # type: ignore[arg-type]


def test_retry_state_schedules_after_failures_and_resets_on_success() -> None:
    state = RetryState()
    assert state.due(0.0)
    state = state.after_failure(now=100.0, jitter=0.0)
    assert state == RetryState(attempts=1, next_attempt_at=100.5)
    assert not state.due(100.4) and state.due(100.5)
    state = state.after_failure(now=101.0, jitter=0.5)
    assert state == RetryState(attempts=2, next_attempt_at=101.0 + 1.5)
    assert state.after_success() == RetryState()


def test_retry_state_honours_base_and_cap() -> None:
    state = RetryState(attempts=50)
    assert state.after_failure(now=0.0, jitter=0.0, base=2.0, cap=60.0).next_attempt_at == 30.0


def test_retry_state_is_immutable() -> None:
    state = RetryState()
    state.after_failure(now=1.0, jitter=0.0)
    assert state.attempts == 0
    with pytest.raises(AttributeError):
        state.attempts = 3  # type: ignore[misc]
