"""PostgreSQL going away: reads answer 503 (never 500, never a value or a stale answer) and
service comes back by itself when the database accepts connections again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

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


def test_database_down_means_503_then_recovery(pg_server: Server) -> None:
    _, token = init_and_unseal(pg_server.url)
    root = Api(pg_server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "DOWN-MARKER"})["id"]
    enroll = root.ok(
        "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": [secret]}
    )["token"]
    machine = Machine.enroll(pg_server, vault, enroll)
    assert machine.request("GET", f"/v1/secret/{secret}").status_code == 200

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
