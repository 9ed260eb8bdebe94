"""The agent's main loop: one worker per secret, each polling its sync-config.

A tick of one worker:
    poll sync-config ─ 403/404 ──────────────────────────── stop managing this secret
          │         └ other error ─ heartbeat error "poll failed: ..."
          ├ first time: admin check (test_admin), then the strategy (check_strategy)
          ├ pending rotation not yet handled ─ rotate ─ confirm | reject
          └ otherwise, grace period over ─ disable the previous user / drop the old password
    heartbeat: on every error, on a change of status, and every ``heartbeat_every`` seconds.

Only the signal handler and the clock touch the outside world besides the injected
``AgentApi`` and provider factory, so tests drive ticks directly.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from sikker.agent.config import DEFAULT_POLL_SECONDS, SyncConfig, parse_credentials
from sikker.agent.rotation import describe, retire_previous, rotate
from sikker.agent.server import AgentApi
from sikker.engines.base import (
    Connection,
    Provider,
    ProviderError,
    UnsupportedStrategy,
    get_provider,
)
from sikker.errors import InvalidInput, NotFound, PermissionDenied, SikkerError

log = logging.getLogger("sikker.agent")
ProviderFactory = Callable[[str, Connection], Provider]
HEARTBEAT_SECONDS = 30.0
STOPPED_MESSAGE = "agent stopped"


@dataclass(frozen=True, slots=True)
class TickResult:
    status: Literal["healthy", "error", "stopped"]
    error: str = ""


class SecretWorker:
    """The state the agent keeps for one secret between ticks (in memory only)."""

    def __init__(
        self,
        secret_id: str,
        api: AgentApi,
        providers: ProviderFactory = get_provider,
        clock: Callable[[], float] = time.time,
        heartbeat_every: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.secret_id = secret_id
        self.next_due = 0.0
        self.terminal: SikkerError | None = None
        self._api = api
        self._providers = providers
        self._clock = clock
        self._heartbeat_every = heartbeat_every
        self._handled: set[str] = set()  # rotation ids confirmed or rejected
        self._retired: set[tuple[str, int]] = set()  # (previous user, disable time) done
        self._admin_checked = False
        self._last_beat: float | None = None
        self._last_status: str | None = None
        self._force_beat = False

    @property
    def stopped(self) -> bool:
        return self.terminal is not None

    def tick(self) -> TickResult:
        """Poll once and do whatever the sync-config asks; never raises."""
        now = self._clock()
        self.next_due = now + DEFAULT_POLL_SECONDS
        try:
            config = self._api.sync_config(self.secret_id)
        except (PermissionDenied, NotFound) as e:
            self.terminal = e
            log.error(
                "secret %s: %s; no longer managing it (deleted or access revoked)", self.secret_id, e.message
            )
            return TickResult("stopped", e.message)
        except Exception as e:
            return self._report(f"poll failed: {describe(e)}")
        self.next_due = now + config.poll_interval
        try:
            error = self._work(config, now)
        except Exception as e:
            error = describe(e)
        return self._report(error)

    def _work(self, config: SyncConfig, now: float) -> str:
        provider = self._providers(config.provider_type, config.connection)
        if not self._admin_checked:
            problems = provider.test_admin()
            if problems:
                return "admin check failed: " + "; ".join(problems)
            problems = provider.check_strategy(config.strategy)
            if problems:  # e.g. dual on MariaDB: say so now, not when a rotation is due
                return "; ".join(problems)
            self._admin_checked = True
        if config.pending and config.pending_rotation_id not in self._handled:
            return self._rotate(config, provider)
        if (
            config.previous_username
            and config.disable_previous_at is not None
            and now >= config.disable_previous_at
        ):
            return self._retire(config, provider, config.previous_username, config.disable_previous_at)
        return ""

    def _rotate(self, config: SyncConfig, provider: Provider) -> str:
        rotation_id = str(config.pending_rotation_id)
        live_text = self._api.live_value(self.secret_id)  # a server error here is retried next tick
        try:
            pending = parse_credentials(str(config.pending_value), config.managed_username, "pending value")
            live = parse_credentials(live_text, config.managed_username, "live value")
        except InvalidInput as e:
            return self._verdict(rotation_id, False, e.message)
        try:
            outcome = rotate(
                provider,
                config.strategy,
                live,
                pending,
                config.managed_username,
                config.connection.admin_user,
            )
        except ProviderError as e:
            # Nothing was changed; the rotation stays pending and is retried next tick.
            return f"rotation {rotation_id} waits: preflight failed: {e.message}"
        if outcome.resumed:
            log.info("secret %s: rotation %s was already applied; verifying it", self.secret_id, rotation_id)
        return self._verdict(rotation_id, outcome.confirmed, outcome.error)

    def _verdict(self, rotation_id: str, confirmed: bool, error: str) -> str:
        if confirmed:
            self._api.confirm(self.secret_id, rotation_id)
            log.info("secret %s: rotation %s applied, verified and confirmed", self.secret_id, rotation_id)
        else:
            self._api.reject(self.secret_id, rotation_id, error)
            log.error("secret %s: rotation %s rejected: %s", self.secret_id, rotation_id, error)
        self._handled.add(rotation_id)
        self._force_beat = True
        return error

    def _retire(self, config: SyncConfig, provider: Provider, previous: str, disable_at: int) -> str:
        key = (previous, disable_at)
        if key in self._retired:
            return ""
        # Read the live value now, not from an older config: the live user is never disabled.
        live = parse_credentials(self._api.live_value(self.secret_id), config.managed_username, "live value")
        if config.pending and config.pending_value:
            pending = parse_credentials(config.pending_value, config.managed_username, "pending value")
            if pending.username == previous:
                return ""  # it is about to become live again
        try:
            retired = retire_previous(provider, config.strategy, previous, live)
        except UnsupportedStrategy as e:
            self._retired.add(key)  # it will never work: report it once, not every tick
            return e.message
        if retired:
            log.info(
                "secret %s: grace period over; retired the previous credentials of %r",
                self.secret_id,
                previous,
            )
        self._retired.add(key)
        return ""

    def _report(self, error: str) -> TickResult:
        status: Literal["healthy", "error"] = "error" if error else "healthy"
        now = self._clock()
        due = (
            bool(error)
            or self._force_beat
            or status != self._last_status
            or self._last_beat is None
            or now - self._last_beat >= self._heartbeat_every
        )
        if error:
            log.warning("secret %s: %s", self.secret_id, error)
        if due:
            self.heartbeat(status, error)
            self._last_beat, self._last_status, self._force_beat = now, status, False
        return TickResult(status, error)

    def heartbeat(self, status: Literal["healthy", "error"], error: str = "") -> None:
        """Send one heartbeat; a failure is logged, never raised."""
        try:
            self._api.heartbeat(self.secret_id, status, error)
        except Exception as e:
            log.warning("secret %s: heartbeat failed: %s", self.secret_id, describe(e))


class Agent:
    """Runs the workers of several secrets until stopped or none is left."""

    def __init__(
        self,
        secret_ids: list[str],
        api: AgentApi,
        providers: ProviderFactory = get_provider,
        clock: Callable[[], float] = time.time,
        heartbeat_every: float = HEARTBEAT_SECONDS,
    ) -> None:
        self._clock = clock
        self.workers = [
            SecretWorker(s, api, providers, clock, heartbeat_every) for s in dict.fromkeys(secret_ids)
        ]

    def run(self, stop: threading.Event, once: bool = False) -> dict[str, TickResult]:
        """Tick every due worker until ``stop`` is set (or, with ``once``, one tick each)."""
        results: dict[str, TickResult] = {}
        while not stop.is_set():
            active = [w for w in self.workers if not w.stopped]
            if not active:
                break
            for worker in active:
                if stop.is_set():
                    break
                if once or worker.next_due <= self._clock():
                    results[worker.secret_id] = worker.tick()
            if once:
                break
            due = min((w.next_due for w in self.workers if not w.stopped), default=self._clock())
            stop.wait(max(0.0, min(due - self._clock(), HEARTBEAT_SECONDS)))
        if stop.is_set():
            for worker in self.workers:
                if not worker.stopped:
                    worker.heartbeat("error", STOPPED_MESSAGE)
        return results


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop`` (the current step finishes); a second signal acts as usual."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handle(signum: int, frame: object) -> None:
        log.info("received %s: stopping after the current step", signal.Signals(signum).name)
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
