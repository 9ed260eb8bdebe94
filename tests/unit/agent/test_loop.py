"""The per-secret loop against a fake server (httpx.MockTransport) and a fake database."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sikker.agent.loop import STOPPED_MESSAGE, Agent, SecretWorker
from sikker.engines.base import Connection, Provider, UnsupportedStrategy
from tests.unit.agent.fakes import ADMIN, FakeDatabase, FakeServer, FakeUser, api_for, creds

SECRET = "sk_db"


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def worker_for(
    server: FakeServer, db: FakeDatabase, clock: Clock | None = None, heartbeat_every: float = 30.0
) -> SecretWorker:
    def providers(kind: str, connection: Connection) -> Provider:
        assert (kind, connection.admin_user) == ("fake", ADMIN)
        return db

    return SecretWorker(SECRET, api_for(server), providers, clock or Clock(), heartbeat_every)


def single_setup(**config: Any) -> tuple[FakeServer, FakeDatabase]:
    db = FakeDatabase()
    db.add("app", "old-pw")
    server = FakeServer(creds("app", "old-pw", host="db"), FakeServer.base_config(**config))
    return server, db


def test_happy_path_applies_verifies_and_confirms_exactly_once() -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw", host="db"))
    worker = worker_for(server, db)
    result = worker.tick()
    assert result.status == "healthy"
    assert server.posts("/confirm-rotation") == [{"rotationId": "rot_1"}]
    assert server.posts("/reject-rotation") == []
    assert db.users["app"].passwords == {"new-pw"}
    assert server.posts("/heartbeat")[-1] == {"status": "healthy", "error": ""}
    # Later ticks do not rotate again.
    worker.tick()
    worker.tick()
    assert len(server.posts("/confirm-rotation")) == 1
    assert len(db.named("apply")) == 1


def test_heartbeat_follows_the_confirm() -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw"))
    worker_for(server, db).tick()
    posts = [path for method, path, _ in server.requests if method == "POST"]
    assert posts == [f"/v1/secret/{SECRET}/agent/confirm-rotation", f"/v1/secret/{SECRET}/agent/heartbeat"]


def test_a_rotation_id_already_handled_is_not_rotated_again_while_still_pending() -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw"))
    worker = worker_for(server, db)
    server.status_for["/confirm-rotation"] = 500
    worker.tick()  # confirm fails: the rotation is not marked handled
    assert db.users["app"].passwords == {"new-pw"}
    del server.status_for["/confirm-rotation"]
    worker.tick()  # resumed: live fails, pending works -> confirm without re-applying
    assert len(db.named("apply")) == 1
    assert server.posts("/confirm-rotation")[-1] == {"rotationId": "rot_1"}


@pytest.mark.parametrize("where", ["apply", "verify"])
def test_failure_rolls_back_then_rejects_with_the_reason(where: str) -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw"))
    if where == "apply":
        db.fail_apply = "cannot set the password of 'app': permission denied"
    else:
        db.apply_breaks_login = True
    result = worker_for(server, db).tick()
    assert result.status == "error"
    assert [c[0] for c in db.calls if c[0] in ("apply", "rollback")] == ["apply", "rollback"]
    (reject,) = server.posts("/reject-rotation")
    assert reject["rotationId"] == "rot_1"
    if where == "apply":
        assert reject["error"] == "apply failed: cannot set the password of 'app': permission denied"
    else:
        assert reject["error"].startswith("verification failed after apply: ")
    assert db.users["app"].passwords == {"old-pw"}
    assert server.posts("/confirm-rotation") == []
    assert server.posts("/heartbeat")[-1] == {"status": "error", "error": reject["error"]}


def test_rollback_failure_is_reported_too() -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw"))
    db.apply_breaks_login, db.fail_rollback = True, "cannot restore the password of 'app': gone"
    worker_for(server, db).tick()
    (reject,) = server.posts("/reject-rotation")
    assert reject["error"].startswith("verification failed after apply: ")
    assert reject["error"].endswith(" AND rollback failed: cannot restore the password of 'app': gone")


def test_resumed_rotation_confirms_without_reapplying() -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw"))
    db.users["app"].passwords = {"new-pw"}  # the agent died after applying
    worker_for(server, db).tick()
    assert db.named("apply") == [] and db.named("rollback") == []
    assert server.posts("/confirm-rotation") == [{"rotationId": "rot_1"}]


def test_neither_credential_working_rejects_without_touching_the_database() -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw"))
    db.users["app"].passwords = {"someone-else-changed-it"}
    worker_for(server, db).tick()
    (reject,) = server.posts("/reject-rotation")
    assert reject["error"].startswith("preflight failed: neither the live")
    assert db.named("apply") == [] and db.named("rollback") == []


def test_unreachable_database_keeps_the_rotation_pending() -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw"))
    db.unreachable = True
    worker = worker_for(server, db)
    result = worker.tick()
    assert result.status == "error" and "preflight failed" in result.error
    assert server.posts("/reject-rotation") == [] and server.posts("/confirm-rotation") == []
    db.unreachable = False
    worker.tick()
    assert server.posts("/confirm-rotation") == [{"rotationId": "rot_1"}]


@pytest.mark.parametrize("status", [403, 404])
def test_403_or_404_on_sync_config_stops_managing_the_secret(status: int) -> None:
    server, db = single_setup()
    server.status_for["/sync-config"] = status
    worker = worker_for(server, db)
    result = worker.tick()
    assert result.status == "stopped" and worker.stopped
    assert server.posts("/heartbeat") == []
    agent = Agent([SECRET], api_for(server), lambda kind, conn: db)
    assert agent.run(threading.Event()) == {SECRET: result}  # returns: nothing left to manage


@pytest.mark.parametrize("status", [500, 503, 429])
def test_other_poll_errors_send_an_error_heartbeat_and_retry(status: int) -> None:
    server, db = single_setup()
    server.status_for["/sync-config"] = status
    worker = worker_for(server, db)
    result = worker.tick()
    assert result.status == "error" and not worker.stopped
    (beat,) = server.posts("/heartbeat")
    assert beat == {"status": "error", "error": f"poll failed: forced {status}"}
    del server.status_for["/sync-config"]
    assert worker.tick().status == "healthy"


def test_admin_problems_are_reported_and_rechecked_before_any_rotation() -> None:
    server, db = single_setup()
    server.pend("rot_1", creds("app", "new-pw"))
    db.admin_problems = ["admin role 'admin' needs CREATEROLE or SUPERUSER"]
    worker = worker_for(server, db)
    result = worker.tick()
    assert result.error == "admin check failed: admin role 'admin' needs CREATEROLE or SUPERUSER"
    assert db.named("apply") == [] and server.posts("/reject-rotation") == []
    db.admin_problems = []
    worker.tick()
    assert server.posts("/confirm-rotation") == [{"rotationId": "rot_1"}]
    worker.tick()
    assert len(db.named("test_admin")) == 2


def test_malformed_pending_value_is_rejected_without_echoing_it() -> None:
    server, db = single_setup()
    server.pend("rot_1", '{"username": "app", "secret": "hunter2-canary"}')
    worker_for(server, db).tick()
    (reject,) = server.posts("/reject-rotation")
    assert reject["error"] == "the pending value has no 'password' field"
    assert "hunter2" not in str(server.requests)


def alternating_setup(now: float, disable_at: int) -> tuple[FakeServer, FakeDatabase, Clock]:
    db = FakeDatabase()
    db.add("app", "pw-1")
    db.add("app_b", "pw-2")
    server = FakeServer(
        creds("app_b", "pw-2"),
        FakeServer.base_config(strategy="alternating", previousUsername="app", disablePreviousAt=disable_at),
    )
    return server, db, Clock(now)


def test_previous_user_is_disabled_once_after_the_grace_period() -> None:
    server, db, clock = alternating_setup(now=1_000, disable_at=1_100)
    worker = worker_for(server, db, clock)
    worker.tick()
    assert db.named("disable") == []  # still in grace
    clock.now = 1_100
    worker.tick()
    clock.now = 1_200
    worker.tick()
    worker.tick()
    assert db.named("disable") == [("disable", "app")]
    assert db.users["app"].enabled is False and db.users["app_b"].enabled is True


def test_the_live_user_is_never_disabled() -> None:
    server, db, clock = alternating_setup(now=2_000, disable_at=1_100)
    server.config["previousUsername"] = "app_b"  # a stale or wrong config naming the live user
    worker_for(server, db, clock).tick()
    assert db.named("disable") == []
    assert db.users["app_b"].enabled


def test_alternating_rotation_then_grace_disables_the_old_live_user() -> None:
    db = FakeDatabase()
    db.add("app", "pw-1")
    server = FakeServer(creds("app", "pw-1"), FakeServer.base_config(strategy="alternating"))
    server.pend("rot_1", creds("app_b", "pw-2"))
    clock = Clock(1_000)
    worker = worker_for(server, db, clock)
    worker.tick()
    assert db.named("apply") == [("apply", "alternating", "app_b", "app")]
    assert db.users["app"].enabled and db.users["app_b"].enabled
    # The server records the previous user and the end of its grace period.
    server.config.update(previousUsername="app", disablePreviousAt=1_500)
    clock.now = 1_600
    worker.tick()
    assert db.named("disable") == [("disable", "app")]


def test_dual_grace_drops_the_old_password_with_the_live_one() -> None:
    db = FakeDatabase()
    db.users["app"] = FakeUser({"pw-1", "pw-2"})
    server = FakeServer(
        creds("app", "pw-2"),
        FakeServer.base_config(strategy="dual", previousUsername="app", disablePreviousAt=10),
    )
    worker_for(server, db).tick()
    assert db.named("discard_old") == [("discard_old", "app")]
    assert db.users["app"].passwords == {"pw-2"}
    assert db.named("disable") == []


def test_healthy_heartbeats_are_rate_limited() -> None:
    server, db = single_setup()
    clock = Clock(1_000)
    worker = worker_for(server, db, clock, heartbeat_every=30)
    worker.tick()
    clock.now += 10
    worker.tick()
    clock.now += 25
    worker.tick()
    assert len(server.posts("/heartbeat")) == 2


def test_stop_sends_a_last_heartbeat() -> None:
    server, db = single_setup()
    stop = threading.Event()
    agent = Agent([SECRET], api_for(server), lambda kind, conn: db)

    def providers_then_stop(kind: str, conn: Connection) -> Provider:
        stop.set()  # a signal arriving mid-tick: the tick still finishes
        return db

    agent.workers[0]._providers = providers_then_stop
    results = agent.run(stop)
    assert results[SECRET].status == "healthy"
    assert server.posts("/heartbeat")[-1] == {"status": "error", "error": STOPPED_MESSAGE}


def test_once_ticks_each_secret_one_time() -> None:
    server, db = single_setup()
    agent = Agent([SECRET, "sk_other", SECRET], api_for(server), lambda kind, conn: db)
    results = agent.run(threading.Event(), once=True)
    assert set(results) == {SECRET, "sk_other"}
    assert len([r for r in server.requests if r[1].endswith("/sync-config")]) == 2


def test_poll_interval_has_a_floor_of_five_seconds() -> None:
    server, db = single_setup(pollIntervalSeconds=1)
    clock = Clock(1_000)
    worker = worker_for(server, db, clock)
    worker.tick()
    assert worker.next_due == 1_005


def test_unsupported_grace_step_is_reported_once() -> None:
    server, db, clock = alternating_setup(now=2_000, disable_at=1_100)
    server.config.update(strategy="dual", previousUsername="app_b")
    server.live = creds("app_b", "pw-2")

    def refuse(username: str, current_password: str) -> None:
        raise UnsupportedStrategy("dual password is not supported by FakeDB; nothing to discard")

    db.discard_old = refuse  # type: ignore[method-assign]
    worker = worker_for(server, db, clock)
    assert worker.tick().error == "dual password is not supported by FakeDB; nothing to discard"
    assert worker.tick().status == "healthy"


def test_sigterm_sets_stop_and_a_second_signal_gets_the_previous_handler() -> None:
    import os
    import signal

    from sikker.agent.loop import stop_on_signals

    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        stop = threading.Event()
        with stop_on_signals(stop):
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.wait(5)
            assert seen == []
            os.kill(os.getpid(), signal.SIGTERM)  # handlers were restored after the first
            assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
