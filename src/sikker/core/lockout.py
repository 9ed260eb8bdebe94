"""Throttling of authentication failures (pure; time passed in).

A *key* (a source address, or a claimed machine id) that fails ``failures`` times within
``window_ms`` is throttled for ``lock_ms``: its further FAILURES are refused cheaply (429, no
audit record of their own) instead of each costing a write. A throttled key never stops a
request that authenticates: a correctly signed request or a valid enrollment token is served
whatever others sent from the same address (docs/security.md).

Memory is bounded: at most ``max_keys`` keys are tracked, and ``sweep`` (run by the server's
maintenance job and whenever the table fills) forgets expired throttles and quiet keys.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class Lockout:
    """``failures`` failures within ``window_ms`` throttle a key's failures for ``lock_ms``."""

    failures: int = 10
    window_ms: int = 60_000
    lock_ms: int = 300_000
    max_keys: int = 100_000
    _seen: dict[str, deque[int]] = field(default_factory=dict)
    _locked_until: dict[str, int] = field(default_factory=dict)

    def locked(self, key: str, now_ms: int) -> bool:
        until = self._locked_until.get(key)
        if until is None:
            return False
        if now_ms >= until:
            del self._locked_until[key]
            return False
        return True

    def fail(self, key: str, now_ms: int) -> bool:
        """Record a failure; True when this failure starts a throttle."""
        if len(self._seen) >= self.max_keys or len(self._locked_until) >= self.max_keys:
            self.sweep(now_ms)
        times = self._seen.setdefault(key, deque())
        times.append(now_ms)
        while times and times[0] <= now_ms - self.window_ms:
            times.popleft()
        if len(times) >= self.failures:
            del self._seen[key]
            self._locked_until[key] = now_ms + self.lock_ms
            return True
        return False

    def sweep(self, now_ms: int) -> None:
        """Forget expired throttles and keys with no failure in the window; if the table is
        still full (a flood of distinct keys), forget the oldest half of the rest."""
        self._locked_until = {k: u for k, u in self._locked_until.items() if u > now_ms}
        self._seen = {k: t for k, t in self._seen.items() if t and t[-1] > now_ms - self.window_ms}
        for table in (self._seen, self._locked_until):
            if len(table) >= self.max_keys:
                for key in list(table)[: len(table) // 2]:
                    del table[key]

    def __len__(self) -> int:
        return len(self._seen) + len(self._locked_until)
