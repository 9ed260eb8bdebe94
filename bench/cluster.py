"""Scale-out figures on one PostgreSQL: revocation propagation, cross-node replay, takeover
of scheduled work after SIGKILL, a PostgreSQL restart under load, throughput with 1-3 nodes.

    .venv/bin/python bench/cluster.py            # all parts, ~3 minutes
    .venv/bin/python bench/cluster.py --skip-restart   # leave the PostgreSQL server alone

The restart part runs `pg_ctlcluster <version> main restart` on this machine's server.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import Api, Machine, Server, fresh_pg_database

QUIET = {"SIKKER_AUTH_LOCKOUT_FAILURES": "1000000"}


def start_nodes(url: str, base: Path, count: int) -> tuple[list[Server], dict[str, str]]:
    nodes = [Server(url, base / f"node{i}", env=QUIET).start() for i in range(count)]
    init = Api(nodes[0].url).ok("POST", "/api/sys/init", {"shares": 1, "threshold": 1})
    for node in nodes:
        Api(node.url).ok("POST", "/api/sys/unseal", {"share": init["shares"][0]})
    root = Api(nodes[0].url, init["rootToken"])
    vault = root.ok("POST", "/api/vaults", {"name": "v"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "x" * 64})["id"]
    enroll = root.ok(
        "POST",
        f"/api/vaults/{vault}/enrollment-tokens",
        {"projectIds": [project], "secretIds": [secret], "maxUses": 1000},
    )["token"]
    return nodes, {
        "token": init["rootToken"],
        "vault": vault,
        "project": project,
        "secret": secret,
        "enroll": enroll,
    }


def at(node: Server, m: Machine) -> Machine:
    return Machine(node.url, m.id, m.key)


def propagation(nodes: list[Server], ctx: dict[str, str], trials: int) -> dict[str, object]:
    root = Api(nodes[0].url, ctx["token"])
    machine = Machine.enroll(nodes[1], ctx["vault"], ctx["enroll"])
    path = f"/v1/secret/{ctx['secret']}"
    delays, served_after = [], 0
    for _ in range(trials):
        root.ok("POST", f"/api/machines/{machine.id}/grants", {"secretIds": [ctx["secret"]]})
        committed = time.perf_counter()
        root.ok("POST", f"/api/machines/{machine.id}/grants/remove", {"secretIds": [ctx["secret"]]})
        committed = time.perf_counter()
        for node in nodes[1:]:
            while True:
                status = at(node, machine).request("GET", path).status_code
                if status == 403:
                    delays.append(time.perf_counter() - committed)
                    break
                served_after += status == 200
    delays.sort()
    return {
        "trials": trials,
        "reads_served_after_revoke": served_after,
        "first_refusal_ms_max": round(delays[-1] * 1000, 1),
        "first_refusal_ms_p99": round(delays[int(len(delays) * 0.99) - 1] * 1000, 1),
        "note": "delay = revoke response -> first refused read on the other node (one request)",
    }


def replay(nodes: list[Server], ctx: dict[str, str], count: int) -> dict[str, object]:
    machine = Machine.enroll(nodes[0], ctx["vault"], ctx["enroll"])
    path = f"/v1/secret/{ctx['secret']}"
    signed = [machine.headers("GET", path) for _ in range(count)]
    with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda h: client.get(nodes[0].url + path, headers=h).status_code, signed))
        again = [
            s
            for node in nodes[1:]
            for s in pool.map(lambda h, n=node: client.get(n.url + path, headers=h).status_code, signed)
        ]
    return {
        "accepted_on_node1": first.count(200),
        "replays": len(again),
        "replays_accepted": again.count(200),
    }


def takeover(nodes: list[Server], ctx: dict[str, str], count: int) -> dict[str, object]:
    root = Api(nodes[1].url, ctx["token"])
    ids = [
        root.ok("POST", f"/api/projects/{ctx['project']}/secrets", {"name": f"r{i}", "value": "x"})["id"]
        for i in range(count)
    ]
    for sid in ids:
        root.ok("PUT", f"/api/secrets/{sid}/rotation", {"intervalSeconds": 300, "length": 8})
    engine = sa.create_engine(nodes[0].database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE rotation_policies SET next_due_ms = 0")
    assert nodes[0].proc is not None
    time.sleep(0.5)
    os.kill(nodes[0].proc.pid, signal.SIGKILL)
    killed = time.time()
    while True:
        with engine.connect() as conn:
            done = conn.exec_driver_sql(
                "SELECT count(*), max(time_ms) FROM audit_log WHERE action = 'system:secret:rotate'"
            ).one()
        if done[0] >= count or time.time() - killed > 60:
            break
        time.sleep(0.2)
    with engine.connect() as conn:
        per_secret = conn.exec_driver_sql(
            "SELECT target, count(*) FROM audit_log WHERE action = 'system:secret:rotate' GROUP BY target"
        ).all()
        times = [
            t
            for (t,) in conn.exec_driver_sql(
                "SELECT time_ms FROM audit_log WHERE action = 'system:secret:rotate' ORDER BY time_ms"
            )
        ]
    engine.dispose()
    after_kill = [t for t in times if t >= killed * 1000]
    return {
        "rotations_due": count,
        "rotations_done": len(times),
        "max_times_one_secret_rotated": max(c for _, c in per_secret),
        "done_before_kill": len(times) - len(after_kill),
        "first_rotation_after_kill_s": round(after_kill[0] / 1000 - killed, 2) if after_kill else None,
        "all_done_after_kill_s": round(times[-1] / 1000 - killed, 2),
    }


def restart_under_load(nodes: list[Server], ctx: dict[str, str], seconds: float) -> dict[str, object]:
    """Readers on every live node and one writer, while the PostgreSQL server restarts."""
    live = [n for n in nodes if n.proc and n.proc.poll() is None]
    root = Api(live[0].url, ctx["token"])
    machine = Machine.enroll(live[0], ctx["vault"], ctx["enroll"])
    path = f"/v1/secret/{ctx['secret']}"
    created = root.ok("POST", f"/api/projects/{ctx['project']}/secrets", {"name": "w", "value": "0"})
    statuses: dict[int, int] = {}
    events: list[tuple[float, bool]] = []  # (time, succeeded)
    acked: list[tuple[int, str]] = []
    stop = threading.Event()

    def count(status: int) -> None:
        statuses[status] = statuses.get(status, 0) + 1
        events.append((time.time(), status in (200, 201)))

    def reader(node: Server) -> None:
        while not stop.is_set():
            try:
                count(at(node, machine).request("GET", path).status_code)
            except httpx.HTTPError:
                count(0)

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = root.raw("PUT", f"/api/secrets/{created['id']}", json={"value": f"v{i}"})
                count(r.status_code)
                if r.status_code == 200:
                    acked.append((r.json()["version"], f"v{i}"))
            except httpx.HTTPError:
                count(0)

    threads = [threading.Thread(target=reader, args=(n,)) for n in live] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    time.sleep(3)
    version = sorted(os.listdir("/etc/postgresql"))[0]
    began = time.time()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True)
    restart_s = time.time() - began
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    lost = 0
    for number, value in acked:
        got = root.ok("GET", f"/api/secrets/{created['id']}", params={"version": number})["value"]
        lost += got != value
    failed = [t for t, ok in sorted(events) if not ok]
    recovered = [t for t, ok in sorted(events) if ok and failed and t > failed[-1]]
    return {
        "statuses": statuses,
        "acknowledged_writes": len(acked),
        "acknowledged_writes_lost": lost,
        "pg_restart_command_s": round(restart_s, 2),
        "outage_s_first_to_last_failure": round(failed[-1] - failed[0], 2) if failed else 0.0,
        "first_success_after_last_failure_s": round(recovered[0] - failed[-1], 3) if recovered else None,
    }


def throughput(url: str, base: Path, count: int, seconds: float) -> dict[str, object]:
    with fresh_pg_database() as fresh:
        nodes, ctx = start_nodes(fresh, base / f"tp{count}", count)
        try:
            machines = [Machine.enroll(n, ctx["vault"], ctx["enroll"]) for n in nodes]
            path = f"/v1/secret/{ctx['secret']}"
            done = [0]
            stop = threading.Event()

            def client(i: int) -> None:
                m = machines[i % count]
                with httpx.Client(timeout=30) as http:
                    while not stop.is_set():
                        if http.get(m.url + path, headers=m.headers("GET", path)).status_code == 200:
                            done[0] += 1

            threads = [threading.Thread(target=client, args=(i,)) for i in range(8 * count)]
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop.set()
            for t in threads:
                t.join()
            return {"nodes": count, "reads_per_s": round(done[0] / seconds, 1)}
        finally:
            for n in nodes:
                n.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-restart", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sikker-cluster-"))
    results: dict[str, object] = {}
    with fresh_pg_database() as url:
        nodes, ctx = start_nodes(url, base, 3)
        try:
            results["propagation"] = propagation(nodes, ctx, 100)
            print("propagation", results["propagation"], flush=True)
            results["replay"] = replay(nodes, ctx, 1000)
            print("replay", results["replay"], flush=True)
            results["takeover"] = takeover(nodes, ctx, 100)
            print("takeover", results["takeover"], flush=True)
            if not args.skip_restart:
                results["pg_restart"] = restart_under_load(nodes, ctx, 8)
                print("pg_restart", results["pg_restart"], flush=True)
        finally:
            for n in nodes:
                n.stop()
    results["throughput"] = [throughput(url, base, n, 10) for n in (1, 2, 3)]
    print("throughput", results["throughput"], flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
