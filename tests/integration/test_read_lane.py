"""Signed reads through the read lane (cached plans + group commit), on SQLite and PostgreSQL.

What a user notices: a change to access takes effect on the very next read, even when it is
made behind the server's back in SQL; a request sent twice at once is served once; every
served read has exactly one audit record and the chain still verifies; several worker
processes behave as one server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.integration.test_machine_plane import World, _world
from tests.support import Api, Machine, Server


@pytest.fixture(scope="module")
def lane(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("read-lane")
    yield from _world(module_database_url, base)


def _sql(world: World, statement: str, **params: object) -> None:
    engine = sa.create_engine(world.server.database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    engine.dispose()


def _read(machine: Machine, secret: str) -> httpx.Response:
    return machine.request("GET", f"/v1/secret/{secret}")


def test_machine_disabled_in_sql_is_refused_on_the_next_read(lane: World) -> None:
    m = lane.machine()
    assert [_read(m, lane.secret).status_code for _ in range(3)] == [200, 200, 200]  # plan cached
    _sql(lane, "UPDATE machines SET enabled = false WHERE id = :m", m=m.id)
    r = _read(m, lane.secret)
    assert r.status_code == 403 and "disabled" in r.json()["error"]


def test_grant_deleted_in_sql_is_refused_on_the_next_read(lane: World) -> None:
    m = lane.machine()
    assert _read(m, lane.secret).status_code == 200
    _sql(lane, "DELETE FROM grants WHERE machine_id = :m AND secret_id = :s", m=m.id, s=lane.secret)
    r = _read(m, lane.secret)
    assert r.status_code == 403 and "no grant" in r.json()["error"]
    assert _read(m, lane.fields_secret).status_code == 200  # the other grant still stands


def test_new_version_is_served_on_the_next_read(lane: World) -> None:
    m = lane.machine()
    secret = lane.root.ok(
        "POST", f"/api/projects/{lane.project}/secrets", {"name": "rolling", "value": "v1"}
    )["id"]
    lane.root.ok("POST", f"/api/machines/{m.id}/grants", {"secretIds": [secret]})
    assert _read(m, secret).json() == {"value": "v1"}
    lane.root.ok("PUT", f"/api/secrets/{secret}", {"value": "v2"})
    assert _read(m, secret).json() == {"value": "v2"}


def test_the_same_request_sent_twice_at_once_is_served_once(lane: World) -> None:
    m = lane.machine()
    path = f"/v1/secret/{lane.secret}"
    with ThreadPoolExecutor(8) as pool:
        for _ in range(10):
            same = [m.headers("GET", path)] * 4
            statuses = sorted(
                pool.map(lambda h: httpx.get(m.url + path, headers=h, timeout=30).status_code, same)
            )
            assert statuses == [200, 401, 401, 401]
    assert len(lane.audit(actor_id=m.id, action="machine:secret:read")) == 10
    replays = [r for r in lane.audit(actor_id=m.id) if "replayed" in r.reason]
    assert len(replays) == 30


def test_concurrent_reads_are_audited_once_each_and_the_chain_verifies(lane: World) -> None:
    machines = [lane.machine() for _ in range(4)]
    before = {m.id: len(lane.audit(actor_id=m.id, action="machine:secret:read")) for m in machines}

    def read(i: int) -> tuple[str, int, str]:
        m = machines[i % 4]
        r = _read(m, lane.secret)
        return m.id, r.status_code, r.text

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(read, range(200)))
    assert {(status, text) for _, status, text in results} == {(200, '{"value":"hunter2"}')}
    for m in machines:
        rows = lane.audit(actor_id=m.id, action="machine:secret:read")
        assert len(rows) - before[m.id] == 50
        assert all(r.result == "ok" and json.loads(r.target)["secret"] == lane.secret for r in rows)
    seqs = [r.seq for r in lane.audit(chain=lane.vault)]
    assert seqs == list(range(1, len(seqs) + 1))
    env = os.environ | {
        "SIKKER_ADDR": lane.server.url,
        "SIKKER_TOKEN": lane.root.headers["authorization"][7:],
    }
    argv = [sys.executable, "-m", "sikker", "audit", "verify", "--vault", lane.vault]
    verified = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- several worker processes --------------------------------------------------------------
def test_workers_need_a_server_that_unseals_itself(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "sikker", "server", "--data-dir", str(tmp_path), "--workers", "2"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "more than one worker needs a server that unseals itself" in done.stdout + done.stderr


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def test_two_workers_serve_as_one_server_and_stop_together(tmp_path: Path) -> None:
    server = Server("", tmp_path / "data", ["--dev", "--dev-root-token", "t0ken", "--workers", "2"]).start()
    try:
        assert server.proc is not None
        workers = _children(server.proc.pid)
        assert len(workers) == 2
        root = Api(server.url, "t0ken")
        vault = root.ok("POST", "/api/vaults", {"name": "w"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "v"})["id"]
        body = {"projectIds": [project], "secretIds": [secret], "maxUses": 1}
        token = root.ok("POST", f"/api/vaults/{vault}/enrollment-tokens", body)["token"]
        m = Machine.enroll(server, vault, token)
        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(lambda _: _read(m, secret).status_code, range(100))) == {200}
            root.ok("POST", f"/api/machines/{m.id}/grants/remove", {"secretIds": [secret]})
            # Whichever worker answers, the revocation holds from the next read on.
            assert set(pool.map(lambda _: _read(m, secret).status_code, range(100))) == {403}
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{w}").exists() for w in workers)
    finally:
        server.stop()
