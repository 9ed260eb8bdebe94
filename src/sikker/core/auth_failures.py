"""Which failed authentications are audited one by one, and which as a count (pure).

A flood of bad tokens from one address must not write one audit record per request. The
first failure from a source opens a window and is recorded at once; the failures after it
within the window are only counted. The count is recorded as ONE record when the window has
ended: by the next failure from that source, by a periodic ``due``, or by ``drain`` at
shutdown. Counts are never dropped: a source that cannot get a window (the table is full)
has each failure recorded at once, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class FailureDigest:
    window_ms: int = 60_000
    max_sources: int = 100_000
    # source -> (window start, failures counted after the first)
    _open: dict[str, tuple[int, int]] = field(default_factory=dict)

    def fail(self, source: str, now_ms: int) -> tuple[bool, int]:
        """Note a failure. Returns (record this failure now, the count of this source's
        ended window to record with it, 0 if none)."""
        window = self._open.get(source)
        if window is not None:
            start, held = window
            if now_ms < start + self.window_ms:
                self._open[source] = (start, held + 1)
                return False, 0
            del self._open[source]
        else:
            held = 0
        if len(self._open) < self.max_sources:
            self._open[source] = (now_ms, 0)
        return True, held

    def due(self, now_ms: int) -> list[tuple[str, int]]:
        """The counts of every window that has ended (each returned once; ended windows
        are forgotten)."""
        ended = [s for s, (start, _) in self._open.items() if now_ms >= start + self.window_ms]
        return [(s, held) for s in ended if (held := self._open.pop(s)[1])]

    def drain(self) -> list[tuple[str, int]]:
        """Every count still held (at shutdown); forget all windows."""
        held = [(s, n) for s, (_, n) in self._open.items() if n]
        self._open.clear()
        return held

    def restore(self, source: str, count: int, now_ms: int) -> None:
        """Hold ``count`` again (its record could not be written): it goes out with the next."""
        start, held = self._open.get(source, (now_ms, 0))
        self._open[source] = (start, held + count)
