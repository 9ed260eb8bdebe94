"""Sikker on the PostgreSQL store for bench/vs_openbao.py: a fresh database, the server flags,
the audit sequence, and signed reads spread over several nodes on one database.

Each node is ``sikker server --dev --database postgresql://... --seal-key-file KEY`` (no
--workers flag): the first start initialises the database and writes KEY, every later start
and every other node unseals itself from KEY. Each node gets its own data dir (logs only).
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import procfs
import psycopg
import signed_reads as sr

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, uniquely named, empty database; dropped afterwards (even with open connections)."""
    name = f"sikker_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def available(admin_url: str) -> bool:
    try:
        with psycopg.connect(admin_url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def server_flags(url: str, key_file: Path) -> list[str]:
    return ["--database", url, "--seal-key-file", str(key_file)]


def audit_seq(url: str, chain: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT seq FROM audit_heads WHERE chain = %s", (chain,)).fetchone()
    return int(row[0]) if row else 0


def split(total: int, parts: int) -> list[int]:
    """``total`` connections over ``parts`` wrk processes, as evenly as possible."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@dataclass
class Spread:
    """Several wrk processes at once, one per node, summed."""

    res: sr.WrkResult  # requests, rps, statuses summed; latency percentiles = the worst node's
    per_node_rps: list[float]
    server_cpu_s: float
    other_cpu_s: float
    wall_s: float
    peak_rss_mib: float
    peak_pss_mib: float  # the sum of each node's peak
    audit_records: int
    warmup_rps: float


def _all_at_once(
    servers: list[sr.Server], prefixes: list[Path], conns: list[int], duration: int
) -> list[sr.WrkResult]:
    with ThreadPoolExecutor(len(servers)) as pool:
        return list(
            pool.map(
                lambda i: sr.run_wrk(servers[i].url, prefixes[i], 1, conns[i], duration),
                range(len(servers)),
            )
        )


def _sum(results: list[sr.WrkResult]) -> sr.WrkResult:
    first = results[0]
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return sr.WrkResult(
        connections=sum(r.connections for r in results),
        seconds=max(r.seconds for r in results),
        requests=sum(r.requests for r in results),
        rps=sum(r.rps for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        p999_ms=max(r.p999_ms for r in results),
        statuses=statuses,
        loaded=sum(r.loaded for r in results),
        issued=sum(r.issued for r in results),
        exhausted=sum(r.exhausted for r in results),
        socket_errors="; ".join(r.socket_errors for r in results if r.socket_errors),
        wrk_cpu_s=sum(r.wrk_cpu_s for r in results),
        wall_s=max(r.wall_s for r in results),
        raw=first.raw,
    )


def measure_nodes(
    fx: sr.Fixture,
    url: str,
    key_file: Path,
    base: Path,
    work: Path,
    nodes: int,
    conns: int,
    args: argparse.Namespace,
) -> Spread:
    """``nodes`` fresh servers on one database; a wrk process per node (one thread, its share of
    ``conns``) at the same time, each sending its own pre-signed requests (own nonces)."""
    flags = server_flags(url, key_file)
    share = split(conns, nodes)
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(sr.running(base / f"node{i}", "on", None, flags)) for i in range(nodes)
        ]
        warm_prefixes = [work / f"warm-n{i}" for i in range(nodes)]
        run_prefixes = [work / f"run-n{i}" for i in range(nodes)]
        warm_n = max(2000, int(args.probe_rate * args.warmup / nodes))
        nxt = 0
        for s, p in zip(servers, warm_prefixes, strict=True):
            nxt = sr.write_requests(fx, s.port, warm_n, 1, p, nxt)
        warm = _sum(_all_at_once(servers, warm_prefixes, share, args.warmup))
        if warm.non200:
            raise RuntimeError(f"warm-up got non-200 responses: {warm.statuses}")
        rate = warm.rps * (4.0 if warm.exhausted else 1.0)
        per_node = int(rate * args.duration * args.headroom / nodes) + 200 * max(share)
        for s, p in zip(servers, run_prefixes, strict=True):
            nxt = sr.write_requests(fx, s.port, per_node, 1, p, nxt)

        seq0 = audit_seq(url, fx.vault)
        pids = [s.pid for s in servers]
        cpu0 = sum(procfs.tree_cpu(p) for p in pids)
        all0, t0 = procfs.machine_cpu(), time.monotonic()
        with contextlib.ExitStack() as sampling:
            samplers = [sampling.enter_context(procfs.PeakPss(p)) for p in pids]
            results = _all_at_once(servers, run_prefixes, share, args.duration)
        cpu1 = sum(procfs.tree_cpu(p) for p in pids)
        all1, t1 = procfs.machine_cpu(), time.monotonic()
        rss = sum(procfs.peak_rss_mib(p) for p in pids)
        seq1 = audit_seq(url, fx.vault)
    res = _sum(results)
    server_cpu = cpu1 - cpu0
    return Spread(
        res=res,
        per_node_rps=[r.rps for r in results],
        server_cpu_s=server_cpu,
        other_cpu_s=max(0.0, (all1 - all0) - server_cpu - res.wrk_cpu_s),
        wall_s=t1 - t0,
        peak_rss_mib=rss,
        peak_pss_mib=sum(s.peak for s in samplers),
        audit_records=seq1 - seq0,
        warmup_rps=warm.rps,
    )
