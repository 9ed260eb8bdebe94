"""Signed reads at scale (1,000,000 secrets, 10,000 machines) against 1,000 secrets, and the
time from ``sikker server --dev`` to the first served read (against ``bao server -dev``).

    .venv/bin/python bench/scale.py reads                        # full size, 15 s rows
    .venv/bin/python bench/scale.py reads --secrets 2000 --machines 20 --duration 2
    .venv/bin/python bench/scale.py startup --repeats 5

``reads``:

1. Builds two data sets with Sikker's own layers, not the HTTP API (1M secrets through the
   API would take hours): ``prepare()`` of ``sikker server --dev`` initialises and unseals
   the SQLite data dir (dev key file), the vault and projects come from VaultService, and
   then the secrets (64 random bytes, hex; envelope-encrypted one by one under the real
   project key), machines (real Ed25519 public keys), memberships and grants are
   bulk-inserted into the server's tables, one transaction per project. Not written: the
   per-row audit records (secret create, grant add) the API would have added.
   - small: --small-secrets (1,000) secrets in one project, one machine granted all.
   - large: --secrets across --projects, --machines each a member of one project and
     granted --grants-per-machine of its secrets (1M secrets, 10k machines, 1M grants).
   Machine i's key is derived from a seed kept in the data dir's manifest, so a data dir
   built once can be reused (--data-dir; the large one is kept under /tmp by default).
2. Starts the server with the same command as bench/signed_reads.py (a fresh process per
   row, on a fresh copy of the data set as built; no --workers flag, so as the server runs
   by default: --workers N to pin), checks a few reads return the values written, then for
   each row: a warm-up
   (discarded), then wrk with bench/presigned.lua over pre-signed unique requests
   ``GET /v1/secret/<id>``, each for a (machine, granted secret) pair drawn uniformly at
   random and signed by that machine's key. Rows alternate small, large (--rounds times);
   with --hot-pairs N also "large-hot": the large store, requests drawn from N fixed pairs
   only (tells the cost of the store's size from the cost of a large working set).
3. Reports req/s, latency percentiles, server CPU per request and peak RSS (from /proc),
   non-2xx and the CPU everything else used during the row; then large/small req/s.

``startup``: spawn -> /api/sys/health answers 200, and spawn -> first 200 of a signed
GET /v1/secret/<id>, with vault, project, secret, enrollment token and machine created
through the API as fast as possible in between (fresh data dir each time). The same for
``bao server -dev``: spawn -> /v1/sys/health 200, and spawn -> first 200 of a KV v2 GET
after a PUT. Median, min and max over --repeats. Sikker's own modules are compiled to bytecode
once (compileall) and its servers spawned without PYTHONDONTWRITEBYTECODE, as a wheel install
(which ships bytecode) runs: an editable install under PYTHONDONTWRITEBYTECODE=1 would compile
every module at every start.

All traffic is on 127.0.0.1. JSON goes to bench/results/ (gitignored).
"""

from __future__ import annotations

import argparse
import base64
import compileall
import hashlib
import importlib.util
import json
import os
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import procfs
import signed_reads as sr
from nacl.signing import SigningKey

if TYPE_CHECKING:
    from sikker.core.model import Project
    from sikker.service.bootstrap import Services

HERE = Path(__file__).resolve().parent
MANIFEST = "bench-scale.json"
PARTIAL = "bench-scale.partial"  # present while a build is in progress
BUILDER = "system:bench-scale"


@dataclass(frozen=True, slots=True)
class Size:
    secrets: int
    machines: int
    grants: int  # per machine
    projects: int

    def check(self) -> None:
        per_project = self.secrets // self.projects
        if min(self.secrets, self.machines, self.grants, self.projects) < 1:
            raise SystemExit("secrets, machines, grants per machine and projects must be >= 1")
        if self.grants > per_project:
            raise SystemExit(
                f"{self.grants} grants per machine > {per_project} secrets per project: "
                "lower --grants-per-machine or --projects"
            )


# -- building a data set with Sikker's own layers ---------------------------------------------
def machine_key(seed: bytes, index: int) -> SigningKey:
    """Machine ``index``'s Ed25519 key, derived from the data set's seed (so a reused dir can sign)."""
    return SigningKey(hashlib.sha256(seed + index.to_bytes(4, "big")).digest())


def disk_mib(path: Path) -> float:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) / 2**20


def insert_secrets(
    services: Services, project: Project, first: int, count: int, now: int
) -> tuple[list[str], str]:
    """``count`` secrets of 64 random bytes (hex) at version 1, each sealed under a fresh data key
    as SecretService.write_version does; one transaction. Returns their ids and the first value."""
    from sqlalchemy import insert

    from sikker.core import ids, values
    from sikker.crypto import envelope
    from sikker.service.base import project_key
    from sikker.storage import tables

    secret_rows, version_rows, first_value = [], [], ""
    with services.deps.db.write() as conn:
        conn.exec_driver_sql("PRAGMA cache_size=-524288")  # 512 MiB: faster index building
        key = project_key(services.deps, conn, project, project.key_version)
        for i in range(count):
            sid = ids.new_id("secret")
            value = values.standard(secrets.token_bytes(64).hex())
            where = envelope.Binding(project.vault_id, project.id, sid, 1)
            sealed = envelope.seal_value(key, project.key_version, where, value.plaintext)
            first_value = first_value or value.plaintext.decode()
            secret_rows.append(
                {
                    "id": sid,
                    "vault_id": project.vault_id,
                    "project_id": project.id,
                    "name": f"BENCH_SECRET_{first + i:07d}",
                    "kind": value.kind,
                    "current_version": 1,
                    "created_ms": now,
                    "updated_ms": now,
                    "deleted_ms": None,
                }
            )
            version_rows.append(
                {
                    "secret_id": sid,
                    "version": 1,
                    "ciphertext": sealed.ciphertext,
                    "wrapped_dek": sealed.wrapped_dek,
                    "key_version": sealed.key_version,
                    "field_names": value.field_names,
                    "created_ms": now,
                    "created_by": BUILDER,
                }
            )
        conn.execute(insert(tables.secrets), secret_rows)
        conn.execute(insert(tables.secret_versions), version_rows)
    return [str(r["id"]) for r in secret_rows], first_value


def insert_machines(
    services: Services,
    projects: list[Project],
    by_project: list[list[str]],
    size: Size,
    seed: bytes,
    now: int,
) -> list[str]:
    """Machine m: a member of project m % P, granted a window of G of its secrets (all distinct),
    approved and enabled, with machine_key(seed, m)'s public key. Returns the ids, in order."""
    from sqlalchemy import insert

    from sikker.storage import tables

    machine_ids: list[str] = []
    machine_rows, member_rows, grant_rows = [], [], []
    for m in range(size.machines):
        mid, name, p = str(uuid.uuid4()), f"bench-{m:06d}", m % size.projects
        machine_ids.append(mid)
        machine_rows.append(
            {
                "id": mid,
                "vault_id": projects[p].vault_id,
                "name": name,
                "hostname": name,
                "public_key": bytes(machine_key(seed, m).verify_key),
                "kind": "standard",
                "approved": True,
                "enabled": True,
                "allowed_cidr": None,
                "enrollment_token_id": None,
                "created_ms": now,
                "expires_ms": None,
                "revoked_ms": None,
                "last_poll_ms": None,
            }
        )
        member_rows.append({"machine_id": mid, "project_id": projects[p].id, "created_ms": now})
        pool, start = by_project[p], (m // size.projects) * size.grants
        grant_rows.extend(
            {"machine_id": mid, "secret_id": pool[(start + j) % len(pool)], "created_ms": now}
            for j in range(size.grants)
        )
    with services.deps.db.write() as conn:
        conn.exec_driver_sql("PRAGMA cache_size=-524288")
        conn.execute(insert(tables.machines), machine_rows)
        conn.execute(insert(tables.machine_projects), member_rows)
        conn.execute(insert(tables.grants), grant_rows)
    return machine_ids


def build(data_dir: Path, size: Size) -> dict[str, object]:
    """Initialise ``data_dir`` as ``sikker server --dev`` would and fill it; returns the manifest."""
    from sikker import config
    from sikker.cli.server import prepare
    from sikker.core.audit import Actor
    from sikker.core.model import Principal
    from sikker.service.bootstrap import bootstrap

    t0 = time.monotonic()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (data_dir / PARTIAL).touch()
    flags = {
        "dev": True,
        "data_dir": data_dir,
        "seal_key_file": data_dir / "dev-unseal.key",  # what `server --dev` uses
        "dev_root_token": sr.ROOT_TOKEN,
    }
    services = bootstrap(config.load(flags))
    seed = secrets.token_bytes(32)
    samples: list[dict[str, object]] = []
    try:
        prepare(services)  # migrate, initialise, unseal: exactly the dev server's start
        root, actor = Principal("root", "bench-scale", None), Actor("system", "bench-scale")
        vault = services.vaults.create_vault(root, actor, "bench")
        projects = [
            services.vaults.create_project(root, actor, vault.id, f"scale-{p:04d}")
            for p in range(size.projects)
        ]
        now = services.deps.clock()
        by_project: list[list[str]] = []
        for p, project in enumerate(projects):
            count = size.secrets // size.projects + (1 if p < size.secrets % size.projects else 0)
            made, first_value = insert_secrets(services, project, sum(map(len, by_project)), count, now)
            by_project.append(made)
            if p < min(8, size.machines):  # machine p is granted secret 0 of project p: read it back
                samples.append({"machine": p, "secret": made[0], "value": first_value})
            if len(projects) > 1 and (p + 1) % max(1, len(projects) // 10) == 0:
                print(f"    {sum(map(len, by_project))} secrets, {time.monotonic() - t0:.0f} s", flush=True)
        machine_ids = insert_machines(services, projects, by_project, size, seed, now)
    finally:
        services.close()
    manifest: dict[str, object] = {
        "size": asdict(size),
        "seed": seed.hex(),
        "vault": vault.id,
        "machines": machine_ids,
        "samples": samples,
        "build_s": time.monotonic() - t0,
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (data_dir / MANIFEST).write_text(json.dumps(manifest))
    (data_dir / PARTIAL).unlink()
    return manifest


@dataclass
class Dataset:
    name: str
    data_dir: Path
    size: Size
    machine_ids: list[str]
    keys: list[SigningKey]
    grants: list[list[str]]  # per machine index
    samples: list[dict[str, object]]
    build_s: float
    reused: bool
    disk_mib: float
    hot: list[tuple[int, str]] | None = None  # if set, requests draw only from these pairs


def load_or_build(name: str, data_dir: Path, size: Size, rebuild: bool) -> Dataset:
    manifest_path = data_dir / MANIFEST
    reused = manifest_path.exists() and not rebuild
    if reused:
        manifest = json.loads(manifest_path.read_text())
        if Size(**manifest["size"]) != size:
            raise SystemExit(f"{data_dir} holds {manifest['size']}, not {asdict(size)}: pass --rebuild")
    else:
        if data_dir.exists() and any(data_dir.iterdir()):
            if not (manifest_path.exists() or (data_dir / PARTIAL).exists()):
                raise SystemExit(f"{data_dir} is not empty and was not made by bench/scale.py")
            shutil.rmtree(data_dir)
        print(f"  building {name}: {size.secrets} secrets, {size.machines} machines ...", flush=True)
        manifest = build(data_dir, size)
    seed = bytes.fromhex(str(manifest["seed"]))
    machine_ids = list(manifest["machines"])
    index = {mid: i for i, mid in enumerate(machine_ids)}
    grants: list[list[str]] = [[] for _ in machine_ids]
    with sqlite3.connect(f"file:{data_dir / 'sikker.db'}?mode=ro", uri=True) as conn:
        for mid, sid in conn.execute("SELECT machine_id, secret_id FROM grants"):
            grants[index[mid]].append(sid)
    return Dataset(
        name=name,
        data_dir=data_dir,
        size=size,
        machine_ids=machine_ids,
        keys=[machine_key(seed, i) for i in range(len(machine_ids))],
        grants=grants,
        samples=list(manifest["samples"]),
        build_s=float(manifest["build_s"]),
        reused=reused,
        disk_mib=disk_mib(data_dir),
    )


# -- signed requests ---------------------------------------------------------------------------
def sign_headers(machine_id: str, key: SigningKey, path: str) -> dict[str, str]:
    ts = str(int(time.time()))
    nonce = base64.b64encode(secrets.token_bytes(16)).decode()
    message = f"GET:{path}:{ts}:{nonce}:{sr.EMPTY_SHA256}".encode()
    return {
        "X-Machine-Id": machine_id,
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": base64.b64encode(key.sign(message).signature).decode(),
    }


def write_requests(
    ds: Dataset, port: int, total: int, threads: int, prefix: Path, rng: random.Random
) -> None:
    """``total`` signed GETs over uniformly random (machine, granted secret) pairs, in PREFIX.1..T."""
    host = f"127.0.0.1:{port}"
    per_thread = -(-total // threads)
    for t in range(1, threads + 1):
        parts = []
        for _ in range(per_thread):
            if ds.hot:
                m, sid = rng.choice(ds.hot)
            else:
                m = rng.randrange(len(ds.machine_ids))
                sid = rng.choice(ds.grants[m])
            path = f"/v1/secret/{sid}"
            h = sign_headers(ds.machine_ids[m], ds.keys[m], path)
            parts.append(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sikker-bench\r\n"
                f"X-Machine-Id: {h['X-Machine-Id']}\r\nX-Timestamp: {h['X-Timestamp']}\r\n"
                f"X-Nonce: {h['X-Nonce']}\r\nX-Signature: {h['X-Signature']}\r\n\r\n"
            )
        Path(f"{prefix}.{t}").write_text("".join(parts))


def check_samples(ds: Dataset, url: str) -> None:
    """The values written by the builder come back through the real read path."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for s in ds.samples:
            m, path = int(str(s["machine"])), f"/v1/secret/{s['secret']}"
            r = client.get(path, headers=sign_headers(ds.machine_ids[m], ds.keys[m], path))
            if r.status_code != 200 or r.json().get("value") != s["value"]:
                raise RuntimeError(f"{ds.name}: {path} gave {r.status_code} {r.text[:200]}")


# -- one measured row --------------------------------------------------------------------------
@dataclass
class Row:
    dataset: str
    round: int
    secrets: int
    machines: int
    grants: int
    load_before: str
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    requests: int
    server_cpu_us_per_req: float
    server_cpus: float
    peak_rss_mib: float
    non2xx: int
    statuses: dict[str, int]
    socket_errors: str
    wrk_cpus: float
    other_cpus: float
    exhausted: int
    warmup_rps: float
    disk_mib: float


def measure(ds: Dataset, work: Path, rnd: int, args: argparse.Namespace, rng: random.Random) -> Row:
    load = procfs.loadavg()
    print(f"  {ds.name:<6} round {rnd}: load average before: {load}", flush=True)
    # Every row on a copy of the store as built: a row's reads add audit records and poll
    # baselines, which would otherwise make each later row (and run) measure a bigger store.
    data_dir = work / f"data-{ds.name}"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(ds.data_dir, data_dir, ignore=shutil.ignore_patterns("server-*.log"))
    with sr.running(data_dir, "on", args.workers) as server:
        check_samples(ds, server.url)
        warm_n = max(2000, int(args.probe_rate * args.warmup))
        write_requests(ds, server.port, warm_n, args.threads, work / "warm", rng)
        warm = sr.run_wrk(server.url, work / "warm", args.threads, args.connections, args.warmup)
        if warm.non200:
            raise RuntimeError(f"{ds.name} warm-up got non-200 responses: {warm.statuses}")
        rate = warm.rps * (4.0 if warm.exhausted else 1.0)
        # At least --probe-rate req/s of supply: a warm-up slowed by contention undersizes it.
        total = int(max(rate * args.headroom, args.probe_rate) * args.duration) + 200 * args.connections
        write_requests(ds, server.port, total, args.threads, work / "run", rng)
        cpu0, all0, t0 = procfs.tree_cpu(server.pid), procfs.machine_cpu(), time.monotonic()
        res = sr.run_wrk(server.url, work / "run", args.threads, args.connections, args.duration)
        cpu1, all1, t1 = procfs.tree_cpu(server.pid), procfs.machine_cpu(), time.monotonic()
        rss = procfs.peak_rss_mib(server.pid)
    wall, cpu = t1 - t0, cpu1 - cpu0
    return Row(
        dataset=ds.name,
        round=rnd,
        secrets=ds.size.secrets,
        machines=ds.size.machines,
        grants=ds.size.grants * ds.size.machines,
        load_before=load,
        rps=res.rps,
        p50_ms=res.p50_ms,
        p99_ms=res.p99_ms,
        p999_ms=res.p999_ms,
        requests=res.requests,
        server_cpu_us_per_req=cpu / res.requests * 1e6 if res.requests else float("nan"),
        server_cpus=cpu / wall,
        peak_rss_mib=rss,
        non2xx=sum(v for k, v in res.statuses.items() if not k.startswith("2")),
        statuses=res.statuses,
        socket_errors=res.socket_errors,
        wrk_cpus=res.wrk_cpu_s / wall,
        other_cpus=max(0.0, (all1 - all0) - cpu - res.wrk_cpu_s) / wall,
        exhausted=res.exhausted,
        warmup_rps=warm.rps,
        disk_mib=disk_mib(data_dir),
    )


def print_reads(rows: list[Row], max_other: float) -> dict[str, float]:
    head = (
        f"{'dataset':<9} {'secrets':>9} {'machines':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'p99.9 ms':>8} {'CPU us/req':>10} {'peak RSS MiB':>12} {'non-2xx':>7} {'other CPUs':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.dataset:<9} {r.secrets:>9} {r.machines:>8} {r.rps:>7.0f} {r.p50_ms:>7.2f} "
            f"{r.p99_ms:>7.2f} {r.p999_ms:>8.2f} {r.server_cpu_us_per_req:>10.0f} "
            f"{r.peak_rss_mib:>12.1f} {r.non2xx:>7} {r.other_cpus:>10.2f}"
            f"{' *' if r.other_cpus > max_other else ''}"
        )
    ratios: dict[str, float] = {}
    for name in ("large", "large-hot"):
        for rnd in sorted({r.round for r in rows}):
            pair = {r.dataset: r for r in rows if r.round == rnd}
            if {"small", name} <= set(pair):
                ratios[f"{name} round {rnd}"] = pair[name].rps / pair["small"].rps
        small = [r.rps for r in rows if r.dataset == "small"]
        big = [r.rps for r in rows if r.dataset == name]
        if small and big:
            ratios[f"{name} median"] = statistics.median(big) / statistics.median(small)
            shown = ", ".join(f"{k.split()[-1]} {v:.2f}" for k, v in ratios.items() if k.split()[0] == name)
            print(f"{name}/small req/s: round {shown}")
    return ratios


def reads(args: argparse.Namespace) -> int:
    """Subcommand ``reads``: small and large data sets, measured alternately."""
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    sr.check_canonical()
    projects = args.projects or max(1, min(100, args.secrets // 10_000, args.machines))
    large_size = Size(args.secrets, args.machines, args.grants_per_machine, projects)
    small_size = Size(args.small_secrets, 1, args.small_secrets, 1)
    large_size.check()
    machine = procfs.describe()
    print("signed machine reads at scale: small vs large data set")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency -s bench/presigned.lua"
        f" (after a {args.warmup}s warm-up), SQLite, audit ON, a fresh server process per row"
    )
    large_dir = args.data_dir or Path(tempfile.gettempdir()) / (
        f"sikker-scale-{args.secrets}-{args.machines}-{args.grants_per_machine}"
    )
    rng = random.Random(args.seed)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="sikker-scale-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        t0 = time.monotonic()
        small = load_or_build("small", Path(tmp) / "small", small_size, True)
        print(f"  small: built in {time.monotonic() - t0:.1f} s, {small.disk_mib:.1f} MiB", flush=True)
        t0 = time.monotonic()
        large = load_or_build("large", large_dir, large_size, args.rebuild)
        took = (
            f"loaded in {time.monotonic() - t0:.1f} s" if large.reused else f"built in {large.build_s:.1f} s"
        )
        print(
            f"  large: {took}, {large.disk_mib:.1f} MiB on disk, {projects} projects ({large_dir})",
            flush=True,
        )
        hot = []
        if args.hot_pairs:  # the same large store, but a working set as small as the small one's
            pairs = [(m, sid) for m, granted in enumerate(large.grants) for sid in granted]
            hot = [
                replace(large, name="large-hot", hot=random.Random(args.seed).sample(pairs, args.hot_pairs))
            ]
        try:
            for rnd in range(1, args.rounds + 1):
                for ds in (small, large, *hot):
                    sr.wait_idle(args.wait_idle, args.max_other)
                    rows.append(measure(ds, work, rnd, args, rng))
        except Exception:
            for d in work.glob("data-*"):
                for log in sorted(d.glob("server-*.log"))[-1:]:
                    sys.stderr.write(f"--- {log} ---\n{log.read_text()[-3000:]}\n")
            if rows:
                print("\nrows measured before the failure:")
                print_reads(rows, args.max_other)
            raise

    print()
    ratios = print_reads(rows, args.max_other)
    print(
        "CPU us/req = server utime+stime (process tree, /proc) / requests; other CPUs = CPU-seconds per"
        f" second used by everything but the server and wrk (nproc {machine['nproc']}); * = other >"
        f" {args.max_other}."
    )
    bad = [r for r in rows if r.non2xx or r.exhausted or r.socket_errors]
    for r in bad:
        print(f"!! {r.dataset} round {r.round}: {r.statuses}, exhausted {r.exhausted}, {r.socket_errors}")
    print(
        f"large data set: {large.size.secrets} secrets in {projects} projects, {large.size.machines}"
        f" machines x {large.size.grants} grants; build {large.build_s:.1f} s; {large.disk_mib:.1f} MiB"
    )
    out = args.json or HERE / "results" / f"scale-reads-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(
        out,
        {
            "machine": machine,
            "args": vars(args),
            "large": {"size": asdict(large.size), "build_s": large.build_s, "reused": large.reused},
            "disk_mib": {"small": small.disk_mib, "large": large.disk_mib},
            "rows": [asdict(r) for r in rows],
            "ratios_large_over_small": ratios,
        },
    )
    return 1 if bad else 0


# -- startup -----------------------------------------------------------------------------------
def wait_for(proc: subprocess.Popen[bytes], ok: Callable[[], bool], log: Path, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            if ok():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"not ready in {limit:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bytecode_env() -> tuple[dict[str, str], Path]:
    """Compile Sikker's modules (the copy the servers will import) once, and the environment
    to spawn them in without PYTHONDONTWRITEBYTECODE, so they start from bytecode as a wheel
    install does. Returns (environment, compiled directory)."""
    spec = importlib.util.find_spec("sikker")
    if spec is None or spec.origin is None:
        raise RuntimeError("sikker is not importable")
    package = Path(spec.origin).parent
    compileall.compile_dir(package, quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env, package


def sikker_first_read(work: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """spawn -> health 200 -> (vault, project, secret, token, enroll through the API) -> read 200."""
    port = sr.free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir, log = work / "data", work / "server.log"
    argv = [sys.executable, "-m", "sikker", "server", "--dev", "--dev-root-token", sr.ROOT_TOKEN]
    argv += ["--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}"]
    auth = {"authorization": f"Bearer {sr.ROOT_TOKEN}"}
    with log.open("wb") as out, httpx.Client(base_url=url, timeout=30) as api:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(proc, lambda: api.get("/api/sys/health").status_code == 200, log)
            health = time.monotonic() - t0
            vault = str(sr._ok(api.post("/api/vaults", json={"name": "b"}, headers=auth))["id"])
            project = str(
                sr._ok(api.post(f"/api/vaults/{vault}/projects", json={"name": "p"}, headers=auth))["id"]
            )
            value = secrets.token_bytes(64).hex()
            body = {"name": "FIRST", "value": value}
            sid = str(sr._ok(api.post(f"/api/projects/{project}/secrets", json=body, headers=auth))["id"])
            body = {"name": "b", "projectIds": [project], "secretIds": [sid], "maxUses": 1}
            token = sr._ok(api.post(f"/api/vaults/{vault}/enrollment-tokens", json=body, headers=auth))
            key = SigningKey.generate()
            body = {
                "token": token["token"],
                "publicKey": base64.b64encode(bytes(key.verify_key)).decode(),
                "hostname": "first",
            }
            machine_id = str(sr._ok(api.post(f"/v1/{vault}/enroll/register", json=body))["machineId"])
            path = f"/v1/secret/{sid}"
            r = api.get(path, headers=sign_headers(machine_id, key, path))
            read = time.monotonic() - t0
            if r.status_code != 200 or r.json().get("value") != value:
                raise RuntimeError(f"first read: {r.status_code} {r.text[:200]}")
        finally:
            stop(proc)
    return {"health_s": health, "first_read_s": read, "setup_s": read - health}


def bao_first_read(binary: str, work: Path) -> dict[str, float]:
    """spawn ``bao server -dev`` -> health 200 -> PUT secret/data/x -> first 200 GET of it."""
    port = sr.free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "bao.log"
    argv = [binary, "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(work)  # -dev writes ~/.vault-token
    value = secrets.token_bytes(64).hex()
    with (
        log.open("wb") as out,
        httpx.Client(base_url=url, headers={"X-Vault-Token": "root"}, timeout=30) as api,
    ):
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(proc, lambda: api.get("/v1/sys/health").status_code == 200, log)
            health = time.monotonic() - t0
            wait_for(
                proc, lambda: api.put("/v1/secret/data/x", json={"data": {"v": value}}).status_code < 300, log
            )
            wait_for(proc, lambda: api.get("/v1/secret/data/x").status_code == 200, log)
            read = time.monotonic() - t0
            got = api.get("/v1/secret/data/x").json()["data"]["data"]["v"]
            if got != value:
                raise RuntimeError(f"bao returned {got!r}")
        finally:
            stop(proc)
    return {"health_s": health, "first_read_s": read, "setup_s": read - health}


def startup(args: argparse.Namespace) -> int:
    """Subcommand ``startup``: spawn -> health, spawn -> first served read, for Sikker and OpenBao."""
    machine = procfs.describe()
    print("time from spawning a dev server to health and to the first served read")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    env, compiled = bytecode_env()
    print(
        f"sikker: {compiled} compiled once (compileall); servers spawned without"
        " PYTHONDONTWRITEBYTECODE, starting from bytecode as a wheel install does"
    )
    servers: dict[str, Callable[[Path], dict[str, float]]] = {
        "sikker --dev": lambda work: sikker_first_read(work, env)
    }
    if not args.no_bao:
        from vs_openbao import find_bao

        binary = find_bao(args.bao)
        servers["bao -dev"] = lambda work: bao_first_read(binary, work)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    with tempfile.TemporaryDirectory(prefix="sikker-startup-") as tmp:
        for i in range(args.repeats):
            for name, fn in servers.items():  # alternate, so drift hits both alike
                sr.wait_idle(args.wait_idle, args.max_other)
                work = Path(tmp) / f"{name.split()[0]}-{i}"
                work.mkdir()
                runs[name].append(fn(work))
                r = runs[name][-1]
                print(
                    f"  {name:<13} #{i + 1}: health {r['health_s'] * 1000:.0f} ms,"
                    f" first read {r['first_read_s'] * 1000:.0f} ms, load {procfs.loadavg()}",
                    flush=True,
                )
    print()
    head = f"{'server':<13} {'spawn->health ms':>24} {'spawn->first read ms':>24} {'setup ms':>22}"
    print(head)
    print("-" * len(head))
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name, rs in runs.items():
        summary[name] = {}
        cells = []
        for k in ("health_s", "first_read_s", "setup_s"):
            xs = [r[k] * 1000 for r in rs]
            summary[name][k] = {"median_ms": statistics.median(xs), "min_ms": min(xs), "max_ms": max(xs)}
            cells.append(f"{statistics.median(xs):>6.0f} [{min(xs):>5.0f}-{max(xs):>5.0f}]")
        print(f"{name:<13} {cells[0]:>24} {cells[1]:>24} {cells[2]:>22}")
    print(
        f"median [min-max] of {args.repeats}; setup = health -> first read: Sikker creates vault, project,"
        " secret, enrollment token and machine through the API and signs the GET; OpenBao PUTs then GETs"
        " secret/data/x with the root token."
    )
    out = args.json or HERE / "results" / f"scale-startup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(out, {"machine": machine, "args": vars(args), "runs": runs, "summary": summary})
    return 0


def write_json(out: Path, data: dict[str, object]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str))
    print(f"JSON: {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    rd = sub.add_parser("reads", help="req/s with a small and a large data set, alternately")
    rd.add_argument("--duration", type=int, default=15, help="measured wrk seconds per row (default 15)")
    rd.add_argument("--warmup", type=int, default=3, help="discarded warm-up/probe seconds per row")
    rd.add_argument("--connections", type=int, default=64)
    rd.add_argument("--threads", type=int, default=2, help="wrk threads (one request file each)")
    rd.add_argument("--rounds", type=int, default=2, help="small, large rows per round (default 2)")
    rd.add_argument("--secrets", type=int, default=1_000_000, help="secrets in the large data set")
    rd.add_argument("--machines", type=int, default=10_000, help="machines in the large data set")
    rd.add_argument("--grants-per-machine", type=int, default=100)
    rd.add_argument("--projects", type=int, default=0, help="default: secrets/10,000, 1 to 100")
    rd.add_argument("--small-secrets", type=int, default=1000, help="secrets of the small data set")
    rd.add_argument("--data-dir", type=Path, help="large data dir, reused when it holds the same sizes")
    rd.add_argument("--rebuild", action="store_true", help="rebuild the large data set even if cached")
    rd.add_argument(
        "--hot-pairs",
        type=int,
        default=0,
        help="also measure the large store with requests drawn from only this many (machine, secret) pairs",
    )
    rd.add_argument("--seed", type=int, default=1, help="seed of the request mix")
    rd.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server --workers (default: no flag, the server's default: one per CPU here)",
    )
    rd.add_argument(
        "--probe-rate",
        type=float,
        default=5000,
        help="req/s assumed to size the warm-up; also the least supply",
    )
    rd.add_argument("--headroom", type=float, default=3.0, help="supply = warm-up rate x duration x this")
    st = sub.add_parser("startup", help="spawn -> health and -> first read, Sikker and OpenBao")
    st.add_argument("--repeats", type=int, default=5)
    st.add_argument("--bao", help="path of the bao binary (default: see bench/vs_openbao.py)")
    st.add_argument("--no-bao", action="store_true", help="Sikker only")
    for p in (rd, st):
        p.add_argument("--json", type=Path, help="JSON output (default bench/results/scale-*.json)")
        p.add_argument("--max-other", type=float, default=0.15, help="'other CPUs' above this is flagged")
        p.add_argument("--wait-idle", type=float, default=60, help="wait up to this many s for idle")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup of the servers
    return int(reads(args) if args.command == "reads" else startup(args))


if __name__ == "__main__":
    raise SystemExit(main())
