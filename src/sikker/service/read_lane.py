"""The read lane: signed secret reads with no store round trip of their own.

A node keeps, per (machine, secret), a *read plan*: what a successful signed read of that
secret by that machine needs (the machine's public key and state, the live version sealed,
its project and the project's wrapped key), filled from one read transaction and tagged with
the *access epoch* it saw. The epoch is a counter that triggers bump on every change that can
alter a read's outcome (machines, memberships, grants, secrets, versions, projects, canaries;
migration 0008), whatever code path or node makes the change.

A read that its plan fully allows (timestamp window, signature, machine state) is decrypted in
memory and queued for the group commit: ONE write transaction per batch locks the epoch,
records every nonce, appends every audit record, moves the poll baselines and commits (one
fsync for the batch); only then are the values released. A read whose plan is older than the
locked epoch, or whose nonce was already used, is not committed there but handed back to the
full path (``MachinePlane.read``), which checks everything again in its own transaction and
audits a refusal. Anything unusual (unknown machine, no grant, frozen project, enabled canary,
expired machine, bad signature, locked-out address) goes to the full path at once: this lane
only serves reads the full path would serve, and audits them the same way, before the value
leaves. A failed commit fails every read of its batch closed (AuditUnavailable or
StoreUnavailable, never the value).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from sikker.core import signing
from sikker.core.audit import Action, Actor
from sikker.core.model import Machine
from sikker.crypto import envelope, signature
from sikker.crypto.envelope import Binding, Sealed
from sikker.errors import SikkerError
from sikker.service.base import Deps
from sikker.service.machine_plane import NONCE_TTL_MS, MachinePlane, SignedRequest
from sikker.storage import audit as audit_store
from sikker.storage import machines as machine_store
from sikker.storage import read_plans as plan_store
from sikker.storage import system as system_store
from sikker.storage.audit import Record

log = logging.getLogger("sikker.read_lane")

# A read the lane hands back to the full path (stale plan, or a nonce already used).
RETRY: Final = "retry"
FILL_THREADS = 4  # below the store's connection pool size
Outcome = str | BaseException  # "ok", RETRY, or the error every read of the batch fails with


@dataclass(frozen=True, slots=True)
class ReadPlan:
    epoch: int
    machine: Machine
    secret_id: str
    project_id: str
    version: int
    sealed: Sealed
    wrapped_project_key: bytes


class PlanCache:
    """Read plans of one access epoch; a newer epoch empties it. Bounded (oldest out first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._plans: dict[tuple[str, str], ReadPlan] = {}
        self._epoch = -1
        self._lock = threading.Lock()

    def get(self, machine_id: str, secret_id: str) -> ReadPlan | None:
        return self._plans.get((machine_id, secret_id))

    def put(self, plan: ReadPlan) -> None:
        with self._lock:
            self._advance(plan.epoch)
            if plan.epoch < self._epoch:
                return
            if len(self._plans) >= self.limit:
                del self._plans[next(iter(self._plans))]
            self._plans[(plan.machine.id, plan.secret_id)] = plan

    def saw(self, epoch: int) -> None:
        with self._lock:
            self._advance(epoch)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()

    def _advance(self, epoch: int) -> None:
        if epoch > self._epoch:
            self._plans.clear()
            self._epoch = epoch


@dataclass(slots=True)
class PendingRead:
    plan: ReadPlan
    nonce: str
    actor: Actor
    time_ms: int
    future: asyncio.Future[Outcome]


class ReadLane:
    def __init__(
        self, deps: Deps, plane: MachinePlane, cache_limit: int = 100_000, max_batch: int = 256
    ) -> None:
        self.deps = deps
        self.plane = plane
        self.cache = PlanCache(cache_limit)
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[PendingRead | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._fillers = ThreadPoolExecutor(FILL_THREADS, thread_name_prefix="sikker-plan")

    # -- plans ---------------------------------------------------------------------------
    async def plan(self, machine_id: str, secret_id: str) -> ReadPlan | None:
        """The cached plan, else one read statement on a plan thread; None: not a plain read.

        A few dedicated threads, not the request thread pool: a cache miss storm (a working set
        larger than the cache) then keeps a few store connections busy instead of opening and
        closing a connection per miss beyond the pool."""
        found = self.cache.get(machine_id, secret_id)
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._fillers, self._fill, machine_id, secret_id)

    def _fill(self, machine_id: str, secret_id: str) -> ReadPlan | None:
        with self.deps.db.read() as conn:
            found = plan_store.read_plan(conn, machine_id, secret_id)
        if found is None or found.machine.revoked_ms is not None:
            return None
        if found.sealed is None or found.wrapped_project_key is None:
            return None
        if found.vault_id != found.machine.vault_id or found.deleted or found.frozen or found.canary:
            return None
        if not (found.member and found.granted):
            return None
        plan = ReadPlan(
            found.epoch,
            found.machine,
            secret_id,
            found.project_id,
            found.version,
            found.sealed,
            found.wrapped_project_key,
        )
        self.cache.put(plan)
        return plan

    # -- one read ------------------------------------------------------------------------
    def open(self, plan: ReadPlan, req: SignedRequest, now_ms: int) -> bytes | None:
        """The value, when this request is a plain allowed read under ``plan``; else None.
        Raises Sealed if the server sealed meanwhile."""
        machine = plan.machine
        if req.malformed or req.query or self.plane.locked_out(req.source_ip, now_ms):
            return None
        if machine.expires_ms is not None and machine.expires_ms <= now_ms:
            return None
        if self.plane.state_problem(machine, req.source_ip) is not None:  # pending, disabled, CIDR
            return None
        if not signing.fresh(req.timestamp, now_ms / 1000):
            return None
        message = signing.canonical(req.method, req.path, req.timestamp, req.nonce, req.body)
        if not signature.verify(machine.public_key, req.signature, message):
            return None
        key = self.deps.keyring.project_key(
            machine.vault_id, plan.project_id, plan.sealed.key_version, plan.wrapped_project_key
        )
        where = Binding(machine.vault_id, plan.project_id, plan.secret_id, plan.version)
        return envelope.open_value(key, where, plan.sealed)

    def commit(self, plan: ReadPlan, req: SignedRequest, now_ms: int) -> asyncio.Future[Outcome]:
        """Queue the read's nonce and audit record; the future settles once they committed."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        actor = Actor("machine", plan.machine.id, req.source_ip, req.user_agent)
        self._start()
        self._queue.put(PendingRead(plan, req.nonce, actor, now_ms, future))
        return future

    # -- the group commit ----------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="sikker-read-commit", daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        self._fillers.shutdown(wait=True, cancel_futures=True)
        with self._start_lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            outcomes = self._commit(batch)
            _settle_all(batch, outcomes)

    def _commit(self, batch: list[PendingRead]) -> list[Outcome]:
        try:
            try:
                accepted = self._write(batch, careful=False)
            except _Replayed:  # rolled back; learn which nonce, one savepoint per read
                accepted = self._write(batch, careful=True)
        except Exception as e:  # fail closed: no value of this batch leaves
            if not isinstance(e, SikkerError):
                log.error("read commit failed", exc_info=e)
            return [e] * len(batch)
        return ["ok" if id(p) in accepted else RETRY for p in batch]

    def _write(self, batch: list[PendingRead], careful: bool) -> set[int]:
        """One transaction for the batch; the ids of the reads it committed."""
        with self.deps.db.write() as conn:
            epoch = system_store.get_access_epoch(conn, lock=True)
            self.cache.saw(epoch)
            firsts: dict[tuple[str, str], PendingRead] = {}
            for p in batch:
                if p.plan.epoch == epoch:
                    firsts.setdefault((p.plan.machine.id, p.nonce), p)
            if careful:
                accepted = [p for p in firsts.values() if self._nonce_is_new(conn, p)]
            else:
                rows = [(m, n, p.time_ms + NONCE_TTL_MS) for (m, n), p in firsts.items()]
                if rows and not machine_store.record_nonces(conn, rows):
                    raise _Replayed()
                accepted = list(firsts.values())
            chains: dict[str, list[Record]] = {}
            for p in accepted:
                chains.setdefault(p.plan.machine.vault_id, []).append(_audit_record(p))
            for chain, records in chains.items():
                audit_store.append_many(conn, chain, records)
            deliveries = {(p.plan.machine.id, p.plan.secret_id): p.plan.version for p in accepted}
            if deliveries:
                machine_store.set_delivered_many(conn, [(m, s, v) for (m, s), v in deliveries.items()])
        return {id(p) for p in accepted}

    @staticmethod
    def _nonce_is_new(conn: Connection, p: PendingRead) -> bool:
        try:
            with conn.begin_nested():
                machine_store.record_nonce(conn, p.plan.machine.id, p.nonce, p.time_ms + NONCE_TTL_MS)
        except IntegrityError:
            return False
        return True


class _Replayed(Exception):
    """A nonce of the batch was already used."""


def _audit_record(p: PendingRead) -> Record:
    plan = p.plan
    target = {"project": plan.project_id, "secret": plan.secret_id, "version": str(plan.version)}
    return (p.time_ms, p.actor, Action.MACHINE_SECRET_READ, target, "ok", "")


def _settle_all(batch: list[PendingRead], outcomes: list[Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome]]] = {}
    for p, outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(p.future.get_loop(), []).append((p.future, outcome))
    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed (shutdown): nobody waits
            loop.call_soon_threadsafe(_settle, pairs)


def _settle(pairs: list[tuple[asyncio.Future[Outcome], Outcome]]) -> None:
    for future, outcome in pairs:
        if not future.done():  # a client that went away cancelled its wait
            future.set_result(outcome)
