"""Backup and restore time, file size and memory for N secrets (docs/operator/backup.md).

    .venv/bin/python bench/backup.py --secrets 10000             # SQLite server
    .venv/bin/python bench/backup.py --secrets 10000 --pg         # PostgreSQL server

1. Starts ``sikker server`` (real subprocess) on a fresh store, initialises and unseals it,
   creates --secrets secrets over HTTP (8 threads; each a version row, a data key and an
   audit record), and updates every tenth once more.
2. ``sikker operator backup -o FILE`` (the real CLI): wall time, file size, and the server's
   resident memory sampled every 20 ms during the backup (peak minus the value before).
3. ``sikker operator restore FILE`` (the real CLI, shares on stdin) into a fresh SQLite data
   dir: wall time and the restore process's peak RSS (``wait4``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import Api, Server, fresh_pg_database, init_and_unseal  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", type=int, default=10_000)
    parser.add_argument("--pg", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sikker-bench-backup-"))
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_pg_database()) if args.pg else ""
        server = Server(url, work / "data").start()
        stack.callback(server.stop)
        shares, token = init_and_unseal(server.url, 3, 2)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "bench"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        started = time.monotonic()

        def create(i: int) -> None:
            sid = root.ok("POST", f"/api/projects/{project}/secrets", {"name": f"S{i}", "value": f"value-{i:08d}"})["id"]
            if i % 10 == 0:
                root.ok("PUT", f"/api/secrets/{sid}", {"value": f"value-{i:08d}-2"})

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.secrets)))
        print(f"store: {'postgresql' if args.pg else 'sqlite'}; created {args.secrets} secrets in {time.monotonic() - started:.1f} s")

        assert server.proc is not None
        pid = server.proc.pid
        baseline, peak, done = rss_kib(pid), [0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        out = work / "bench.backup"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIKKER_")}
        env |= {"SIKKER_ADDR": server.url, "SIKKER_TOKEN": token}
        started = time.monotonic()
        made = subprocess.run([sys.executable, "-m", "sikker", "operator", "backup", "-o", str(out)], env=env, capture_output=True, text=True)
        backup_s = time.monotonic() - started
        done.set()
        sampler.join()
        assert made.returncode == 0, made.stderr
        print(made.stdout.strip())
        print(f"backup: {backup_s:.2f} s wall (CLI, end to end), {out.stat().st_size / 1e6:.2f} MB")
        print(f"server RSS before {baseline / 1024:.1f} MiB, peak during backup {peak[0] / 1024:.1f} MiB (+{(peak[0] - baseline) / 1024:.1f} MiB)")

        target = work / "restored"
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sikker", "operator", "restore", str(out), "--data-dir", str(target)],
            env={k: v for k, v in os.environ.items() if not k.startswith("SIKKER_")},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write("\n".join(shares[:2]))
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        restore_s = time.monotonic() - started
        assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read()
        print(proc.stdout.read().strip())
        print(f"restore into SQLite: {restore_s:.2f} s wall (CLI, end to end), peak RSS {usage.ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
