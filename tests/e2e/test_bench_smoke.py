"""bench/signed_reads.py runs end to end (1-second runs) and prints its table; no timings are checked."""

from __future__ import annotations

import json
import re
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
            # Several workers, as the default server on a multi-core machine: the STUBBED
            # launcher must set up multiprocess metrics before it patches the audit store.
            *["--workers", "2"],
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


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_vs_openbao_sikker_and_postgresql_rows_feed_the_targets_table(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    from tests.support import PG_ADMIN_URL, require_postgres

    require_postgres()
    out = tmp_path / "vs.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "vs_openbao.py"),
            *["--no-bao", "--workers", "0", "--connections", "64", "--pg-connections", "64"],
            *["--pg-nodes", "2", "--pg-url", PG_ADMIN_URL, "--duration", "1", "--warmup", "1"],
            *["--write-duration", "1", "--secrets", "20", "--probe-rate", "2000", "--wait-idle", "0"],
            *["--json", str(out)],
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["server"], r["kind"]) for r in rows] == [
        ("sikker", "signed read"),
        ("sikker", "write"),
        ("sikker pg", "signed read"),
        ("sikker pg2", "signed read"),
        ("sikker pg", "write"),
    ]
    assert all(r["non2xx"] == 0 and r["requests"] > 0 for r in rows)
    assert all(r["audit_per_req"] > 0.9 for r in rows)  # audit ON, counted on both stores

    table = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "targets.py"),
            *["--vs", str(out), "--startup", str(tmp_path / "none"), "--scale", str(tmp_path / "none")],
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert table.returncode == 0, table.stdout + table.stderr
    results = [line for line in table.stdout.splitlines() if re.search(r"x  (met|NOT MET)", line)]
    assert len(results) == 7
    pg_row = next(line for line in results if line.startswith("signed reads/s on PostgreSQL"))
    assert re.search(r"/ OpenBao +[\d,]+\.\d +not measured", pg_row), pg_row  # no OpenBao in this run
    assert "2 nodes on one PostgreSQL" in table.stdout
