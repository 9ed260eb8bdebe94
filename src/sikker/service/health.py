"""Liveness and readiness, for load balancers and Kubernetes probes.

Live: the process serves HTTP (nothing else is looked at). Ready: the node is unsealed and
its store answers a trivial query within ``READY_TIMEOUT_S``. A probe never waits longer
than that, and while one store check is still outstanding (a store that hangs), the next
probe does not start another: it answers "store unreachable" at once, so probes cannot
pile threads up on a dead database.

Seal provider: a server unsealed through an HSM keeps its root key in memory, so it keeps
serving when the HSM goes away; ``seal_provider`` says whether the HSM could be used now
(checked every ``SEAL_CHECK_INTERVAL_S`` in the background, and by a health call when the last
result is older than ``SEAL_CHECK_FRESH_S``). A change is logged once, as a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from sikker.errors import SikkerError
from sikker.service.base import Deps

log = logging.getLogger("sikker.seal")

READY_TIMEOUT_S = 2.0

SEALED = "sealed"
STORE_UNREACHABLE = "store unreachable"
SEAL_CHECK_INTERVAL_S = 30.0
SEAL_CHECK_FRESH_S = 5.0


class CheckableSeal(Protocol):
    kind: str

    def check(self) -> None:
        """Raise ``SikkerError`` (with a message fit for operators) when unusable now."""


@dataclass(frozen=True, slots=True)
class ProviderState:
    kind: str
    ok: bool
    error: str  # why not, as the provider words it (never the PIN); "" when ok
    checked_at: float  # time.monotonic()


class HealthService:
    def __init__(self, deps: Deps, provider: object | None = None) -> None:
        self.deps = deps
        self._probing = threading.Lock()
        # Only providers that can be checked (the PKCS#11 seal); a key file is read at start.
        self._provider: CheckableSeal | None = provider if hasattr(provider, "check") else None  # type: ignore[assignment]
        self._checking = threading.Lock()
        self._state: ProviderState | None = None

    def seal_provider(self, max_age_s: float = SEAL_CHECK_FRESH_S) -> ProviderState | None:
        """The seal provider's state, ``None`` without a checkable provider. A result younger
        than ``max_age_s`` is reused; while a check is running, the last result is returned."""
        state = self._state
        if self._provider is None:
            return None
        if state is not None and time.monotonic() - state.checked_at < max_age_s:
            return state
        return self.check_seal_provider()

    def check_seal_provider(self) -> ProviderState | None:
        """Check the provider now (a session opened, its key found); logs a change of state."""
        provider = self._provider
        if provider is None:
            return None
        if not self._checking.acquire(blocking=False):
            return self._state  # one check at a time: a hanging HSM cannot pile up threads
        try:
            try:
                provider.check()
                ok, error = True, ""
            except SikkerError as e:
                ok, error = False, e.message
            except Exception as e:  # an unexpected failure of the module: reported, not raised
                ok, error = False, f"seal provider check failed ({type(e).__name__})"
            before = self._state
            self._state = ProviderState(provider.kind, ok, error, time.monotonic())
            if not ok and (before is None or before.ok):
                log.warning(
                    "seal provider %s unusable: %s (still serving: the root key is in memory)",
                    provider.kind,
                    error,
                )
            elif ok and before is not None and not before.ok:
                log.warning("seal provider %s usable again", provider.kind)
            return self._state
        finally:
            self._checking.release()

    def unready_because(self) -> str | None:
        """``None`` when ready, else why not: ``sealed`` (not initialised counts as sealed) or
        ``store unreachable``. Blocks at most ``READY_TIMEOUT_S``."""
        if self.deps.keyring.sealed:
            return SEALED
        if not self._probing.acquire(blocking=False):
            return STORE_UNREACHABLE  # the previous check has not come back yet
        done = threading.Event()
        failed: list[bool] = []

        def probe() -> None:
            try:
                self.deps.db.ping()
            except Exception:  # any store trouble means "not ready", never a 500
                failed.append(True)
            finally:
                done.set()
                self._probing.release()

        threading.Thread(target=probe, name="sikker-ready-probe", daemon=True).start()
        if not done.wait(READY_TIMEOUT_S) or failed:
            return STORE_UNREACHABLE
        return None
