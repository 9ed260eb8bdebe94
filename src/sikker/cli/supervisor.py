"""``sikker run``: a child process with secrets in its environment, restarted when they change."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

from sikker.errors import RateLimited, SikkerError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# SIGHUP often means "reload", so only these make us stop restarting the child.
TERMINATING = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
STOP_GRACE_SECONDS = 10.0
DROPPED = {"deleted": "was deleted", "access_denied": "is no longer readable by this machine"}


class Source(Protocol):
    """Where the injected secrets come from (a fake in tests)."""

    def ids(self) -> list[str]: ...

    def env(self) -> dict[str, str]: ...

    def poll(self, ids: list[str]) -> dict[str, Any]: ...

    def refresh(self, changed: list[str]) -> None: ...


def exit_status(returncode: int) -> int:
    """A shell's view of the child's end: its exit code, or 128+N if signal N killed it."""
    return 128 - returncode if returncode < 0 else returncode


class Child:
    """The command, one process at a time; signals sent to us are passed on to it."""

    def __init__(self, cmd: Sequence[str], grace: float = STOP_GRACE_SECONDS) -> None:
        self.cmd = list(cmd)
        self.grace = grace
        self.stopping = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: int | None = None

    def start(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(self.cmd, env=env)
        if self._pending is not None:
            self._proc.send_signal(self._pending)
            self._pending = None

    def forward(self, signum: int, _frame: FrameType | None = None) -> None:
        if signum in TERMINATING:
            self.stopping = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signum)
        else:
            self._pending = signum

    def wait(self, timeout: float) -> int | None:
        """The exit status if the child ends within ``timeout`` seconds, else None."""
        assert self._proc is not None
        try:
            return exit_status(self._proc.wait(timeout))
        except subprocess.TimeoutExpired:
            return None

    def join(self) -> int:
        assert self._proc is not None
        return exit_status(self._proc.wait())

    def restart(self, env: dict[str, str]) -> None:
        """SIGTERM, up to ``grace`` seconds to finish, then SIGKILL; then start afresh."""
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(self.grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if not self.stopping:
            self.start(env)

    @contextmanager
    def signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.forward) for sig in FORWARDED}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def supervise(
    source: Source,
    cmd: Sequence[str],
    *,
    watch: bool,
    interval: float,
    warn: Callable[[str], None],
    grace: float = STOP_GRACE_SECONDS,
) -> int:
    """Run ``cmd`` with the secrets in its environment; returns the exit status to end with.

    With ``watch``, poll every ``interval`` seconds and restart the child only when the
    variables it would get really differ; a secret that is deleted or no longer granted
    keeps its last value and is no longer watched.
    """
    child = Child(cmd, grace)
    env = source.env()
    with child.signals():
        child.start({**os.environ, **env})
        if not watch:
            return child.join()
        dropped: set[str] = set()
        delay = interval
        while True:
            status = child.wait(delay)
            if status is not None:
                return status
            delay = interval
            watched = [i for i in source.ids() if i not in dropped]
            if not watched:
                warn("no secrets left to watch")
                return child.join()
            try:
                changes = source.poll(watched)
            except RateLimited:
                warn("poll rate-limited by the server; backing off")
                delay = 2 * interval
                continue
            except SikkerError as e:
                warn(f"poll failed: {e.message}")
                continue
            changed = _triage(changes, watched, dropped, warn)
            if not changed:
                continue
            try:
                source.refresh(changed)
            except SikkerError as e:
                warn(f"could not fetch changed secrets: {e.message}")
                continue
            fresh = source.env()
            if fresh != env and not child.stopping:
                env = fresh
                warn("secrets changed; restarting the command")
                child.restart({**os.environ, **env})


def _triage(
    changes: dict[str, Any], watched: list[str], dropped: set[str], warn: Callable[[str], None]
) -> list[str]:
    """Ids to re-fetch; ids that are gone move to ``dropped``. Unknown statuses are ignored."""
    changed = []
    for secret_id, change in changes.items():
        status = change.get("status") if isinstance(change, dict) else None
        if secret_id not in watched:
            continue
        if status == "changed":
            changed.append(secret_id)
        elif status in DROPPED:
            dropped.add(secret_id)
            warn(f"secret {secret_id} {DROPPED[status]}; keeping its last value, no longer watching it")
    return changed
