"""``sikker run --dynamic``: a fresh database credential for one command's lifetime.

The lease is taken before the command starts (``POST /v1/dynamic/{id}/leases``), renewed in
the background at two thirds of its remaining time (``POST /v1/leases/{id}/renew``) and
revoked when the command ends, however it ends (``DELETE /v1/leases/{id}``). The command gets
``{PREFIX}_USERNAME``, ``{PREFIX}_PASSWORD`` and ``{PREFIX}_LEASE_ID``; the prefix is the
dynamic secret's name flattened as structured secrets are (``pg-ro`` -> ``PG_RO``), or
``--dynamic-env``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sikker.cli.environment import merge
from sikker.cli.machine_client import MachineClient, check_id, encode
from sikker.cli.supervisor import Source
from sikker.core.signing import env_name
from sikker.errors import InvalidInput, NotFound, SikkerError

RETRY_SECONDS = 30.0  # after a failed renewal, while the lease still has time left
MIN_WAIT_SECONDS = 1.0


def resolve_dynamic(client: MachineClient, given: str) -> tuple[str, str]:
    """(id, name) of a dynamic secret granted to this machine, given its id or its name."""
    granted = [s for s in client.cli_secrets() if given in (s.get("id"), s.get("name"))]
    by_id = [s for s in granted if s.get("id") == given]
    found = by_id or granted
    if not found:
        raise NotFound(f"no secret {given!r} is granted to this machine ('sikker list' shows them)")
    if len(found) > 1:
        raise InvalidInput(f"several granted secrets are named {given!r}: pass the id instead")
    return check_id("dynamic secret", str(found[0]["id"])), str(found[0].get("name") or given)


def env_prefix(name: str, override: str | None) -> str:
    """The variable prefix: ``override`` or the secret's name, flattened like a structured secret."""
    prefix = env_name(override if override is not None else name)
    if not prefix or prefix[0].isdigit():
        raise InvalidInput(
            f"cannot make environment variable names from {override or name!r}: give --dynamic-env"
        )
    return prefix


def _seconds_left(expires_at_ms: Any, now: float) -> float:
    return float(expires_at_ms) / 1000.0 - now if isinstance(expires_at_ms, int | float) else 0.0


class DynamicLease:
    """One lease held while a command runs: taken by ``open``, renewed by a daemon thread,
    revoked by ``close`` (idempotent)."""

    def __init__(
        self,
        client: MachineClient,
        dynamic_id: str,
        prefix: str,
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._dynamic_id = dynamic_id
        self._prefix = prefix
        self._warn = warn
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lease_id: str | None = None
        self.expires_at: Any = None
        self.max_expires_at: Any = None
        self.renewable = False
        self._variables: dict[str, str] = {}

    def open(self, ttl: int | None = None) -> dict[str, str]:
        """Take the lease and start renewing it; returns the variables to inject."""
        body = encode({"ttl": ttl}) if ttl is not None else None
        data = self._client.request("POST", f"/v1/dynamic/{self._dynamic_id}/leases", body)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) for k in ("leaseId", "username", "password")
        ):
            raise SikkerError("malformed lease from the server: needs leaseId, username and password")
        self.lease_id = check_id("lease", data["leaseId"])
        self._update(data)
        self._variables = {
            f"{self._prefix}_USERNAME": data["username"],
            f"{self._prefix}_PASSWORD": data["password"],
            f"{self._prefix}_LEASE_ID": data["leaseId"],
        }
        self._thread = threading.Thread(target=self._renew_loop, name="sikker-lease-renewal", daemon=True)
        self._thread.start()
        return dict(self._variables)

    def env(self) -> dict[str, str]:
        return dict(self._variables)

    def _update(self, data: dict[str, Any]) -> None:
        self.expires_at = data.get("expiresAt")
        self.max_expires_at = data.get("maxExpiresAt")
        self.renewable = bool(data.get("renewable"))

    def next_renewal(self) -> float | None:
        """Seconds until the next renewal (two thirds of the time left), or None when the
        lease cannot be renewed any more."""
        if not self.renewable:
            return None
        left = _seconds_left(self.expires_at, self._clock())
        return max(MIN_WAIT_SECONDS, left * 2 / 3)

    def renew(self) -> None:
        """Renew once now; a failure leaves the lease as it was and raises."""
        data = self._client.request("POST", f"/v1/leases/{self.lease_id}/renew", encode({}))
        if not isinstance(data, dict):
            raise SikkerError("malformed renewal answer from the server")
        self._update(data)

    def _renew_loop(self) -> None:
        warned_final = False
        while True:
            wait = self.next_renewal()
            if wait is None:
                if not warned_final:
                    self._warn(f"lease {self.lease_id} cannot be renewed further; it ends at its max TTL")
                    warned_final = True
                return
            if self._stop.wait(wait):
                return
            try:
                self.renew()
            except SikkerError as e:
                left = _seconds_left(self.expires_at, self._clock())
                self._warn(f"could not renew lease {self.lease_id}: {e.message}")
                if left <= 0:
                    return
                if self._stop.wait(min(RETRY_SECONDS, max(MIN_WAIT_SECONDS, left / 3))):
                    return

    def close(self) -> None:
        """Stop renewing and revoke the lease; a failure is a warning (the server's expiry
        and sweeper end it anyway)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lease_id is None:
            return
        lease_id, self.lease_id = self.lease_id, None
        try:
            self._client.request("DELETE", f"/v1/leases/{lease_id}")
        except SikkerError as e:
            self._warn(f"could not revoke lease {lease_id}: {e.message}; it ends at its expiry")


class LeasedSource:
    """A run's secret variables plus a dynamic lease's credential (which never changes:
    renewal keeps the user and its password)."""

    def __init__(self, inner: Source, leased: dict[str, str], warn: Callable[[str], None]) -> None:
        self._inner = inner
        self._leased = leased
        self._warn = warn

    def ids(self) -> list[str]:
        return self._inner.ids()

    def env(self) -> dict[str, str]:
        return merge([self._inner.env(), self._leased], self._warn)

    def poll(self, ids: list[str]) -> dict[str, Any]:
        return self._inner.poll(ids)

    def refresh(self, changed: list[str]) -> None:
        self._inner.refresh(changed)
