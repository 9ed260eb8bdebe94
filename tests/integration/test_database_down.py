"""PostgreSQL going away: reads answer 503 (never 500, never a value or a stale answer) and
service comes back by itself when the database accepts connections again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sikker.storage import database
from sikker.storage.database import PING_AFTER_IDLE_SECONDS, Database
from tests.support import PG_ADMIN_URL, Api, Machine, Server, fresh_pg_database, init_and_unseal

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[Server]:
    with fresh_pg_database() as url:
        server = Server(url, tmp_path / "data").start()
        try:
            yield server
        finally:
            server.stop()
            set_connections(url, allowed=True)


def set_connections(url: str, allowed: bool) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def _machine_reading(server: Server, value: str) -> tuple[Api, Machine, str, str]:
    """An initialised server with one secret holding ``value`` and a machine that read it once:
    root's API, the machine, the project and secret ids."""
    _, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": value})["id"]
    enroll = root.ok(
        "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": [secret]}
    )["token"]
    machine = Machine.enroll(server, vault, enroll)
    assert machine.request("GET", f"/v1/secret/{secret}").status_code == 200
    return root, machine, project, secret


def test_database_down_means_503_then_recovery(pg_server: Server) -> None:
    root, machine, project, secret = _machine_reading(pg_server, "DOWN-MARKER")

    set_connections(pg_server.database, allowed=False)
    responses = [machine.request("GET", f"/v1/secret/{secret}") for _ in range(5)]
    responses += [root.raw("GET", f"/api/secrets/{secret}") for _ in range(5)]
    responses.append(root.raw("POST", f"/api/projects/{project}/secrets", json={"name": "n", "value": "v"}))
    assert {r.status_code for r in responses} == {503}
    assert not any("DOWN-MARKER" in r.text for r in responses)
    assert all(list(r.json()) == ["error"] for r in responses)

    set_connections(pg_server.database, allowed=True)
    assert machine.request("GET", f"/v1/secret/{secret}").json() == {"value": "DOWN-MARKER"}
    assert root.call("GET", f"/api/secrets/{secret}")[0] == 200
    # The refused write was not half-applied: the name is still free.
    assert root.call("POST", f"/api/projects/{project}/secrets", {"name": "n", "value": "v"})[0] == 201


def test_connections_dropped_while_idle_are_replaced_unseen(pg_server: Server) -> None:
    """What a PostgreSQL restart does to the pool: every pooled connection is gone. The first
    requests after it are served, not answered 503."""
    root, machine, project, secret = _machine_reading(pg_server, "IDLE-MARKER")

    set_connections(pg_server.database, allowed=False)  # terminates every pooled connection
    set_connections(pg_server.database, allowed=True)
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
    assert machine.request("GET", f"/v1/secret/{secret}").json() == {"value": "IDLE-MARKER"}
    assert root.call("GET", f"/api/secrets/{secret}")[0] == 200
    assert root.call("POST", f"/api/projects/{project}/secrets", {"name": "n", "value": "v"})[0] == 201


def test_only_idle_connections_are_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_pg_database() as url:
        db = Database(url)
        pings: list[object] = []
        real = db.engine.dialect.do_ping
        monkeypatch.setattr(db.engine.dialect, "do_ping", lambda c: pings.append(c) or real(c))
        try:
            for _ in range(20):  # back to back: the same connection, never idle for long
                with db.read() as conn:
                    conn.exec_driver_sql("SELECT 1")
            assert pings == []
            monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.05)
            time.sleep(0.1)
            with db.read() as conn:
                conn.exec_driver_sql("SELECT 1")
            assert len(pings) == 1
        finally:
            db.engine.dispose()
