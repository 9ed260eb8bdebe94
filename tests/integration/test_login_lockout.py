"""A user name's failed sign-ins are counted in the store: two sets of services on one store
(two workers of a server, or two nodes of a cluster) lock the name together, concurrent
failures are all counted, and maintenance forgets counts whose window and lock have ended."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sikker.config import Settings
from sikker.core import audit
from sikker.core.model import Principal
from sikker.errors import RateLimited, Unauthenticated
from sikker.service.bootstrap import Services, bootstrap
from sikker.service.people import LOCKOUT_WINDOW_MS
from sikker.storage import people as people_store

ROOT = Principal("root", "tok_test", None)
ACTOR = audit.Actor("root", "tok_test", "192.0.2.9", "pytest")
PASSWORD = "correct horse battery staple"
LOCK_S = 20 * 60  # longer than the 15-minute counting window


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nodes(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[tuple[Services, Services]]:
    settings = Settings(database=database_url, data_dir=tmp_path, login_lockout_seconds=LOCK_S)
    first = bootstrap(settings, clock)
    first.deps.db.migrate()
    share = first.seal.init(1, 1, ACTOR).shares[0]
    second = bootstrap(settings, clock)
    for node in (first, second):
        node.seal.submit_share(share, ACTOR)
    first.people.create_user(ROOT, ACTOR, "Alice", "alice@example.org", PASSWORD)
    yield first, second
    first.close()
    second.close()


def test_failures_through_two_nodes_add_up_to_one_lock(
    nodes: tuple[Services, Services], clock: Clock
) -> None:
    first, second = nodes
    for i in range(4):  # 2 + 2: each process alone would be far from the limit of 5
        with pytest.raises(Unauthenticated):
            nodes[i % 2].people.login("alice", "wrong wrong wrong", None, ACTOR)
    first.people.login("alice", PASSWORD, None, ACTOR)  # 4 of 5: not locked yet
    with pytest.raises(Unauthenticated):
        second.people.login("ALICE", "wrong wrong wrong", None, ACTOR)  # the 5th locks the name
    for node in nodes:
        with pytest.raises(RateLimited):
            node.people.login("alice", PASSWORD, None, ACTOR)
    clock.now += LOCK_S * 1000
    for node in nodes:
        node.people.login("alice", PASSWORD, None, ACTOR)


def test_concurrent_failures_on_two_nodes_are_all_counted(nodes: tuple[Services, Services]) -> None:
    """20 failures at once through two stores' connections: no count is lost to a race, so
    exactly 20 / 5 = 4 of them start a lock."""
    started: list[bool] = []
    barrier = threading.Barrier(20)

    def fail(node: Services) -> None:
        barrier.wait()
        with node.deps.db.write() as conn:
            started.append(people_store.count_failure(conn, "bob", node.deps.clock(), 5, 60_000, 1_000))

    threads = [threading.Thread(target=fail, args=(nodes[i % 2],)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 20 and started.count(True) == 4
    with nodes[0].deps.db.read() as conn:
        state = people_store.name_failures(conn, "bob")
    assert state is not None and state.failures == 0


def test_maintenance_forgets_a_count_once_its_window_and_lock_have_ended(
    nodes: tuple[Services, Services], clock: Clock
) -> None:
    first, second = nodes
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            first.people.login("mallory", "wrong wrong wrong", None, ACTOR)
    with pytest.raises(Unauthenticated):
        first.people.login("carol", "wrong wrong wrong", None, ACTOR)
    assert second.people.forget_failures() == 0  # both windows still open, mallory locked
    clock.now += LOCKOUT_WINDOW_MS
    assert second.people.forget_failures() == 1  # carol's window closed; mallory's lock runs on
    with pytest.raises(RateLimited):
        second.people.login("mallory", "wrong wrong wrong", None, ACTOR)
    clock.now += LOCK_S * 1000
    assert second.people.forget_failures() == 1
    with first.deps.db.read() as conn:
        assert people_store.name_failures(conn, "mallory") is None
