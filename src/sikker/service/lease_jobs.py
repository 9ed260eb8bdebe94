"""Revocation jobs of leases and the sweeper (the half of ``service/leases.py`` that runs in
the background on every node).

A job is a lease row in state ``revoking`` with ``next_attempt_ms``. Whoever runs it (any
node's sweeper, or a request asking for a synchronous revocation) first claims it by
compare-and-set on ``claimed_by``/``claim_until_ms``, then talks to the database with no
store transaction open, then records the outcome: ``revoked``, or the next attempt after an
exponential backoff (1 s doubling, cap 30 s, never given up). A success pulls the other
waiting jobs of the same dynamic secret forward to now: its database is back, so a backlog
queued across an outage does not wait out its backoff. (Keyed by ``dynamic_secret_id``, a plain
column; the database's address is only in the sealed snapshot, and other dynamic secrets on
the same database still wait at most the 30 s cap.) A job pending for 15 minutes writes a
``system:lease:stalled`` record (high) once an hour.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sikker.core import dynamic
from sikker.core.audit import SYSTEM_ACTOR, Action
from sikker.core.dynamic import Lease
from sikker.errors import SikkerError
from sikker.service.base import Deps
from sikker.service.dynamic_targets import Targets, decode_snapshot, open_part, statement_parts
from sikker.storage import audit as audit_store
from sikker.storage import dynamic as store
from sikker.storage import vaults as vault_store

log = logging.getLogger(__name__)
CLAIM_MS = 120_000
SWEEP_BUDGET_S = 5.0
EXPIRE_PAGE = 500
# Revocations run at once by one sweep; Targets allows at most PER_TARGET per database.
REVOKE_WORKERS = 8


class LeaseJobs:
    def __init__(self, deps: Deps, targets: Targets) -> None:
        self.deps = deps
        self.targets = targets
        self.node = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"

    def _expire(self, due: list[tuple[Lease, str]], now: int) -> None:
        """Queue one page of ended leases as revocation jobs, in one write transaction."""
        with self.deps.db.write() as conn:
            for lease, reason in due:
                if store.queue_revocations(conn, now, reason, "system", lease_ids=[lease.id]):
                    audit_store.append(
                        conn,
                        lease.vault_id,
                        now,
                        SYSTEM_ACTOR,
                        Action.SYSTEM_LEASE_EXPIRE,
                        audit_target(lease),
                        "ok",
                        reason,
                    )

    # -- revocation jobs -------------------------------------------------------------------------
    def attempt(self, lease_id: str) -> bool:
        """One revocation attempt of a 'revoking' lease, if this caller wins its claim."""
        now = self.deps.clock()
        try:
            with self.deps.db.write() as conn:
                lease = store.get_lease(conn, lease_id)
                if lease is None or lease.state != "revoking":
                    return False
                if not store.claim(conn, lease.id, self.node, now, now + CLAIM_MS):
                    return False
                project = vault_store.get_project(conn, lease.project_id)
                sealed = store.sealed_snapshot(conn, lease.id)
                assert project is not None and sealed is not None
                snapshot = decode_snapshot(
                    open_part(self.deps, conn, project, lease.dynamic_secret_id, lease.id, "snapshot", sealed)
                )
        except SikkerError as e:
            log.warning("lease %s: cannot start its revocation: %s", lease_id, e.message)
            return False
        try:
            with self.deps.db.read() as conn:
                admin = self.targets.admin_login(conn, lease.vault_id, snapshot.admin_secret_id)
            parts = statement_parts(snapshot.revocation_statements)
            self.targets.call(
                lease.dynamic_secret_id,
                snapshot,
                admin,
                lambda p: p.revoke_user(snapshot.username, parts, snapshot.grant_role),
            )
        except SikkerError as e:
            self._attempt_failed(lease, e.message)
            return False
        done = self.deps.clock()
        with self.deps.db.write() as conn:
            if store.set_state(
                conn,
                lease.id,
                ("revoking",),
                state="revoked",
                revoked_ms=done,
                claimed_by=None,
                claim_until_ms=None,
                last_error=None,
                attempts=lease.attempts + 1,
            ):
                audit_store.append(
                    conn,
                    lease.vault_id,
                    done,
                    SYSTEM_ACTOR,
                    Action.SYSTEM_LEASE_REVOKE,
                    audit_target(lease),
                    "ok",
                    (lease.revoke_reason or "")[:300],
                )
            store.pull_forward(conn, lease.dynamic_secret_id, done)
        return True

    def _attempt_failed(self, lease: Lease, message: str) -> None:
        now = self.deps.clock()
        attempts = lease.attempts + 1
        with self.deps.db.write() as conn:
            store.set_state(
                conn,
                lease.id,
                ("revoking",),
                attempts=attempts,
                next_attempt_ms=now + dynamic.backoff_ms(attempts),
                last_error=message[:500],
                claimed_by=None,
                claim_until_ms=None,
            )
            audit_store.append(
                conn,
                lease.vault_id,
                now,
                SYSTEM_ACTOR,
                Action.SYSTEM_LEASE_FAIL,
                audit_target(lease),
                "error",
                f"revocation attempt {attempts}: {message}"[:500],
            )
            if dynamic.needs_alert(lease, now) and store.set_state(
                conn, lease.id, ("revoking",), alerted_ms=now
            ):
                waited = (now - (lease.revoke_requested_ms or now)) // 60_000
                audit_store.append(
                    conn,
                    lease.vault_id,
                    now,
                    SYSTEM_ACTOR,
                    Action.SYSTEM_LEASE_STALLED,
                    audit_target(lease),
                    "error",
                    f"revocation pending for {waited} minutes: {message}"[:500],
                )

    def sweep(self) -> Swept:
        """Expire due leases and run due revocation jobs, in bounded pages, for at most
        ``SWEEP_BUDGET_S`` (every node runs this; claims make each job run once).

        Jobs run ``REVOKE_WORKERS`` at a time, each claimed, run and recorded by ``attempt``
        (no store transaction is open while a database is called; ``Targets`` still bounds
        the calls per database). ``more`` says the budget ran out with work left."""
        if self.deps.keyring.sealed:
            return Swept(0, False)
        started = time.monotonic()
        while True:
            now = self.deps.clock()
            with self.deps.db.read() as conn:
                expiring = store.due_to_expire(conn, now, now - dynamic.CREATING_GRACE_MS)
                gone = store.machine_gone(conn, now)
            ended = [(x, "expired" if x.state == "active" else "creation interrupted") for x in expiring]
            if ended or gone:
                self._expire(ended + gone, now)
            if len(expiring) < EXPIRE_PAGE and len(gone) < EXPIRE_PAGE:
                break
            if time.monotonic() - started > SWEEP_BUDGET_S:
                return Swept(0, True)
        revoked = 0
        seen: set[str] = set()  # a job that could not even start waits for the next sweep
        with ThreadPoolExecutor(REVOKE_WORKERS, thread_name_prefix="lease-revoke") as pool:
            while True:
                with self.deps.db.read() as conn:
                    due = [x.id for x in store.due_revocations(conn, self.deps.clock()) if x.id not in seen]
                if not due:
                    with self.deps.db.read() as conn:
                        return Swept(revoked, False, store.next_due_ms(conn))
                seen.update(due)
                revoked += sum(pool.map(self.attempt, due))
                if time.monotonic() - started > SWEEP_BUDGET_S:
                    return Swept(revoked, True)


@dataclass(frozen=True, slots=True)
class Swept:
    revoked: int
    more: bool  # the sweep's budget ran out with work left: run the next one at once
    next_due_ms: int | None = None  # the earliest lease end or job due time still ahead

    def wait_s(self, now_ms: int) -> float | None:
        """Seconds until the next sweep should start, if sooner than the fixed interval could
        be: at once with work left, else at the next lease's end (a lease is then dropped
        within about ``MIN_WAIT_S`` of its end instead of within one interval)."""
        if self.more:
            return 0.0
        if self.next_due_ms is None:
            return None
        return max(MIN_WAIT_S, (self.next_due_ms - now_ms) / 1000)


MIN_WAIT_S = 0.25  # the sweeper never runs more than four times a second


def audit_target(lease: Lease) -> dict[str, str]:
    return {
        "project": lease.project_id,
        "secret": lease.dynamic_secret_id,
        "lease": lease.id,
        "username": lease.username,
        **({"machine": lease.machine_id} if lease.machine_id else {}),
    }
