"""Per-key call budgets in fixed windows (pure: the time comes in as an argument).

Used where a caller needs no credential but must not be able to hammer an endpoint,
e.g. unseal calls per source address. Not thread-safe: the owner holds a lock.
"""

from __future__ import annotations


class Throttle:
    """At most ``limit`` calls per key in each window of ``window_ms``; at most ``max_keys``
    keys are remembered (expired windows go first, then the least recently counted)."""

    def __init__(self, limit: int, window_ms: int, max_keys: int = 10_000) -> None:
        if limit < 1 or window_ms < 1 or max_keys < 1:
            raise ValueError("limit, window_ms and max_keys must be positive")
        self.limit = limit
        self.window_ms = window_ms
        self.max_keys = max_keys
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window start, calls in it)

    def admit(self, key: str, now_ms: int) -> bool:
        """Count one call of ``key`` at ``now_ms``; False when its budget is spent."""
        start, count = self._windows.get(key, (now_ms, 0))
        if now_ms - start >= self.window_ms or now_ms < start:
            start, count = now_ms, 0
        if count >= self.limit:
            return False
        if key not in self._windows and len(self._windows) >= self.max_keys:
            self._evict(now_ms)
        self._windows.pop(key, None)  # re-inserted last: the dict runs least recent first
        self._windows[key] = (start, count + 1)
        return True

    def _evict(self, now_ms: int) -> None:
        for key, (start, _) in list(self._windows.items()):
            if now_ms - start >= self.window_ms:
                del self._windows[key]
        while len(self._windows) >= self.max_keys:
            del self._windows[next(iter(self._windows))]
