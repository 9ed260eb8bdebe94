"""Signed machine reads per second with the audit log ON versus audit writes STUBBED out.

    .venv/bin/python bench/signed_reads.py                 # what `make bench-audit` runs
    .venv/bin/python bench/signed_reads.py --duration 5 --connections 64

What it does:

1. Starts a real ``sikker server --dev`` (SQLite, default store) in a temporary data
   directory, and sets up through the admin API: one vault, one project, --secrets
   secrets of 64 random bytes (hex), an enrollment token granting all of them, and
   ONE machine enrolled with its own Ed25519 key (PyNaCl). Setup is not measured.
2. For each connection count (default 16 and 64) it runs audit ON, then audit
   STUBBED, each in a fresh server process on the same data directory. STUBBED goes
   through bench/audit_stub_server.py, which replaces ``sikker.storage.audit.append``
   by a no-op before the CLI starts; production code has no switch for it.
3. Every request is signed once (replay protection is on): right before each wrk run,
   the requests (GET /v1/secret/<id>, round-robin over the secrets, fresh timestamp,
   nonce and signature each) are written to one file per wrk thread, and
   bench/presigned.lua sends each exactly once. A warm-up run (discarded) comes
   first and doubles as the probe that sizes the measured run's supply.
4. Reports req/s, p50/p99/p99.9 latency, server CPU per request (utime+stime of the
   server process tree from /proc, before/after), peak RSS (VmHWM), non-200s, wrk's
   own CPU and the CPU used by everything else on the machine; then the ratios, and
   one Ed25519 verification's CPU cost (PyNaCl and cryptography).

All traffic is on 127.0.0.1. JSON goes to bench/results/ (gitignored).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import procfs
from nacl.signing import SigningKey

HERE = Path(__file__).resolve().parent
LUA = HERE / "presigned.lua"
STUB_LAUNCHER = HERE / "audit_stub_server.py"
ROOT_TOKEN = "bench"
VARIANTS = ("on", "stubbed")
CHUNK = 1000  # the API takes at most 1000 secret ids per enrollment token or grant call


# -- server ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One ``sikker server --dev`` process on a loopback port, audit ON or STUBBED.

    ``workers`` None: no --workers flag (the server's default); ``extra``: more server flags."""

    def __init__(
        self, data_dir: Path, variant: str, workers: int | None = 1, extra: Sequence[str] = ()
    ) -> None:
        self.data_dir = data_dir
        self.variant = variant
        self.workers = workers
        self.extra = list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"server-{variant}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = [
            "server",
            "--dev",
            "--dev-root-token",
            ROOT_TOKEN,
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            *(["--workers", str(self.workers)] if self.workers is not None else []),
            *self.extra,
        ]
        head = (
            [sys.executable, str(STUB_LAUNCHER)]
            if self.variant == "stubbed"
            else [sys.executable, "-m", "sikker"]
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([*head, *argv], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/sys/status", timeout=1).json().get("sealed") is False:
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready in 60 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running(
    data_dir: Path, variant: str, workers: int | None = 1, extra: Sequence[str] = ()
) -> Iterator[Server]:
    server = Server(data_dir, variant, workers, extra).start()
    try:
        yield server
    finally:
        server.stop()


# -- setup through the admin API -------------------------------------------------------------
@dataclass
class Fixture:
    vault: str
    project: str
    secret_ids: list[str]
    machine_id: str
    seed: bytes  # the machine's Ed25519 private key seed


def _ok(r: httpx.Response) -> dict[str, object]:
    if r.status_code not in (200, 201):
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    data: dict[str, object] = r.json()
    return data


def set_up(url: str, count: int, workers: int = 8) -> Fixture:
    headers = {"authorization": f"Bearer {ROOT_TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
        vault = str(_ok(api.post("/api/vaults", json={"name": "bench"}))["id"])
        project = str(_ok(api.post(f"/api/vaults/{vault}/projects", json={"name": "reads"}))["id"])

    def create(i: int, client: httpx.Client) -> str:
        body = {"name": f"BENCH_SECRET_{i:06d}", "value": secrets.token_bytes(64).hex()}
        return str(_ok(client.post(f"/api/projects/{project}/secrets", json=body))["id"])

    # A few keep-alive clients in parallel; the server serialises the writes anyway.
    clients = [httpx.Client(base_url=url, headers=headers, timeout=60) for _ in range(workers)]
    try:
        with ThreadPoolExecutor(workers) as pool:
            ids = list(pool.map(lambda i: create(i, clients[i % workers]), range(count)))
    finally:
        for c in clients:
            c.close()

    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
        token = _ok(
            api.post(
                f"/api/vaults/{vault}/enrollment-tokens",
                json={"name": "bench", "projectIds": [project], "secretIds": ids[:CHUNK], "maxUses": 1},
            )
        )["token"]
        enrolled = _ok(
            httpx.post(
                f"{url}/v1/{vault}/enroll/register",
                json={"token": token, "publicKey": public, "hostname": "bench-host"},
                timeout=60,
            )
        )
        machine_id = str(enrolled["machineId"])
        for start in range(CHUNK, count, CHUNK):  # more than one token's worth: grant the rest
            _ok(
                api.post(f"/api/machines/{machine_id}/grants", json={"secretIds": ids[start : start + CHUNK]})
            )
    return Fixture(vault, project, ids, machine_id, bytes(key))


# -- pre-signed requests -----------------------------------------------------------------------
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def write_requests(fx: Fixture, port: int, total: int, threads: int, prefix: Path, start: int) -> int:
    """``total`` signed GETs split over ``threads`` files PREFIX.1..T; returns the next secret index."""
    key = SigningKey(fx.seed)
    ts = str(int(time.time()))
    host = f"127.0.0.1:{port}"
    n = len(fx.secret_ids)
    per_thread = -(-total // threads)
    idx = start
    for t in range(1, threads + 1):
        parts = []
        for _ in range(per_thread):
            path = f"/v1/secret/{fx.secret_ids[idx % n]}"
            idx += 1
            nonce = base64.b64encode(secrets.token_bytes(16)).decode()
            message = f"GET:{path}:{ts}:{nonce}:{EMPTY_SHA256}".encode()
            sig = base64.b64encode(key.sign(message).signature).decode()
            parts.append(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sikker-bench\r\n"
                f"X-Machine-Id: {fx.machine_id}\r\nX-Timestamp: {ts}\r\nX-Nonce: {nonce}\r\n"
                f"X-Signature: {sig}\r\n\r\n"
            )
        Path(f"{prefix}.{t}").write_text("".join(parts))
    return idx


def check_canonical() -> None:
    """The generator builds the canonical string inline for speed: it must match the server's."""
    from sikker.core import signing

    expected = signing.canonical("GET", "/v1/secret/x", "1", "n", b"")
    if expected != f"GET:/v1/secret/x:1:n:{EMPTY_SHA256}".encode():
        raise SystemExit("bench generator's canonical string no longer matches sikker.core.signing")


# -- one wrk run -------------------------------------------------------------------------------
@dataclass
class WrkResult:
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    statuses: dict[str, int]
    loaded: int
    issued: int
    exhausted: int
    socket_errors: str
    wrk_cpu_s: float
    wall_s: float
    raw: str = field(repr=False)

    @property
    def non200(self) -> int:
        return sum(v for k, v in self.statuses.items() if k != "200")


def run_wrk(
    url: str,
    prefix: Path,
    threads: int,
    connections: int,
    duration: int,
    script: Path = LUA,
    script_args: list[str] | None = None,
) -> WrkResult:
    """Run wrk with ``script`` (default presigned.lua, given ``prefix``); output goes to PREFIX.out.

    Another script must print presigned.lua's summary lines (bench/roundrobin.lua does);
    ``script_args`` then replaces the default script argument ``prefix``."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *(script_args if script_args is not None else [str(prefix)]),
    ]
    out_path = prefix.with_suffix(".out")
    t0 = time.monotonic()
    with out_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    raw = out_path.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{raw}")
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", raw)
    if not m:
        raise RuntimeError(f"cannot parse wrk output:\n{raw}")
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    requests, seconds = int(m.group(1)), float(m.group(2)) * unit
    statuses: dict[str, int] = {}
    loaded = issued = exhausted = 0
    for line in raw.splitlines():
        if line.startswith("PRESIGNED "):
            kv = dict(p.split("=", 1) for p in line.split()[1:])
            loaded += int(kv.pop("loaded"))
            issued += int(kv.pop("issued"))
            exhausted += int(kv.pop("exhausted"))
            kv.pop("thread")
            for k, v in kv.items():
                statuses[k[1:]] = statuses.get(k[1:], 0) + int(v)
    lat = re.search(r"PRESIGNED_LATENCY_US p50=(\d+) p99=(\d+) p999=(\d+)", raw)
    if not lat:
        raise RuntimeError(f"no latency line from presigned.lua:\n{raw}")
    sock = re.search(r"Socket errors: (.*)", raw)
    return WrkResult(
        connections=connections,
        seconds=seconds,
        requests=requests,
        rps=requests / seconds,
        p50_ms=int(lat.group(1)) / 1000,
        p99_ms=int(lat.group(2)) / 1000,
        p999_ms=int(lat.group(3)) / 1000,
        statuses=statuses,
        loaded=loaded,
        issued=issued,
        exhausted=exhausted,
        socket_errors=sock.group(1).strip() if sock else "",
        wrk_cpu_s=usage.ru_utime + usage.ru_stime,
        wall_s=wall,
        raw=raw,
    )


def audit_seq(db: Path, chain: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        row = conn.execute("SELECT seq FROM audit_heads WHERE chain = ?", (chain,)).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Row:
    variant: str
    connections: int
    load_before: str
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    requests: int
    seconds: float
    server_cpu_s: float
    server_cpu_us_per_req: float
    server_cpus: float  # server CPU seconds per wall second
    peak_rss_mib: float
    non200: int
    statuses: dict[str, int]
    socket_errors: str
    wrk_cpus: float
    other_cpus: float
    audit_records_per_req: float
    generated: int
    exhausted: int
    warmup_rps: float
    peak_pss_mib: float = 0.0


def measure(
    fx: Fixture,
    data_dir: Path,
    work: Path,
    variant: str,
    conns: int,
    args: argparse.Namespace,
    extra: Sequence[str] = (),
    seq: Callable[[], int] | None = None,
) -> Row:
    """One row: a fresh server (``args.workers``, None = no flag; ``extra`` flags), warm-up, run.

    ``seq`` reads the vault's audit sequence number (default: the SQLite file in ``data_dir``)."""
    load = procfs.loadavg()
    print(f"  {variant:<8} c={conns:<3} load average before: {load}", flush=True)
    db = data_dir / "sikker.db"
    audit = seq or (lambda: audit_seq(db, fx.vault))
    with running(data_dir, variant, args.workers, extra) as server:
        # Warm-up (discarded) = probe: a generous supply, then size the measured run from its rate.
        warm_n = max(2000, int(args.probe_rate * args.warmup))
        nxt = write_requests(fx, server.port, warm_n, args.threads, work / "warm", 0)
        warm = run_wrk(server.url, work / "warm", args.threads, conns, args.warmup)
        if warm.non200:
            raise RuntimeError(f"warm-up got non-200 responses: {warm.statuses}")
        rate = warm.rps * (4.0 if warm.exhausted else 1.0)
        total = int(rate * args.duration * args.headroom) + 200 * conns
        write_requests(fx, server.port, total, args.threads, work / "run", nxt)

        seq0 = audit()
        cpu0, other0, t0 = procfs.tree_cpu(server.pid), procfs.machine_cpu(), time.monotonic()
        with procfs.PeakPss(server.pid) as pss:
            res = run_wrk(server.url, work / "run", args.threads, conns, args.duration)
        cpu1, other1, t1 = procfs.tree_cpu(server.pid), procfs.machine_cpu(), time.monotonic()
        rss = procfs.peak_rss_mib(server.pid)
        seq1 = audit()
    wall = t1 - t0
    server_cpu = cpu1 - cpu0
    if args.show_wrk:
        print(res.raw)
    return Row(
        variant=variant,
        connections=conns,
        load_before=load,
        rps=res.rps,
        p50_ms=res.p50_ms,
        p99_ms=res.p99_ms,
        p999_ms=res.p999_ms,
        requests=res.requests,
        seconds=res.seconds,
        server_cpu_s=server_cpu,
        server_cpu_us_per_req=server_cpu / res.requests * 1e6 if res.requests else float("nan"),
        server_cpus=server_cpu / wall,
        peak_rss_mib=rss,
        non200=res.non200,
        statuses=res.statuses,
        socket_errors=res.socket_errors,
        wrk_cpus=res.wrk_cpu_s / wall,
        other_cpus=max(0.0, (other1 - other0) - server_cpu - res.wrk_cpu_s) / wall,
        audit_records_per_req=(seq1 - seq0) / res.requests if res.requests else 0.0,
        generated=res.loaded,
        exhausted=res.exhausted,
        warmup_rps=warm.rps,
        peak_pss_mib=pss.peak,
    )


def wait_idle(limit_s: float, threshold: float) -> float:
    """Wait (up to ``limit_s``) until the rest of the machine uses at most ``threshold`` CPUs over 1 s.

    Nothing of this benchmark runs between rows, so all CPU use seen here is someone else's."""
    if limit_s <= 0:
        return float("nan")
    t_start = time.monotonic()
    said = False
    while True:
        before, t0 = procfs.machine_cpu(), time.monotonic()
        time.sleep(1.0)
        busy = (procfs.machine_cpu() - before) / (time.monotonic() - t0)
        waited = time.monotonic() - t_start
        if busy <= threshold or waited >= limit_s:
            if said:
                print(f"    (waited {waited:.0f} s; other processes now use {busy:.2f} CPUs)", flush=True)
            return busy
        if not said:
            print(f"    (other processes use {busy:.2f} CPUs: waiting up to {limit_s:.0f} s)", flush=True)
            said = True


def measure_pair(
    fx: Fixture, data_dir: Path, work: Path, conns: int, args: argparse.Namespace
) -> tuple[list[Row], list[Row]]:
    """ON then STUBBED at ``conns``; re-measured as a pair while either row was contended.
    Returns the least contended pair and the discarded attempts."""
    attempts: list[list[Row]] = []
    for attempt in range(args.retries + 1):
        pair = []
        for variant in VARIANTS:
            wait_idle(args.wait_idle, args.max_other)
            pair.append(measure(fx, data_dir, work, variant, conns, args))
        attempts.append(pair)
        worst = max(r.other_cpus for r in pair)
        if worst <= args.max_other:
            break
        if attempt < args.retries:
            print(
                f"    (other processes used {worst:.2f} CPUs during this pair: measuring it again)",
                flush=True,
            )
    best = min(attempts, key=lambda p: max(r.other_cpus for r in p))
    return best, [r for p in attempts if p is not best for r in p]


# -- Ed25519 verify cost -----------------------------------------------------------------------
def verify_costs(number: int) -> dict[str, float]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from nacl.signing import VerifyKey

    from sikker.crypto import signature

    key = SigningKey.generate()
    raw_pub = bytes(key.verify_key)
    msg = f"GET:/v1/secret/sec_0123456789abcdef:{int(time.time())}:{'A' * 24}:{EMPTY_SHA256}".encode()
    sig = key.sign(msg).signature
    sig_b64 = base64.b64encode(sig).decode()
    nacl_key = VerifyKey(raw_pub)
    pyca_key = Ed25519PublicKey.from_public_bytes(raw_pub)
    nacl_key.verify(msg, sig)
    pyca_key.verify(sig, msg)
    assert signature.verify(raw_pub, sig_b64, msg)
    cases = {
        "pynacl": lambda: nacl_key.verify(msg, sig),
        "cryptography": lambda: pyca_key.verify(sig, msg),
        "sikker.crypto.signature.verify": lambda: signature.verify(raw_pub, sig_b64, msg),
    }
    return {
        name: min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6 for name, fn in cases.items()
    }


# -- report ------------------------------------------------------------------------------------
def print_table(rows: list[Row], max_other: float) -> None:
    head = (
        f"{'audit':<8} {'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} "
        f"{'CPU us/req':>10} {'srv CPUs':>8} {'peak RSS MiB':>12} {'non-200':>7} "
        f"{'wrk CPUs':>8} {'other CPUs':>10} {'audit rec/req':>13} {'load before':>15}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r.variant:<8} {r.connections:>5} {r.rps:>8.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{r.p999_ms:>8.2f} {r.server_cpu_us_per_req:>10.0f} {r.server_cpus:>8.2f} "
            f"{r.peak_rss_mib:>12.1f} {r.non200:>7} {r.wrk_cpus:>8.2f} {r.other_cpus:>10.2f} "
            f"{r.audit_records_per_req:>13.2f} {r.load_before:>15}{' *' if r.other_cpus > max_other else ''}"
        )


def ratios(rows: list[Row]) -> list[dict[str, float]]:
    out = []
    for conns in sorted({r.connections for r in rows}):
        on = [r for r in rows if r.connections == conns and r.variant == "on"]
        off = [r for r in rows if r.connections == conns and r.variant == "stubbed"]
        for a, b in zip(on, off, strict=False):
            out.append(
                {
                    "connections": conns,
                    "rps_stubbed_over_on": b.rps / a.rps,
                    "cpu_per_req_on_over_stubbed": a.server_cpu_us_per_req / b.server_cpu_us_per_req,
                    "audit_cpu_us_per_req": a.server_cpu_us_per_req - b.server_cpu_us_per_req,
                }
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=15, help="measured wrk seconds per row (default 15)")
    ap.add_argument("--warmup", type=int, default=3, help="discarded warm-up/probe seconds per row")
    ap.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (one request file each)")
    ap.add_argument("--secrets", type=int, default=1000, help="secrets to create and read round-robin")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the ON/STUBBED alternation")
    ap.add_argument("--workers", type=int, default=1, help="sikker server --workers (default 1)")
    ap.add_argument(
        "--probe-rate", type=float, default=25_000, help="req/s assumed when sizing the warm-up's supply"
    )
    ap.add_argument("--headroom", type=float, default=2.0, help="supply = warm-up rate x duration x this")
    ap.add_argument("--micro-number", type=int, default=5000, help="timeit calls per Ed25519 repeat")
    ap.add_argument("--json", type=Path, help="JSON output (default bench/results/signed_reads-<time>.json)")
    ap.add_argument("--show-wrk", action="store_true", help="print the raw wrk output of measured runs")
    ap.add_argument(
        "--max-other",
        type=float,
        default=0.15,
        help="a row is contended when other processes used more CPUs than this during it",
    )
    ap.add_argument(
        "--retries", type=int, default=2, help="re-measure a contended ON/STUBBED pair this often"
    )
    ap.add_argument(
        "--wait-idle", type=float, default=60, help="before each row, wait up to this many s for idle"
    )
    args = ap.parse_args()

    # A plain `kill` still stops the server subprocesses (through the context managers).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    check_canonical()
    machine = procfs.describe()
    print("signed machine reads: audit ON vs audit writes STUBBED")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    print(
        f"wrk -t{args.threads} -c<conns> -d{args.duration:g}s --latency -s bench/presigned.lua "
        f"(after a {args.warmup:g}s warm-up), {args.secrets} secrets round-robin, one machine, SQLite"
    )
    t_start = time.monotonic()
    rows: list[Row] = []
    discarded: list[Row] = []  # contended attempts that a re-measure replaced
    with tempfile.TemporaryDirectory(prefix="sikker-bench-") as tmp:
        data_dir, work = Path(tmp) / "data", Path(tmp) / "work"
        work.mkdir()
        print(f"setup: {args.secrets} secrets ...", end=" ", flush=True)
        t0 = time.monotonic()
        with running(data_dir, "on") as server:
            fx = set_up(server.url, args.secrets)
        setup_s = time.monotonic() - t0
        print(f"{setup_s:.1f} s (vault {fx.vault}, machine {fx.machine_id})")
        try:
            for _ in range(args.rounds):
                for conns in args.connections:
                    pair, dropped = measure_pair(fx, data_dir, work, conns, args)
                    rows.extend(pair)
                    discarded.extend(dropped)
        except Exception:
            for log in sorted(data_dir.glob("server-*.log")):
                sys.stderr.write(f"--- {log.name} ---\n{log.read_text()[-3000:]}\n")
            raise

    print()
    print_table(rows, args.max_other)
    print(
        "CPU us/req = server utime+stime (process tree, /proc) / requests; srv/wrk/other CPUs = CPU-seconds"
        " per second during the run (nproc = " + machine["nproc"] + "); 'other' = everything else on the"
        " machine; audit rec/req = audit records appended to the vault chain per request;"
        f" * = other > {args.max_other} (contended) even after {args.retries} re-measures."
    )
    if discarded:
        print(f"({len(discarded)} contended rows were re-measured; the discarded attempts are in the JSON.)")
    bad = [r for r in rows if r.non200 or r.exhausted or r.socket_errors]
    for r in bad:
        print(
            f"!! {r.variant} c={r.connections}: statuses {r.statuses}, exhausted supply {r.exhausted},"
            f" socket errors: {r.socket_errors or '-'}"
        )
    if not bad:
        print("all responses 200; no run used up its pre-signed supply.")

    rat = ratios(rows)
    print()
    print(f"{'conns':>5} {'req/s stubbed/on':>17} {'CPU/req on/stubbed':>19} {'audit CPU us/req':>17}")
    for x in rat:
        print(
            f"{x['connections']:>5} {x['rps_stubbed_over_on']:>17.2f}"
            f" {x['cpu_per_req_on_over_stubbed']:>19.2f} {x['audit_cpu_us_per_req']:>17.0f}"
        )

    wait_idle(args.wait_idle, args.max_other)
    costs = verify_costs(args.micro_number)
    print()
    print(f"Ed25519 verify, one call (best of 5 x {args.micro_number}, timeit):")
    for name, us in costs.items():
        print(f"  {name:<34} {us:7.1f} us")
    print()
    print(
        f"{'audit':<8} {'conns':>5} {'CPU us/req':>10} {'/ PyNaCl verify':>16} {'/ cryptography verify':>22}"
    )
    for r in rows:
        print(
            f"{r.variant:<8} {r.connections:>5} {r.server_cpu_us_per_req:>10.0f} "
            f"{r.server_cpu_us_per_req / costs['pynacl']:>16.1f} "
            f"{r.server_cpu_us_per_req / costs['cryptography']:>22.1f}"
        )
    print(f"\nsetup {setup_s:.1f} s, total {time.monotonic() - t_start:.0f} s")

    out = args.json or HERE / "results" / f"signed_reads-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "setup_s": setup_s,
                "rows": [asdict(r) for r in rows],
                "discarded_contended_rows": [asdict(r) for r in discarded],
                "ratios": rat,
                "ed25519_verify_us": costs,
            },
            indent=2,
        )
    )
    print(f"JSON: {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
