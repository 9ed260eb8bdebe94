"""bench/signed_reads.py runs end to end (1-second runs) and prints its table; no timings are checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_signed_reads_benchmark_prints_a_table(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    out = tmp_path / "result.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "signed_reads.py"),
            *["--duration", "1", "--warmup", "1", "--secrets", "20", "--connections", "16"],
            *["--probe-rate", "2000", "--micro-number", "200", "--wait-idle", "0", "--retries", "0"],
            *["--json", str(out)],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "req/s stubbed/on" in done.stdout
    table = [line.split()[:2] for line in done.stdout.splitlines() if line.startswith(("on ", "stubbed "))]
    assert table[:2] == [["on", "16"], ["stubbed", "16"]]
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["on", "stubbed"]
    assert all(r["non200"] == 0 for r in rows)
    assert rows[0]["audit_records_per_req"] > 0.9  # audit ON writes one record per read
    assert rows[1]["audit_records_per_req"] == 0  # the stub really stubs
