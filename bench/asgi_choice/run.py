"""ASGI framework/server choice benchmark for sikker's signed read (GET /v1/secret/sk_x).

For each variant: start the server on a free 127.0.0.1 port, sanity-check one
valid (200 + correct plaintext) and one forged (401) request, run a wrk warm-up,
run the measured wrk pass with --latency, stop the server, and print a table.
Also micro-benchmarks one Ed25519 verify with pyca/cryptography vs PyNaCl.

Run with an interpreter that has granian + fastapi for the full set (variants
whose modules are missing are skipped):

    python3.11 -m venv /tmp/asgibench-venv
    /tmp/asgibench-venv/bin/pip install granian fastapi starlette==1.10.0 \
        'uvicorn[standard]==0.54.0' orjson cryptography pynacl
    /tmp/asgibench-venv/bin/python bench/asgi_choice/run.py

Needs `wrk` on PATH (apt-get install wrk).  Only loopback traffic.  The whole
run is bounded by --budget seconds (default 240): variants that would not fit
are skipped and reported as such.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import http.client
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import apps  # noqa: E402


@dataclass
class Variant:
    key: str
    label: str
    server: str  # uvicorn | granian
    target: str
    workers: int
    needs: tuple[str, ...]
    factory: bool = False


VARIANTS = [
    Variant("uv-raw-1", "uvicorn + raw ASGI", "uvicorn", "apps:raw_app", 1, ("uvicorn",)),
    Variant(
        "uv-star-1", "uvicorn + Starlette Route", "uvicorn", "apps:starlette_app", 1, ("uvicorn", "starlette")
    ),
    Variant("uv-raw-2", "uvicorn + raw ASGI", "uvicorn", "apps:raw_app", 2, ("uvicorn",)),
    Variant(
        "uv-star-2", "uvicorn + Starlette Route", "uvicorn", "apps:starlette_app", 2, ("uvicorn", "starlette")
    ),
    Variant("gr-raw-1", "granian + raw ASGI", "granian", "apps:raw_app", 1, ("granian",)),
    Variant("gr-raw-2", "granian + raw ASGI", "granian", "apps:raw_app", 2, ("granian",)),
    Variant(
        "gr-star-1", "granian + Starlette Route", "granian", "apps:starlette_app", 1, ("granian", "starlette")
    ),
    Variant(
        "uv-fastapi-1",
        "uvicorn + FastAPI (reference)",
        "uvicorn",
        "apps:fastapi_factory",
        1,
        ("uvicorn", "fastapi"),
        factory=True,
    ),
    # extra: same raw app, Ed25519 verify via PyNaCl (libsodium) instead of pyca (OpenSSL)
    Variant(
        "uv-rawnacl-1",
        "uvicorn + raw ASGI, PyNaCl verify",
        "uvicorn",
        "apps:raw_app_nacl",
        1,
        ("uvicorn", "nacl"),
    ),
    Variant(
        "uv-rawnacl-2",
        "uvicorn + raw ASGI, PyNaCl verify",
        "uvicorn",
        "apps:raw_app_nacl",
        2,
        ("uvicorn", "nacl"),
    ),
]


def have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_cmd(v: Variant, port: int) -> list[str]:
    if v.server == "uvicorn":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            v.target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--workers",
            str(v.workers),
            "--no-access-log",
            "--log-level",
            "warning",
            "--app-dir",
            str(HERE),
        ]
        if v.factory:
            cmd.append("--factory")
        return cmd
    return [
        sys.executable,
        "-m",
        "granian",
        v.target,
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(v.workers),
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--no-access-log",
        "--log-level",
        "warning",
        "--working-dir",
        str(HERE),
    ]


def request(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        c.request("GET", apps.PATH, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_ready(port: int, headers: dict[str, str], proc: subprocess.Popen, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            request(port, headers)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def sanity(port: int, headers: dict[str, str]) -> None:
    st, body = request(port, headers)
    if st != 200 or json.loads(body) != {"value": apps.PLAINTEXT.decode()}:
        raise RuntimeError(f"valid request -> {st} {body[:100]!r}")
    forged = dict(headers, **{"X-Nonce": "n_forged"})
    st, body = request(port, forged)
    if st != 401:
        raise RuntimeError(f"forged request -> {st} {body[:100]!r}")


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(txt: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", txt)
    if not m:
        raise ValueError(txt)
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_wrk(out: str) -> dict[str, float]:
    res: dict[str, float] = {}
    res["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    for pct in ("50", "99"):
        res[f"p{pct}"] = to_ms(re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["sockerr"] = float(sum(int(x) for x in m.groups())) if m else 0.0
    res["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return res


_TICK = os.sysconf("SC_CLK_TCK")


def system_busy_ticks() -> int:
    """Busy jiffies of the whole machine (all CPUs) from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return sum(vals[:8]) - idle  # user..steal, guest is already inside user


def group_ticks(pgid: int) -> int:
    """utime+stime of the live processes in process group pgid (the server)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5 (pgrp)
            total += int(fields[11]) + int(fields[12])  # fields 14, 15
    return total


def children_ticks() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * _TICK


def self_ticks() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (ru.ru_utime + ru.ru_stime) * _TICK


def wait_idle(limit: float, threshold: float = 0.25) -> float:
    """Wait (up to limit s) until the machine is <threshold busy over 0.5 s; return busy."""
    deadline = time.monotonic() + limit
    ncpu = os.cpu_count() or 1
    while True:
        b0, t0 = system_busy_ticks(), time.monotonic()
        time.sleep(0.5)
        busy = (system_busy_ticks() - b0) / (_TICK * ncpu * (time.monotonic() - t0))
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def wrk(port: int, headers: dict[str, str], secs: int, conns: int, threads: int) -> str:
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", "--timeout", "5s"]
    for k, val in headers.items():
        cmd += ["-H", f"{k}: {val}"]
    cmd.append(f"http://127.0.0.1:{port}{apps.PATH}")
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=secs + 30).stdout


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    pgid = proc.pid  # started with start_new_session=True, so pid == pgid
    os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=5)
    # a worker may outlive the parent for a moment; make sure the group is gone
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run_variant(v: Variant, args: argparse.Namespace, headers: dict[str, str]) -> dict:
    port = free_port()
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in the finally below
        "w+", prefix=f"asgibench-{v.key}-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(
        server_cmd(v, port), cwd=HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    ok = False
    try:
        wait_ready(port, headers, proc, 20)
        if v.workers > 1:
            time.sleep(1.0)  # let every worker finish importing before the warm-up
        sanity(port, headers)
        if args.warmup:
            wrk(port, headers, args.warmup, args.connections, args.threads)
        # CPU accounting over the measured window only: the server's process group,
        # wrk (a waited child) and everything else on the machine ("other").
        ncpu = os.cpu_count() or 1
        t_0, sys0, srv0, ch0, me0 = (
            time.monotonic(),
            system_busy_ticks(),
            group_ticks(proc.pid),
            children_ticks(),
            self_ticks(),
        )
        out = wrk(port, headers, args.duration, args.connections, args.threads)
        t_1, sys1, srv1, ch1, me1 = (
            time.monotonic(),
            system_busy_ticks(),
            group_ticks(proc.pid),
            children_ticks(),
            self_ticks(),
        )
        res = parse_wrk(out)
        cap = _TICK * (t_1 - t_0)  # ticks of one CPU over the window
        res["srv_cpu"] = (srv1 - srv0) / cap  # in CPUs (2.0 = both cores)
        res["wrk_cpu"] = (ch1 - ch0) / cap
        other = (sys1 - sys0) - (srv1 - srv0) - (ch1 - ch0) - (me1 - me0)
        res["other_cpu"] = max(other, 0) / cap
        res["ncpu"] = ncpu
        res["raw"] = out  # type: ignore[assignment]
        ok = True
        return res
    except Exception:
        log.flush()
        log.seek(0)
        sys.stderr.write(f"--- {v.key} server log ({log.name}) ---\n{log.read()[-3000:]}\n")
        raise
    finally:
        stop(proc)
        log.close()
        if ok:
            os.unlink(log.name)


def micro(number: int) -> list[tuple[str, float]]:
    from nacl.signing import VerifyKey

    h = apps.make_headers()
    msg = apps.canonical(apps.PATH, h["X-Machine-Id"], h["X-Timestamp"], h["X-Nonce"])
    sig = base64.b64decode(h["X-Signature"])
    pyca_pub = apps.MACHINE_KEYS[apps.MACHINE_ID]
    raw_pub = pyca_pub.public_bytes_raw()
    nacl_pub = VerifyKey(raw_pub)
    nacl_pub.verify(msg, sig)  # raises if the libraries disagree
    pyca_pub.verify(sig, msg)
    gcm_nonce, ct = apps.SECRETS[apps.SECRET_NAME]
    aead = apps._AEAD
    name = apps.SECRET_NAME.encode()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    cases = [
        ("Ed25519 verify, pyca/cryptography (key preloaded)", lambda: pyca_pub.verify(sig, msg)),
        ("Ed25519 verify, PyNaCl (key preloaded)", lambda: nacl_pub.verify(msg, sig)),
        (
            "Ed25519 verify, pyca incl. from_public_bytes",
            lambda: Ed25519PublicKey.from_public_bytes(raw_pub).verify(sig, msg),
        ),
        ("Ed25519 verify, PyNaCl incl. VerifyKey()", lambda: VerifyKey(raw_pub).verify(msg, sig)),
        ("AES-256-GCM decrypt 64 B (AESGCM)", lambda: aead.decrypt(gcm_nonce, ct, name)),
        (
            "whole read_secret() handler body",
            lambda: apps.read_secret(
                apps.PATH,
                apps.SECRET_NAME,
                h["X-Machine-Id"],
                h["X-Timestamp"],
                h["X-Nonce"],
                h["X-Signature"],
            ),
        ),
        (
            "whole read_secret() handler body, PyNaCl verify",
            lambda: apps.read_secret(
                apps.PATH,
                apps.SECRET_NAME,
                h["X-Machine-Id"],
                h["X-Timestamp"],
                h["X-Nonce"],
                h["X-Signature"],
                True,
            ),
        ),
    ]
    out = []
    for label, fn in cases:
        best = min(timeit.repeat(fn, number=number, repeat=5)) / number
        out.append((label, best * 1e6))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="measured wrk seconds per run")
    ap.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds (discarded)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    ap.add_argument("--only", nargs="*", help="variant keys: " + " ".join(v.key for v in VARIANTS))
    ap.add_argument("--budget", type=float, default=240, help="wall-clock cap in seconds")
    ap.add_argument("--micro-number", type=int, default=5000)
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=10,
        help="before each variant wait up to this many s for the machine to be idle",
    )
    ap.add_argument(
        "--max-other",
        type=float,
        default=0.10,
        help="re-measure a variant if other processes used more CPUs than this",
    )
    ap.add_argument("--retries", type=int, default=2, help="re-measure rounds for contended rows")
    ap.add_argument("--json", type=Path, help="also write results as JSON here")
    ap.add_argument("--show-wrk", action="store_true", help="print the raw wrk output")
    args = ap.parse_args()

    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    import cryptography
    import orjson

    vers = {
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "orjson": orjson.__version__,
    }
    for mod in ("uvicorn", "starlette", "granian", "fastapi", "uvloop", "httptools", "nacl"):
        if have(mod):
            m = __import__(mod)
            vers[mod] = getattr(m, "__version__", "?")
    print(
        f"date {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, nproc {os.cpu_count()}, "
        f"{platform.machine()}, {platform.release()}"
    )
    print("versions:", ", ".join(f"{k} {v}" for k, v in vers.items()))
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency "
        f"(after a {args.warmup}s warm-up), GET {apps.PATH}\n"
    )

    results: dict[str, object] = {"versions": vers, "args": {k: str(v) for k, v in vars(args).items()}}
    print(f"micro-benchmarks (best of 5 x {args.micro_number} calls, in-process):")
    mres = micro(args.micro_number)
    for label, us in mres:
        print(f"  {label:<52} {us:8.1f} us")
    results["micro_us"] = dict(mres)
    print()

    per_run = args.duration + args.warmup + 5 + min(args.wait_idle, 1)  # + start-up, sanity, shutdown

    def attempt(v: Variant) -> tuple[dict | None, str]:
        if args.wait_idle:
            wait_idle(args.wait_idle)
        headers = apps.make_headers()  # fresh timestamp per attempt (SKEW=300 s)
        print(f"running {v.key} ...", flush=True)
        try:
            res = run_variant(v, args, headers)
        except Exception as e:  # keep going; report the failure in the table
            return None, f"failed: {e}"
        if args.show_wrk:
            print(res["raw"])
        return res, ""

    rows: list[tuple[Variant, dict | None, str]] = []
    for v in VARIANTS:
        if args.only and v.key not in args.only:
            continue
        missing = [m for m in v.needs if not have(m)]
        if missing:
            rows.append((v, None, "skipped: missing " + ",".join(missing)))
            continue
        if time.monotonic() - t0 + per_run > args.budget:
            rows.append((v, None, "skipped: time budget"))
            continue
        res, note = attempt(v)
        rows.append((v, res, note))

    # The machine may be shared (other people's test suites): re-measure the rows where
    # other processes took more than --max-other CPUs during the window, budget permitting,
    # and keep the least-contended attempt.
    for _round in range(args.retries):
        for i, (v, res, note) in enumerate(rows):
            if res is None or res["other_cpu"] <= args.max_other:
                continue
            if time.monotonic() - t0 + per_run > args.budget:
                break
            print(f"  (re-measuring {v.key}: other processes used {res['other_cpu']:.2f} CPU)")
            res2, _ = attempt(v)
            if res2 is not None and res2["other_cpu"] < res["other_cpu"]:
                rows[i] = (v, res2, note)

    print(
        f"\n{'variant':<34} {'workers':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'srv CPU':>7} {'wrk CPU':>7} {'other':>6}"
    )
    table = []
    for v, res, note in rows:
        if res is None:
            print(f"{v.label:<34} {v.workers:>7}   {note}")
            table.append({"key": v.key, "note": note})
            continue
        err = int(res["non2xx"] + res["sockerr"])
        flag = " *" if res["other_cpu"] > args.max_other else ""
        print(
            f"{v.label:<34} {v.workers:>7} {res['rps']:>9.0f} {res['p50']:>8.2f} "
            f"{res['p99']:>8.2f} {err:>7} {res['srv_cpu']:>7.2f} {res['wrk_cpu']:>7.2f} "
            f"{res['other_cpu']:>6.2f}{flag}"
        )
        table.append(
            {
                "key": v.key,
                "label": v.label,
                "workers": v.workers,
                **{
                    k: res[k]
                    for k in (
                        "rps",
                        "p50",
                        "p99",
                        "non2xx",
                        "sockerr",
                        "requests",
                        "srv_cpu",
                        "wrk_cpu",
                        "other_cpu",
                    )
                },
            }
        )
    print(
        "CPU columns: CPU-seconds per second over the measured window (2.00 = both cores);"
        " 'other' = everything on the machine except the server, wrk and this script;"
        " * = still contended (other > --max-other) after the re-measure rounds."
    )
    results["table"] = table
    print(f"\ntotal wall time {time.monotonic() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
