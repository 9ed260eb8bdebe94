"""Liveness and readiness, for load balancers and Kubernetes probes.

Live: the process serves HTTP (nothing else is looked at). Ready: the node is unsealed and
its store answers a trivial query within ``READY_TIMEOUT_S``. A probe never waits longer
than that, and while one store check is still outstanding (a store that hangs), the next
probe does not start another: it answers "store unreachable" at once, so probes cannot
pile threads up on a dead database.
"""

from __future__ import annotations

import threading

from sikker.service.base import Deps

READY_TIMEOUT_S = 2.0

SEALED = "sealed"
STORE_UNREACHABLE = "store unreachable"


class HealthService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._probing = threading.Lock()

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
