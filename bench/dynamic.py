"""Dynamic database secrets: the issue-15 figures, measured on the local databases.

    make bench-dynamic                                  # every part, default sizes
    .venv/bin/python bench/dynamic.py --parts a,b       # only some parts
    .venv/bin/python bench/dynamic.py --leases 2000 --outage-leases 200 --restart-leases 20000

(a) time to create one lease (signed POST /v1/dynamic/{id}/leases), p50/p99 per engine:
    PostgreSQL (a private scram-sha-256 cluster), MariaDB (127.0.0.1:3306, root), Redis
    (127.0.0.1:6379, default user);
(b) --leases N (10,000) PostgreSQL leases with a short max TTL, left to expire: users that
    outlive their max TTL by more than the sweeper interval (target 0);
(c) the private PostgreSQL cluster stopped across the expiry of --outage-leases M (1,000)
    leases for --outage-seconds (90; 300 for the issue's 5 minutes): percent revoked within
    one minute of its return (target 100);
(d) kill -9 of the server during --concurrent 200 concurrent lease creations, restart, wait
    for the sweeper: database users without a lease record, and the orphan sweeper's dry run
    (target 0);
(e) restart with --restart-leases 100,000 live leases, INSERTED DIRECTLY into the store's
    leases table (copies of one real lease's sealed blobs; minting 100,000 real users would
    take hours): time from spawn to the first served machine read, against an empty store.

Every part uses its own server (SQLite store, temp dir) with
SIKKER_LEASE_SWEEP_INTERVAL_SECONDS=--sweep (5). Needs the three local databases and the
PostgreSQL server binaries (initdb) for the private cluster.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import Api, Machine, Server, free_port, init_and_unseal

from sikker.core.dynamic import user_prefix


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# -- a private PostgreSQL cluster that can be stopped and started ---------------------------
class Cluster:
    """A throwaway scram-sha-256 PostgreSQL cluster (like tests.support.scram_postgres) that
    the bench can stop and start, to take the database down."""

    def __init__(self) -> None:
        root = Path("/usr/lib/postgresql")
        versions = sorted(root.iterdir(), key=lambda p: int(p.name)) if root.is_dir() else []
        bins = [v / "bin" for v in versions if (v / "bin" / "initdb").exists()]
        if not bins:
            sys.exit("PostgreSQL server binaries (initdb) are not installed")
        self.bindir = bins[-1]
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.data = Path(tempfile.mkdtemp(prefix="sikker-bench-pg-"))
        self.password, self.port, self.admin = secrets.token_urlsafe(16), free_port(), "admin"
        (self.data / "pw").write_text(self.password)
        if self.as_postgres:
            shutil.chown(self.data, "postgres")
            shutil.chown(self.data / "pw", "postgres")
        self.cluster = self.data / "cluster"
        subprocess.run(
            [*self.as_postgres, str(self.bindir / "initdb"), "-D", str(self.cluster), "-U", self.admin,
             f"--pwfile={self.data / 'pw'}", "--auth=scram-sha-256", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.start()

    def _ctl(self, *args: str) -> None:
        ctl = [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.cluster)]
        subprocess.run([*ctl, *args], check=True, capture_output=True)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        )
        self._ctl("-o", options, "-l", str(self.data / "log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, dbname="postgres", user=self.admin,
            password=self.password, autocommit=True, connect_timeout=5,
        )  # fmt: skip

    def users(self, prefix: str) -> set[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,))
            return {str(r[0]) for r in rows}

    def close(self) -> None:
        try:
            self._ctl("-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.data, ignore_errors=True)


# -- a server with one vault, one project and one enrolled machine -----------------------------
@dataclass
class World:
    server: Server
    shares: list[str]
    root: Api
    vault: str
    project: str
    machine: Machine
    plain: str


def start_world(base: Path, sweep: int) -> World:
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    server = Server(
        f"sqlite:///{base / 'sikker.db'}",
        base / "data",
        env={
            "SIKKER_LEASE_SWEEP_INTERVAL_SECONDS": str(sweep),
            "SIKKER_DYNAMIC_ALLOWED_NETWORKS": "127.0.0.0/8",
        },
    ).start()
    shares, token = init_and_unseal(server.url)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "bench"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "db"})["id"]
    plain = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "plain", "value": "v"})["id"]
    enroll = root.ok(
        "POST",
        f"/api/vaults/{vault}/enrollment-tokens",
        {"projectIds": [project], "secretIds": [plain], "maxUses": 5},
    )["token"]
    machine = Machine.enroll(server, vault, enroll)
    return World(server, shares, root, vault, project, machine, plain)


def unseal(world: World) -> None:
    for share in world.shares[:2]:
        Api(world.server.url).ok("POST", "/api/sys/unseal", {"share": share})


def define(
    world: World,
    name: str,
    engine: str,
    port: int,
    admin: tuple[str, str],
    role: str,
    ttl: int,
    max_ttl: int,
    database: str = "",
) -> str:
    """A dynamic secret granted to the world's machine; returns its id."""
    admin_secret = world.root.ok(
        "POST",
        f"/api/projects/{world.project}/secrets",
        {"name": f"{name}-admin", "fields": {"username": admin[0], "password": admin[1]}},
    )["id"]
    body = {
        "name": name, "engine": engine, "host": "127.0.0.1", "port": port, "database": database,
        "adminSecret": admin_secret, "grantRole": role, "defaultTtl": ttl, "maxTtl": max_ttl,
    }  # fmt: skip
    dynamic = world.root.ok("POST", f"/api/projects/{world.project}/dynamic-secrets", body)["id"]
    world.root.ok("POST", f"/api/machines/{world.machine.id}/grants", {"secretIds": [dynamic]})
    return str(dynamic)


def lease(world: World, dynamic: str, ttl: int | None = None) -> dict[str, Any]:
    body = orjson.dumps({"ttl": ttl} if ttl else {})
    response = world.machine.request("POST", f"/v1/dynamic/{dynamic}/leases", body)
    if response.status_code != 200:
        raise RuntimeError(f"lease: {response.status_code} {response.text[:300]}")
    return dict(response.json())


def all_leases(world: World, **filters: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**filters, "limit": "500"} | ({"cursor": cursor} if cursor else {})
        page = world.root.ok("GET", f"/api/vaults/{world.vault}/leases", params=params)
        found += page["leases"]
        cursor = page.get("next")
        if not cursor or not page["leases"]:
            return found


def many(count: int, workers: int, job: Callable[[int], Any]) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(job, range(count)))


# -- the databases -----------------------------------------------------------------------------
@contextmanager
def mariadb_role() -> Iterator[str]:
    import pymysql

    role = f"bench_role_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE `{role}`")
        cur.execute(f"GRANT SELECT ON test.* TO `{role}`")
    try:
        yield role
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS `{role}`")
        conn.close()


def pg_role(cluster: Cluster) -> str:
    role = f"bench_role_{uuid.uuid4().hex[:8]}"
    with cluster.connect() as conn:
        conn.execute(f'CREATE ROLE "{role}" NOLOGIN')
    return role


# -- (a) time to create one lease, per engine ----------------------------------------------------
def part_a(args: argparse.Namespace, cluster: Cluster, base: Path) -> None:
    world = start_world(base / "a", args.sweep)
    try:
        targets: list[tuple[str, Callable[[], str]]] = [
            ("postgresql", lambda: define(world, "pg", "postgresql", cluster.port,
                                          (cluster.admin, cluster.password), pg_role(cluster), 600, 600, "postgres")),
            ("redis", lambda: define(world, "redis", "redis", 6379, ("default", ""), "~bench:* +get", 600, 600, "0")),
        ]  # fmt: skip
        with mariadb_role() as role:
            targets.insert(
                1,
                (
                    "mariadb",
                    lambda: define(world, "maria", "mysql", 3306, ("root", ""), role, 600, 600, "test"),
                ),
            )
            print(f"\n(a) time to create one lease, {args.samples} sequential leases per engine, one machine")
            print(f"{'engine':<12}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
            for engine, make in targets:
                dynamic = make()
                for _ in range(5):  # warm-up: connections, caches
                    lease(world, dynamic)
                times = []
                for _ in range(args.samples):
                    started = time.perf_counter()
                    lease(world, dynamic)
                    times.append((time.perf_counter() - started) * 1000)
                print(
                    f"{engine:<12}{statistics.median(times):>10.1f}{percentile(times, 99):>10.1f}{max(times):>10.1f}"
                )
                revoked = world.root.ok(
                    "POST", f"/api/vaults/{world.vault}/leases/revoke", {"dynamic": dynamic, "sync": True}
                )
                log(f"{engine}: revoked {revoked['revoked']} bench leases")
    finally:
        world.server.stop()


# -- (b) N leases expire: users that outlive their max TTL ---------------------------------------
def part_b(args: argparse.Namespace, cluster: Cluster, base: Path) -> None:
    world = start_world(base / "b", args.sweep)
    try:
        dynamic = define(world, "pg-b", "postgresql", cluster.port, (cluster.admin, cluster.password),
                         pg_role(cluster), args.ttl, args.ttl, "postgres")  # fmt: skip
        prefix = user_prefix(dynamic)
        seen: set[str] = set()
        gone_at: dict[str, int] = {}
        stop = threading.Event()

        def watch() -> None:
            # From before the first lease: a user's drop time is when a poll first misses it.
            while not stop.is_set():
                present = cluster.users(prefix)
                now_ms = int(time.time() * 1000)
                for user in seen - present:
                    gone_at.setdefault(user, now_ms)
                seen.update(present)
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        log(f"(b) creating {args.leases} leases (max TTL {args.ttl} s) with {args.workers} workers")
        started = time.monotonic()
        leased = many(args.leases, args.workers, lambda _: lease(world, dynamic))
        created_s = time.monotonic() - started
        log(f"(b) created in {created_s:.0f} s ({args.leases / created_s:.0f}/s); watching the users go")
        max_end = {str(x["username"]): int(x["maxExpiresAt"]) for x in leased}
        deadline = time.time() + args.ttl + args.drain
        while len(gone_at.keys() & max_end.keys()) < len(max_end) and time.time() < deadline:
            time.sleep(1)
        stop.set()
        watcher.join()
        never = 10**15
        late = [u for u, end in max_end.items() if gone_at.get(u, never) - end > args.sweep * 1000]
        overshoot = sorted((gone_at.get(u, never) - end) / 1000 for u, end in max_end.items())
        remaining = sum(1 for u in max_end if u not in gone_at)
        print(f"\n(b) {args.leases} PostgreSQL leases, max TTL {args.ttl} s, sweeper every {args.sweep} s")
        print(f"    created in {created_s:.0f} s with {args.workers} concurrent clients")
        print(f"    users still present {args.sweep} s after their max TTL: {len(late)} (target 0)")
        print(f"    users never dropped within {args.drain} s after the last max TTL: {remaining}")
        print(
            f"    time from max TTL to DROP: p50 {statistics.median(overshoot):.1f} s, "
            f"p99 {percentile(overshoot, 99):.1f} s (0.5 s polling; never dropped counts as infinite)"
        )
    finally:
        world.server.stop()


# -- (c) the database down across the expiry of M leases -----------------------------------------
def part_c(args: argparse.Namespace, cluster: Cluster, base: Path) -> None:
    world = start_world(base / "c", args.sweep)
    try:
        dynamic = define(world, "pg-c", "postgresql", cluster.port, (cluster.admin, cluster.password),
                         pg_role(cluster), 3600, 3600, "postgres")  # fmt: skip
        # Every lease must expire while the database is down: each asks for the TTL that ends
        # it at one common instant, after the creations (rate measured on 20 leases) are done.
        probe = time.monotonic()
        many(20, args.workers, lambda _: lease(world, dynamic))
        rate = 20 / (time.monotonic() - probe)
        world.root.ok("POST", f"/api/vaults/{world.vault}/leases/revoke", {"dynamic": dynamic, "sync": True})
        expire_at = time.time() + 2 * args.outage_leases / rate + 20
        log(
            f"(c) creating {args.outage_leases} leases (~{rate:.0f}/s), all expiring at +{expire_at - time.time():.0f} s"
        )
        leased = many(
            args.outage_leases,
            args.workers,
            lambda _: lease(world, dynamic, ttl=max(1, round(expire_at - time.time()))),
        )
        users = {str(x["username"]) for x in leased}
        cluster.stop()
        down_at = time.time()
        early = sum(1 for x in leased if int(x["expiresAt"]) / 1000 <= down_at)
        up_at = max(down_at + args.outage_seconds, expire_at + 10)
        log(
            f"(c) database stopped; leases expire at +{expire_at - down_at:.0f} s; "
            f"{early} expired before the stop; down for {up_at - down_at:.0f} s"
        )
        time.sleep(max(0.0, up_at - time.time()))
        cluster.start()
        back_at = time.time()
        log("(c) database back; watching the users go")
        prefix = user_prefix(dynamic)
        gone_at: dict[str, float] = {}
        while len(gone_at) < len(users) and time.time() < back_at + 600:
            present = cluster.users(prefix)
            now = time.time()
            for user in users - present:
                gone_at.setdefault(user, now)
            time.sleep(0.5)
        within = sum(1 for u in users if u in gone_at and gone_at[u] - back_at <= 60)
        after = sorted(gone_at.get(u, float("inf")) - back_at for u in users)
        print(
            f"\n(c) {len(users)} leases expiring during a {back_at - down_at:.0f} s database outage ({early} expired before it)"
        )
        print(
            f"    revoked within 60 s of the database's return: {within}/{len(users)} = {100 * within / len(users):.1f} %"
        )
        print(f"    last one dropped {after[-1]:.1f} s after the return")
    finally:
        world.server.stop()


# -- (d) kill -9 during concurrent lease creations ----------------------------------------------
def part_d(args: argparse.Namespace, cluster: Cluster, base: Path) -> None:
    world = start_world(base / "d", args.sweep)
    try:
        dynamic = define(world, "pg-d", "postgresql", cluster.port, (cluster.admin, cluster.password),
                         pg_role(cluster), 3600, 3600, "postgres")  # fmt: skip
        prefix = user_prefix(dynamic)
        answered: list[int] = []
        barrier = threading.Barrier(args.concurrent + 1)

        def one(_: int) -> None:
            barrier.wait()
            try:
                lease(world, dynamic)
                answered.append(1)
            except (RuntimeError, httpx.HTTPError):
                pass

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.concurrent)]
        for t in threads:
            t.start()
        barrier.wait()
        time.sleep(args.kill_after)
        assert world.server.proc is not None
        os.kill(world.server.proc.pid, signal.SIGKILL)
        world.server.proc.wait()
        for t in threads:
            t.join(60)
        log(
            f"(d) server killed {args.kill_after} s into {args.concurrent} creations; {len(answered)} answered"
        )
        world.server.start()
        unseal(world)
        at_restart = len(cluster.users(prefix))
        restart_states: dict[str, int] = {}
        for x in all_leases(world, dynamic=dynamic):
            restart_states[x["state"]] = restart_states.get(x["state"], 0) + 1
        wait = 60 + 3 * args.sweep + 5  # 'creating' leases older than 60 s are revoked by the sweeper
        log(f"(d) restarted; waiting {wait} s for the sweeper to settle 'creating' leases")
        time.sleep(wait)
        users = cluster.users(prefix)
        recorded = all_leases(world, dynamic=dynamic)
        records = {str(x["username"]) for x in recorded}
        live = {str(x["username"]) for x in recorded if x["state"] in ("creating", "active", "revoking")}
        dry = world.root.ok("POST", f"/api/dynamic-secrets/{dynamic}/orphans", {"dryRun": True})
        states: dict[str, int] = {}
        for x in recorded:
            states[x["state"]] = states.get(x["state"], 0) + 1
        print(
            f"\n(d) kill -9 {args.kill_after} s into {args.concurrent} concurrent lease creations, restart, {wait} s"
        )
        print(f"    at restart: {at_restart} database users, lease states {restart_states}")
        print(f"    after the wait: lease states {states}")
        print(
            f"    database users {len(users)}, with a lease record {len(users & records)}, live {len(users & live)}"
        )
        print(f"    database users without a lease record: {len(users - records)} (target 0)")
        print(f"    orphan sweeper dry run: {len(dry['orphans'])} orphan(s) (target 0)")
    finally:
        world.server.stop()


# -- (e) restart with many live leases --------------------------------------------------------------
def first_read(world: World) -> tuple[float, float, float]:
    """(spawn -> HTTP up, -> unsealed, -> first machine read served), seconds."""
    spawn = time.monotonic()
    world.server.start()
    up = time.monotonic()
    unseal(world)
    unsealed = time.monotonic()
    while True:
        response = world.machine.request("GET", f"/v1/secret/{world.plain}")
        if response.status_code == 200:
            break
        time.sleep(0.01)
    return up - spawn, unsealed - spawn, time.monotonic() - spawn


def median_restart(world: World, times: int) -> tuple[float, ...]:
    """The per-column medians of ``times`` restarts (the machine is shared: one is noisy)."""
    runs = []
    for _ in range(times):
        runs.append(first_read(world))
        world.server.stop()
    return tuple(statistics.median(column) for column in zip(*runs, strict=True))


def part_e(args: argparse.Namespace, cluster: Cluster, base: Path) -> None:
    world = start_world(base / "e", args.sweep)
    try:
        dynamic = define(world, "pg-e", "postgresql", cluster.port, (cluster.admin, cluster.password),
                         pg_role(cluster), 86400, 86400, "postgres")  # fmt: skip
        lease(world, dynamic)
        world.server.stop()
        baseline = median_restart(world, args.restarts)
        db = sqlite3.connect(base / "e" / "sikker.db")
        columns = [r[1] for r in db.execute("PRAGMA table_info(leases)")]
        template = dict(zip(columns, db.execute("SELECT * FROM leases LIMIT 1").fetchone(), strict=True))
        log(f"(e) inserting {args.restart_leases} lease rows directly into the store")
        far = int(time.time() * 1000) + 86_400_000
        rows = []
        for i in range(args.restart_leases):
            row = dict(template)
            row.update(id=f"lease_bench{i:011d}", username=f"{template['username']}_{i}", state="active",
                       expires_ms=far, max_expires_ms=far)  # fmt: skip
            rows.append(tuple(row[c] for c in columns))
        db.executemany(
            f"INSERT INTO leases ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows
        )
        db.commit()
        count = db.execute("SELECT COUNT(*) FROM leases WHERE state = 'active'").fetchone()[0]
        db.close()
        loaded = median_restart(world, args.restarts)
        print(
            f"\n(e) restart, time to the first served machine read (SQLite store; rows inserted directly;"
            f" median of {args.restarts} restarts)"
        )
        print(f"{'live leases':<14}{'HTTP up s':>11}{'unsealed s':>12}{'first read s':>14}")
        print(f"{1:<14}{baseline[0]:>11.2f}{baseline[1]:>12.2f}{baseline[2]:>14.2f}")
        print(f"{count:<14}{loaded[0]:>11.2f}{loaded[1]:>12.2f}{loaded[2]:>14.2f}")
    finally:
        world.server.stop()


PARTS = {"a": part_a, "b": part_b, "c": part_c, "d": part_d, "e": part_e}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="a,b,c,d,e", help="comma-separated subset of a,b,c,d,e")
    parser.add_argument("--samples", type=int, default=200, help="(a) leases timed per engine")
    parser.add_argument("--leases", type=int, default=10_000, help="(b) leases created then expired")
    parser.add_argument("--ttl", type=int, default=60, help="(b) their max TTL, seconds")
    parser.add_argument("--drain", type=int, default=1200, help="(b) seconds to wait for the last drops")
    parser.add_argument("--workers", type=int, default=8, help="(b, c) concurrent lease creations")
    parser.add_argument("--outage-leases", type=int, default=1000, help="(c) leases expiring while down")
    parser.add_argument("--outage-seconds", type=int, default=90, help="(c) how long the database is down")
    parser.add_argument("--concurrent", type=int, default=200, help="(d) concurrent creations")
    parser.add_argument("--kill-after", type=float, default=1.0, help="(d) seconds before kill -9")
    parser.add_argument("--restart-leases", type=int, default=100_000, help="(e) live leases at restart")
    parser.add_argument("--restarts", type=int, default=3, help="(e) restarts timed per store size")
    parser.add_argument("--sweep", type=int, default=5, help="lease_sweep_interval_seconds of the servers")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sikker-bench-dynamic-"))
    cluster = Cluster()
    print(f"PostgreSQL cluster on port {cluster.port}; servers in {base}; sweeper every {args.sweep} s")
    try:
        for part in args.parts.split(","):
            PARTS[part.strip()](args, cluster, base)
    finally:
        cluster.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
