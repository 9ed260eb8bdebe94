"""``run``'s child handling: exit codes, signal forwarding and restarts on real changes only."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sikker.cli.supervisor import exit_status, supervise
from sikker.errors import RateLimited, Unavailable

INTERVAL = 0.1


class FakeSource:
    """Secrets ``{id: value}``; each poll answers the next scripted item (then no changes)."""

    def __init__(self, values: dict[str, str], polls: list[Any] = (), updates: dict[str, str] | None = None):
        self.values = dict(values)
        self.polls = list(polls)
        self.updates = updates or {}
        self.polled: list[tuple[float, list[str]]] = []
        self.refreshed: list[list[str]] = []

    def ids(self) -> list[str]:
        return list(self.values)

    def env(self) -> dict[str, str]:
        return {k.upper(): v for k, v in self.values.items()}

    def poll(self, ids: list[str]) -> dict[str, Any]:
        self.polled.append((time.monotonic(), list(ids)))
        item = self.polls.pop(0) if self.polls else {}
        if isinstance(item, Exception):
            raise item
        return item

    def refresh(self, changed: list[str]) -> None:
        self.refreshed.append(changed)
        for secret_id in changed:
            self.values[secret_id] = self.updates.get(secret_id, self.values[secret_id])


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def run(source: FakeSource, script: str, watch: bool = False, grace: float = 2.0) -> tuple[int, list[str]]:
    warnings: list[str] = []
    status = supervise(source, sh(script), watch=watch, interval=INTERVAL, warn=warnings.append, grace=grace)
    return status, warnings


@pytest.mark.parametrize(("returncode", "expected"), [(0, 0), (3, 3), (-15, 143), (-9, 137)])
def test_exit_status_is_the_code_or_128_plus_signal(returncode: int, expected: int) -> None:
    assert exit_status(returncode) == expected


def test_child_gets_parent_env_plus_secrets_and_its_exit_code_is_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_PARENT", "p")
    out = tmp_path / "out"
    status, _ = run(FakeSource({"db": "s3cr3t"}), f'printf "%s %s" "$FROM_PARENT" "$DB" > {out}; exit 7')
    assert status == 7
    assert out.read_text() == "p s3cr3t"


def test_child_killed_by_a_signal_gives_128_plus_the_signal() -> None:
    assert run(FakeSource({"a": "1"}), "kill -TERM $$")[0] == 128 + signal.SIGTERM


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT])
def test_signals_sent_to_us_are_forwarded_to_the_child(tmp_path: Path, sig: signal.Signals) -> None:
    ready = tmp_path / "ready"

    def send_when_ready() -> None:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), sig)

    threading.Thread(target=send_when_ready, daemon=True).start()
    script = f'trap "exit 42" {sig.name[3:]}; touch {ready}; while :; do sleep 0.05; done'
    assert run(FakeSource({"a": "1"}), script)[0] == 42


WATCHED_CHILD = 'echo "$A" >> {log}; [ "$A" = v2 ] && exit 3; exec sleep 30'


def test_watch_restarts_the_child_with_the_new_value(tmp_path: Path) -> None:
    log = tmp_path / "log"
    source = FakeSource({"a": "v1"}, polls=[{"a": {"status": "changed"}}], updates={"a": "v2"})
    status, warnings = run(source, WATCHED_CHILD.format(log=log), watch=True)
    assert status == 3
    assert log.read_text().split() == ["v1", "v2"]
    assert source.refreshed == [["a"]]
    assert any("restarting" in w for w in warnings)


def test_watch_does_not_restart_when_the_environment_is_unchanged(tmp_path: Path) -> None:
    log = tmp_path / "log"
    source = FakeSource({"a": "v1"}, polls=[{"a": {"status": "changed"}}] * 3)
    status, _ = run(source, f'echo "$A" >> {log}; sleep 0.8; exit 5', watch=True)
    assert status == 5
    assert log.read_text().split() == ["v1"]
    assert len(source.refreshed) == 3


def test_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = f'trap "" TERM; echo "$A" >> {log}; [ "$A" = v2 ] && exit 3; while :; do sleep 0.05; done'
    source = FakeSource({"a": "v1"}, polls=[{"a": {"status": "changed"}}], updates={"a": "v2"})
    started = time.monotonic()
    status, _ = run(source, script, watch=True, grace=0.3)
    assert status == 3
    assert log.read_text().split() == ["v1", "v2"]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("gone", ["deleted", "access_denied"])
def test_deleted_or_denied_secret_is_no_longer_watched_and_keeps_its_value(tmp_path: Path, gone: str) -> None:
    out = tmp_path / "out"
    source = FakeSource({"a": "1", "b": "2"}, polls=[{"a": {"status": gone}}])
    status, warnings = run(source, f'echo "$A" > {out}; sleep 0.6; exit 0', watch=True)
    assert status == 0
    assert out.read_text() == "1\n"
    assert source.polled[0][1] == ["a", "b"]
    assert all(ids == ["b"] for _, ids in source.polled[1:])
    assert source.refreshed == []
    assert any(w.startswith("secret a ") and "last value" in w for w in warnings)


def test_when_nothing_is_left_to_watch_the_child_just_runs_to_its_end() -> None:
    source = FakeSource({"a": "1"}, polls=[{"a": {"status": "deleted"}}])
    status, warnings = run(source, "sleep 0.5; exit 9", watch=True)
    assert status == 9
    assert len(source.polled) == 1
    assert any("no secrets left" in w for w in warnings)


def test_rate_limited_poll_backs_off_one_interval() -> None:
    source = FakeSource({"a": "1"}, polls=[RateLimited("slow down")])
    run(source, "sleep 0.7", watch=True)
    (first, _), (second, _) = source.polled[:2]
    assert second - first >= 2 * INTERVAL * 0.95


def test_failed_poll_keeps_the_child_running_and_polling() -> None:
    source = FakeSource({"a": "1"}, polls=[Unavailable("down"), {"a": {"status": "unknown"}}])
    status, warnings = run(source, "sleep 0.6; exit 4", watch=True)
    assert status == 4
    assert len(source.polled) >= 3
    assert any("poll failed: down" in w for w in warnings)
