"""The read lane: signed secret reads with no store round trip of their own.

A node keeps, per (machine, secret), a *read plan*: what a successful signed read of that
secret by that machine needs (the machine's public key and state, the live version sealed,
its project and the project's wrapped key), filled from one read transaction and tagged with
the *access epoch* it saw. The epoch is a counter that triggers bump on every change that can
alter a read's outcome (machines, memberships, grants, secrets, versions, projects, canaries;
migration 0008), whatever code path or node makes the change.

A request is checked against its plan: timestamp window, signature, and the access decision
(core/access.py ``read_refusal``, the same function the full path asks) on the plan's facts
with this request's time and address. A read it allows is decrypted in memory and queued for
the group commit: ONE write transaction per batch locks the epoch,
records every nonce, appends every audit record, moves the poll baselines and commits (one
fsync for the batch); only then are the values released. A read whose plan is older than the
locked epoch, or whose nonce was already used, is not committed there but handed back to the
full path (``MachinePlane.read``), which checks everything again in its own transaction and
audits a refusal. Anything else (unknown machine or secret, any refusal of the decision, an
enabled canary, whose read must freeze projects, a bad signature) goes to the full path at
once: this lane only serves reads the full path would serve, and audits them the same way,
before the value leaves. A failed commit fails every read of its batch closed (AuditUnavailable or
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

from sikker import metrics
from sikker.core import access, signing
from sikker.core.audit import Action, Actor
from sikker.core.signing import SignedRequest
from sikker.crypto import envelope, signature
from sikker.crypto.envelope import Binding
from sikker.errors import Replayed, SikkerError
from sikker.service.base import Deps
from sikker.service.machine_plane import NONCE_TTL_MS, MachinePlane
from sikker.storage import audit as audit_store
from sikker.storage import machines as machine_store
from sikker.storage import read_plans as plan_store
from sikker.storage import system as system_store
from sikker.storage.audit import Record
from sikker.storage.database import Connection
from sikker.storage.read_plans import PlanRow as ReadPlan

log = logging.getLogger("sikker.read_lane")

# A read the lane hands back to the full path (stale plan, or a nonce already used).
RETRY: Final = "retry"
FILL_THREADS = 4  # each with its own store connection on SQLite (storage/read_plans.py)
Outcome = str | BaseException  # "ok", RETRY, or the error every read of the batch fails with


PLAN_OVERHEAD = 1024  # bytes a plan costs besides its sealed value and wrapped keys


def plan_cost(plan: ReadPlan) -> int:
    sealed = plan.sealed
    assert sealed is not None and plan.wrapped_project_key is not None
    return PLAN_OVERHEAD + len(sealed.ciphertext) + len(sealed.wrapped_dek) + len(plan.wrapped_project_key)


class PlanCache:
    """Read plans of one access epoch; a newer epoch empties it. Bounded in bytes (each plan
    holds a sealed value): the oldest plans leave first."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self._plans: dict[tuple[str, str], tuple[ReadPlan, int]] = {}
        self._epoch = -1
        self._lock = threading.Lock()

    def get(self, machine_id: str, secret_id: str) -> ReadPlan | None:
        found = self._plans.get((machine_id, secret_id))
        return found[0] if found is not None else None

    def put(self, plan: ReadPlan) -> None:
        cost = plan_cost(plan)
        key = (plan.facts.machine.machine.id, plan.facts.secret_id)
        with self._lock:
            self._advance(plan.epoch)
            if plan.epoch < self._epoch or cost > self.limit_bytes:
                return
            old = self._plans.pop(key, None)
            if old is not None:
                self.used_bytes -= old[1]
            while self._plans and self.used_bytes + cost > self.limit_bytes:
                self.used_bytes -= self._plans.pop(next(iter(self._plans)))[1]
            self._plans[key] = (plan, cost)
            self.used_bytes += cost

    def saw(self, epoch: int) -> None:
        with self._lock:
            self._advance(epoch)

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self.used_bytes = 0

    def __len__(self) -> int:
        return len(self._plans)

    def _advance(self, epoch: int) -> None:
        if epoch > self._epoch:
            self._plans.clear()
            self.used_bytes = 0
            self._epoch = epoch


@dataclass(slots=True)
class PendingRead:
    plan: ReadPlan
    nonce: str
    actor: Actor
    time_ms: int
    future: asyncio.Future[Outcome]

    @property
    def machine_id(self) -> str:
        return self.plan.facts.machine.machine.id


class ReadLane:
    def __init__(self, deps: Deps, plane: MachinePlane, max_batch: int = 256) -> None:
        self.deps = deps
        self.plane = plane
        self.cache = PlanCache(deps.settings.read_plan_cache_bytes)
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[PendingRead | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._fillers = ThreadPoolExecutor(FILL_THREADS, thread_name_prefix="sikker-plan")
        self._reader = plan_store.PlanReader(deps.db)

    # -- plans ---------------------------------------------------------------------------
    async def plan(self, machine_id: str, secret_id: str) -> ReadPlan | None:
        """The cached plan, else one read statement; None: no such machine or secret, or nothing
        to decrypt (the full path answers). On SQLite the statement runs here, on the event
        loop, unless the store would make it wait; then, and on PostgreSQL, on a plan thread.

        A few dedicated threads, not the request thread pool: a cache miss storm (a working set
        larger than the cache) then keeps a few store connections busy instead of opening and
        closing a connection per miss beyond the pool."""
        found = self.cache.get(machine_id, secret_id)
        if found is not None:
            _PLAN_HIT.inc()
            return found
        _PLAN_MISS.inc()
        if self.deps.db.is_sqlite:  # on the event loop: ~50 us, less than the hop to a thread
            filled = self._reader.read_now(machine_id, secret_id)
            if not isinstance(filled, plan_store.Busy):
                return self._keep(filled)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._fillers, self._fill, machine_id, secret_id)

    def _fill(self, machine_id: str, secret_id: str) -> ReadPlan | None:
        return self._keep(self._reader.read(machine_id, secret_id))

    def _keep(self, plan: ReadPlan | None) -> ReadPlan | None:
        if plan is None or plan.sealed is None or plan.wrapped_project_key is None:
            return None
        self.cache.put(plan)
        return plan

    # -- one read ------------------------------------------------------------------------
    def open(self, plan: ReadPlan, req: SignedRequest, now_ms: int) -> bytes | None:
        """The value, when the access decision allows this request under ``plan`` and serving
        it has no side effect (a canary's read freezes projects: the full path does that);
        else None. Raises Sealed if the server sealed meanwhile."""
        facts = plan.facts
        if req.malformed or req.query or not signing.fresh(req.timestamp, now_ms / 1000):
            return None
        # Authenticate before deciding, as the full path does: what the decision says about
        # this machine is then never timed by a caller who does not hold its key.
        machine = facts.machine.machine
        message = signing.canonical(req.method, req.path, req.timestamp, req.nonce, req.body)
        if not signature.verify(machine.public_key, req.signature, message):
            return None
        if facts.canary or access.read_refusal(facts, req.source_ip, now_ms) is not None:
            return None
        sealed, project_id = plan.sealed, facts.project_id
        assert sealed is not None and plan.wrapped_project_key is not None and project_id is not None
        key = self.deps.keyring.project_key(
            machine.vault_id, project_id, sealed.key_version, plan.wrapped_project_key
        )
        where = Binding(machine.vault_id, project_id, facts.secret_id, plan.version)
        return envelope.open_value(key, where, sealed)

    def commit(self, plan: ReadPlan, req: SignedRequest, now_ms: int) -> asyncio.Future[Outcome]:
        """Queue the read's nonce and audit record; the future settles once they committed."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        actor = Actor("machine", plan.facts.machine.machine.id, req.source_ip, req.user_agent)
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
        self._reader.close()
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
            metrics.READ_BATCH.observe(len(batch))
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
                    firsts.setdefault((p.machine_id, p.nonce), p)
            if careful:
                accepted = [p for p in firsts.values() if self._nonce_is_new(conn, p)]
                nonces = []
            else:
                accepted = list(firsts.values())
                nonces = [(m, n, p.time_ms + NONCE_TTL_MS) for (m, n), p in firsts.items()]
            deliveries = {(p.machine_id, p.plan.facts.secret_id): p.plan.version for p in accepted}
            delivered = [(m, s, v) for (m, s), v in deliveries.items()]
            if nonces and not machine_store.record_reads(conn, nonces, delivered):
                raise _Replayed()
            if careful and delivered:
                machine_store.set_delivered_many(conn, delivered)
            # The audit chains last: on PostgreSQL their head rows stay locked until the commit.
            chains: dict[str, list[Record]] = {}
            for p in accepted:
                chains.setdefault(p.plan.facts.machine.machine.vault_id, []).append(_audit_record(p))
            for chain in sorted(chains):  # heads locked in one order: no deadlock between nodes
                audit_store.append_many(conn, chain, chains[chain])
        return {id(p) for p in accepted}

    @staticmethod
    def _nonce_is_new(conn: Connection, p: PendingRead) -> bool:
        try:
            machine_store.record_nonce(conn, p.machine_id, p.nonce, p.time_ms + NONCE_TTL_MS)
        except Replayed:
            return False
        return True


_PLAN_HIT = metrics.PLAN_CACHE.labels("hit")
_PLAN_MISS = metrics.PLAN_CACHE.labels("miss")


class _Replayed(Exception):
    """A nonce of the batch was already used."""


def _audit_record(p: PendingRead) -> Record:
    facts = p.plan.facts
    target = {"project": str(facts.project_id), "secret": facts.secret_id, "version": str(p.plan.version)}
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
