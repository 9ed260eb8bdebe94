"""Several stateless nodes on one PostgreSQL: revocation, replay protection, seal and the
audit chain hold across nodes; scheduled rotations run exactly once when a node dies."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Api, Machine, Server, fresh_pg_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, object]]:
    with fresh_pg_database() as url:
        quiet = {"SIKKER_AUTH_LOCKOUT_FAILURES": "100000"}  # replays below would lock 127.0.0.1 out
        nodes = [Server(url, tmp_path / f"node{i}", env=quiet).start() for i in range(3)]
        try:
            init = Api(nodes[0].url).ok("POST", "/api/sys/init", {"shares": 3, "threshold": 2})
            for node in nodes:  # every node unseals on its own
                for share in init["shares"][:2]:
                    Api(node.url).ok("POST", "/api/sys/unseal", {"share": share})
            root = Api(nodes[0].url, init["rootToken"])
            vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
            project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
            secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "v"})["id"]
            token = root.ok(
                "POST",
                f"/api/vaults/{vault}/enrollment-tokens",
                {"projectIds": [project], "secretIds": [secret], "maxUses": 100},
            )["token"]
            yield {
                "nodes": nodes,
                "root": root,
                "token": init["rootToken"],
                "shares": init["shares"],
                "vault": vault,
                "project": project,
                "secret": secret,
                "enroll": token,
            }
        finally:
            for node in nodes:
                node.stop()


def on(node: Server, machine: Machine) -> Machine:
    return Machine(node.url, machine.id, machine.key)


def test_a_grant_revoked_on_one_node_is_refused_by_the_others_at_once(cluster: dict[str, object]) -> None:
    nodes, root = cluster["nodes"], cluster["root"]
    assert isinstance(nodes, list) and isinstance(root, Api)
    served_after = 0
    for _ in range(10):
        machine = Machine.enroll(nodes[1], str(cluster["vault"]), str(cluster["enroll"]))
        for node in nodes[1:]:
            assert on(node, machine).request("GET", f"/v1/secret/{cluster['secret']}").status_code == 200
        root.ok("POST", f"/api/machines/{machine.id}/grants/remove", {"secretIds": [cluster["secret"]]})
        for node in nodes[1:]:
            served_after += (
                on(node, machine).request("GET", f"/v1/secret/{cluster['secret']}").status_code == 200
            )
    assert served_after == 0


def test_a_request_accepted_on_one_node_is_refused_on_every_other(cluster: dict[str, object]) -> None:
    nodes = cluster["nodes"]
    assert isinstance(nodes, list)
    machine = Machine.enroll(nodes[0], str(cluster["vault"]), str(cluster["enroll"]))
    path = f"/v1/secret/{cluster['secret']}"
    signed = [machine.headers("GET", path) for _ in range(200)]

    def send(node: Server, headers: dict[str, str]) -> int:
        import httpx

        return httpx.get(node.url + path, headers=headers, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda h: send(nodes[0], h), signed))
        replays = list(pool.map(lambda h: send(nodes[1], h), signed)) + list(
            pool.map(lambda h: send(nodes[2], h), signed)
        )
    assert first.count(200) == 200
    assert replays.count(200) == 0 and set(replays) == {401}


def test_sealing_one_node_seals_every_node_within_a_second(cluster: dict[str, object]) -> None:
    nodes, root = cluster["nodes"], cluster["root"]
    assert isinstance(nodes, list) and isinstance(root, Api)
    sealed_at = time.monotonic()
    root.ok("POST", "/api/sys/seal")
    delays = []
    for node in nodes[1:]:
        while Api(node.url).ok("GET", "/api/sys/status")["sealed"] is False:
            assert time.monotonic() - sealed_at < 1.5, "a node stayed unsealed"
            time.sleep(0.01)
        delays.append(time.monotonic() - sealed_at)
    print(f"\nseal reached the other nodes after {[round(d * 1000) for d in delays]} ms")
    assert max(delays) < 1.0


def test_records_written_on_three_nodes_form_one_valid_chain(cluster: dict[str, object]) -> None:
    nodes = cluster["nodes"]
    assert isinstance(nodes, list)
    machines = [Machine.enroll(node, str(cluster["vault"]), str(cluster["enroll"])) for node in nodes]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(
            pool.map(
                lambda i: machines[i % 3].request("GET", f"/v1/secret/{cluster['secret']}").status_code,
                range(150),
            )
        )
    assert statuses.count(200) == 150
    env = os.environ | {"SIKKER_ADDR": nodes[2].url, "SIKKER_TOKEN": str(cluster["token"])}
    verify = subprocess.run(
        [sys.executable, "-m", "sikker", "audit", "verify", "--vault", str(cluster["vault"]), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(verify.stdout)
    assert verify.returncode == 0 and report["ok"] and report["records"] > 150, verify.stdout + verify.stderr


def test_due_rotations_run_exactly_once_when_a_node_is_killed(cluster: dict[str, object]) -> None:
    nodes, root = cluster["nodes"], cluster["root"]
    assert isinstance(nodes, list) and isinstance(root, Api)
    ids = [
        root.ok("POST", f"/api/projects/{cluster['project']}/secrets", {"name": f"r{i}", "value": "x"})["id"]
        for i in range(30)
    ]
    for sid in ids:
        root.ok("PUT", f"/api/secrets/{sid}/rotation", {"intervalSeconds": 300, "length": 8})
    # Make them all due now, then kill a node while the schedulers pick them up.
    import sqlalchemy as sa

    engine = sa.create_engine(nodes[0].database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE rotation_policies SET next_due_ms = 0")
    time.sleep(2)
    assert nodes[0].proc is not None
    os.kill(nodes[0].proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    survivor = Api(nodes[1].url, str(cluster["token"]))
    while time.monotonic() < deadline:
        versions = [
            survivor.ok("GET", f"/api/secrets/{sid}/versions")["versions"][0]["version"] for sid in ids
        ]
        if all(v >= 2 for v in versions):
            break
        time.sleep(0.5)
    assert versions == [2] * 30, versions
    with engine.connect() as conn:
        counts = conn.exec_driver_sql(
            "SELECT count(*) FROM audit_log WHERE action = 'system:secret:rotate'"
        ).scalar_one()
    engine.dispose()
    assert counts == 30
