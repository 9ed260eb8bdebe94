"""Per-source lockout after repeated authentication failures (pure; time passed in)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class Lockout:
    """``failures`` failures within ``window_ms`` lock a source out for ``lock_ms``."""

    failures: int = 10
    window_ms: int = 60_000
    lock_ms: int = 300_000
    max_sources: int = 100_000
    _seen: dict[str, deque[int]] = field(default_factory=dict)
    _locked_until: dict[str, int] = field(default_factory=dict)

    def locked(self, source: str, now_ms: int) -> bool:
        until = self._locked_until.get(source)
        if until is None:
            return False
        if now_ms >= until:
            del self._locked_until[source]
            return False
        return True

    def fail(self, source: str, now_ms: int) -> bool:
        """Record a failure; True when this failure starts a lockout."""
        if len(self._seen) >= self.max_sources:
            self._evict(now_ms)
        times = self._seen.setdefault(source, deque())
        times.append(now_ms)
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()
        if len(times) >= self.failures:
            times.clear()
            self._locked_until[source] = now_ms + self.lock_ms
            return True
        return False

    def _evict(self, now_ms: int) -> None:
        stale = [s for s, t in self._seen.items() if not t or t[-1] <= now_ms - self.window_ms]
        for source in stale:
            del self._seen[source]
        if len(self._seen) >= self.max_sources:
            self._seen.clear()
