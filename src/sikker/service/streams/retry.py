"""When to try a failing stream again (pure: ``now`` and ``jitter`` are passed in).

The delay after the n-th consecutive failure uses *equal jitter*:

    ceiling = min(cap, base * 2 ** (n - 1))
    delay   = ceiling / 2 + jitter * ceiling / 2        jitter in [0, 1)

so the delay lies in ``[ceiling / 2, ceiling)``. Full jitter (``jitter *
ceiling``) spreads load slightly better but can draw a near-zero delay on any
attempt, which lets many servers hammer a collector that has just come back.
Equal jitter keeps a guaranteed floor that still doubles each time while
de-synchronising senders. The caller draws ``jitter`` (``random.random()``),
which keeps this module deterministic under test.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DEFAULT_BASE = 1.0
DEFAULT_CAP = 300.0
# 2**62 seconds dwarfs any sane cap; stopping here avoids float overflow.
_MAX_EXPONENT = 62


def backoff(attempt: int, base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP, jitter: float = 0.0) -> float:
    """Seconds to wait after the ``attempt``-th consecutive failure (1-based).

    Raises ValueError for ``attempt < 1``, non-positive ``base`` or ``cap``, or
    ``jitter`` outside ``[0, 1)``.
    """
    if attempt < 1:
        raise ValueError("attempt counts failures and starts at 1")
    if base <= 0 or cap <= 0:
        raise ValueError("base and cap must be positive")
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    half = ceiling / 2
    return half + jitter * half


@dataclass(frozen=True, slots=True)
class RetryState:
    """Consecutive failures of one stream and when it may be tried next.

    Immutable: each transition returns a new state, so a worker can persist it
    or compare before and after without aliasing surprises.
    """

    attempts: int = 0
    next_attempt_at: float = 0.0

    def due(self, now: float) -> bool:
        """Whether a delivery may be attempted at ``now``."""
        return now >= self.next_attempt_at

    def after_failure(
        self, now: float, jitter: float, base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP
    ) -> RetryState:
        """One more failure: wait ``backoff(attempts + 1)`` from ``now``."""
        attempts = self.attempts + 1
        return replace(
            self,
            attempts=attempts,
            next_attempt_at=now + backoff(attempts, base=base, cap=cap, jitter=jitter),
        )

    def after_success(self) -> RetryState:
        """Delivery worked: forget past failures and allow the next batch at once."""
        return RetryState()
