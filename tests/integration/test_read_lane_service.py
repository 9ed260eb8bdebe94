"""The read lane itself, against the real stores: a granted read is served from its plan and
committed by the group commit; a plan from an older access epoch or a used nonce is handed back
to the full path. (tests/integration/test_access_paths.py compares the two paths case by case.)"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from nacl.signing import SigningKey

from sikker.config import Settings
from sikker.core import audit, signing, values
from sikker.core.model import Principal
from sikker.core.signing import SignedRequest
from sikker.service.bootstrap import Services, bootstrap
from sikker.service.read_lane import RETRY, ReadPlan
from sikker.storage import machines as machine_store
from sikker.storage import tables
from sikker.storage.read_plans import BUSY

ROOT = Principal("root", "tok_test", None)
ACTOR = audit.Actor("root", "tok_test", "127.0.0.1", "pytest")


@dataclass
class Lane:
    svc: Services
    machine: str
    key: SigningKey
    secret: str

    def request(self, nonce: str) -> SignedRequest:
        path, ts = f"/v1/secret/{self.secret}", str(self.svc.deps.clock() // 1000)
        sig = self.key.sign(signing.canonical("GET", path, ts, nonce, b"")).signature
        return SignedRequest(
            "GET",
            path,
            b"",
            b"",
            self.machine,
            ts,
            nonce,
            base64.b64encode(sig).decode(),
            [],
            "10.0.0.1",
            "t",
        )

    def plan(self) -> ReadPlan | None:
        return asyncio.run(self.svc.reads.plan(self.machine, self.secret))

    def commit(self, plan: ReadPlan, req: SignedRequest) -> object:
        async def go() -> object:
            return await self.svc.reads.commit(plan, req, self.svc.deps.clock())

        return asyncio.run(go())

    def reads_audited(self) -> list[dict[str, str]]:
        log = tables.audit_log
        query = sa.select(log.c.target).where(
            log.c.actor_id == self.machine, log.c.action == "machine:secret:read", log.c.result == "ok"
        )
        with self.svc.deps.db.read() as conn:
            return [json.loads(t) for t in conn.execute(query).scalars()]


@pytest.fixture
def lane(database_url: str, tmp_path: Path) -> Iterator[Lane]:
    svc = bootstrap(Settings(database=database_url, data_dir=tmp_path))
    svc.deps.db.migrate()
    svc.seal.submit_share(svc.seal.init(1, 1, ACTOR).shares[0], ACTOR)
    vault = svc.vaults.create_vault(ROOT, ACTOR, "v").id
    project = svc.vaults.create_project(ROOT, ACTOR, vault, "p").id
    secret = svc.secrets.create(ROOT, ACTOR, project, "s", values.standard("hunter2")).id
    _, token = svc.machines.create_enrollment(
        ROOT,
        ACTOR,
        vault,
        name="t",
        project_ids=[project],
        secret_ids=[secret],
        max_uses=1,
        token_ttl_s=3600,
        machine_ttl_s=None,
        approval="auto",
        hostname_pattern=None,
        name_pattern=None,
        source_cidr=None,
    )
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    machine = svc.plane.enroll(vault, token, public, "h", None, "standard", "10.0.0.1", "t").id
    yield Lane(svc, machine, key, secret)
    svc.close()


def test_a_granted_read_is_served_from_its_plan_and_committed_once(lane: Lane) -> None:
    plan = lane.plan()
    assert plan is not None and lane.svc.reads.cache.get(lane.machine, lane.secret) is plan
    req = lane.request("n-1")
    assert lane.svc.reads.open(plan, req, lane.svc.deps.clock()) == b"hunter2"
    assert lane.commit(plan, req) == "ok"
    assert lane.reads_audited() == [{"project": plan.facts.project_id, "secret": lane.secret, "version": "1"}]
    # The nonce was recorded by that commit: the same request is handed back (the full path
    # then refuses it as a replay), and no second read is audited.
    assert lane.commit(plan, req) == RETRY
    assert len(lane.reads_audited()) == 1


def test_a_plan_from_before_an_access_change_is_handed_back(lane: Lane) -> None:
    plan = lane.plan()
    assert plan is not None
    lane.svc.machines.set_grants(ROOT, ACTOR, lane.machine, [lane.secret], False)
    assert lane.commit(plan, lane.request("n-2")) == RETRY
    assert lane.reads_audited() == []
    assert lane.svc.reads.cache.get(lane.machine, lane.secret) is None  # the commit saw the new epoch
    # The new plan knows there is no grant: the access decision refuses, the full path answers.
    fresh = lane.plan()
    assert fresh is not None and not fresh.facts.granted
    assert lane.svc.reads.open(fresh, lane.request("n-3"), lane.svc.deps.clock()) is None


def test_a_bad_signature_or_stale_timestamp_is_not_served_from_the_plan(lane: Lane) -> None:
    plan = lane.plan()
    assert plan is not None
    good = lane.request("n-3")
    forged = dataclasses.replace(good, nonce="n-4")  # the signature covers the nonce
    assert lane.svc.reads.open(plan, forged, lane.svc.deps.clock()) is None
    assert lane.svc.reads.open(plan, good, lane.svc.deps.clock() + 301_000) is None
    assert lane.svc.reads.open(plan, good, lane.svc.deps.clock()) == b"hunter2"


def test_the_plan_cache_is_bounded_in_bytes_not_in_plans() -> None:
    """2,000 plans of 60 KB values would hold 120 MB; a 4 MiB cache keeps the newest that fit."""
    from sikker.core.access import MachineFacts, ReadFacts
    from sikker.core.model import Machine, Sealed
    from sikker.service.read_lane import PlanCache

    machine = Machine("m", "v", "m", b"k" * 32, "standard", True, True, "h", None, None, 0, None, None, None)
    facts = ReadFacts(MachineFacts(machine, False), "", "v", False, "p", False, True, True, False)
    cache = PlanCache(4 * 1024 * 1024)
    for i in range(2_000):
        sealed = Sealed(b"x" * 60_000, b"k" * 60, 1)
        cache.put(ReadPlan(1, dataclasses.replace(facts, secret_id=f"s{i}"), 1, sealed, b"w" * 60))
        assert cache.used_bytes <= cache.limit_bytes
    assert 60 <= len(cache) <= 70  # 4 MiB / ~61 KB
    assert cache.get("m", "s1999") is not None and cache.get("m", "s0") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL: always a thread
def test_a_fill_the_store_would_make_wait_is_made_on_a_fill_thread(lane: Lane) -> None:
    """On SQLite a plan is filled on the event loop, but never by waiting there. A WAL reader
    rarely meets a lock (another connection in exclusive locking mode, a WAL recovery), so the
    lock is simulated: the loop's fill answers BUSY, and the lane fills on a fill thread."""
    reader = lane.svc.reads._reader
    loop_fill = reader.read_now(lane.machine, lane.secret)
    assert isinstance(loop_fill, ReadPlan) and loop_fill.facts.granted
    threads: list[str] = []
    thread_fill = reader.read

    def on_thread(machine_id: str, secret_id: str) -> ReadPlan | None:
        threads.append(threading.current_thread().name)
        return thread_fill(machine_id, secret_id)

    reader.read_now = lambda *_: BUSY  # type: ignore[method-assign]
    reader.read = on_thread  # type: ignore[method-assign]
    plan = lane.plan()
    assert plan is not None and plan.facts == loop_fill.facts
    assert len(threads) == 1 and threads[0].startswith("sikker-plan")


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_read_batches_of_two_nodes_cannot_deadlock_on_poll_baselines(lane: Lane) -> None:
    """Each read batch upserts its machines' poll baselines, and PostgreSQL locks an upserted
    row even when nothing changes. Batch A holds one baseline and then wants another that
    batch B (another node) would lock first in its own order: rows are locked in key order, so
    B waits for A holding nothing A needs (in arrival order this was a deadlock)."""
    plan = lane.plan()
    assert plan is not None and plan.facts.project_id is not None
    other = lane.svc.secrets.create(ROOT, ACTOR, plan.facts.project_id, "s2", values.standard("x")).id
    first, second = sorted([lane.secret, other])
    m, expires = lane.machine, lane.svc.deps.clock() + 600_000
    engine = lane.svc.deps.db.engine

    def batch_b() -> bool:
        with engine.connect() as b, b.begin():
            return machine_store.record_reads(b, [(m, "nonce-b", expires)], [(m, second, 1), (m, first, 1)])

    with engine.connect() as a, ThreadPoolExecutor(1) as pool:
        with a.begin():
            assert machine_store.record_reads(a, [(m, "nonce-a1", expires)], [(m, first, 1)])
            b = pool.submit(batch_b)
            # Until B waits for A's row. In autocommit: PostgreSQL keeps one snapshot of
            # pg_stat_activity per transaction, so a watcher in one transaction never saw B
            # start waiting after its first look (the test failed in 5 of 15 runs).
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
                for _ in range(100):
                    waiting = watcher.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    ).scalar_one()
                    if waiting:
                        break
                    time.sleep(0.05)
                assert waiting, "batch B never waited for batch A"
            assert machine_store.record_reads(a, [(m, "nonce-a2", expires)], [(m, second, 1)])
        assert b.result(timeout=30)
