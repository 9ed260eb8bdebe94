"""bench/scale.py runs end to end with tiny sizes and prints its tables; no timings are checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCALE = ROOT / "bench" / "scale.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCALE), *args], capture_output=True, text=True, timeout=90, check=False
    )


def test_scale_reads_benchmark_prints_a_table(tmp_path: Path) -> None:
    if shutil.which("wrk") is None and os.environ.get("CI") != "true":
        pytest.skip("wrk is not installed (apt-get install wrk)")
    out = tmp_path / "reads.json"
    done = _run(
        "reads",
        *["--secrets", "300", "--machines", "5", "--grants-per-machine", "20", "--small-secrets", "50"],
        *["--hot-pairs", "10"],
        *["--duration", "1", "--warmup", "1", "--rounds", "1", "--probe-rate", "500", "--wait-idle", "0"],
        *["--data-dir", str(tmp_path / "large"), "--json", str(out)],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "large/small req/s" in done.stdout
    table = [
        line.split()[:3]
        for line in done.stdout.splitlines()
        if line.split()[:1] in (["small"], ["large"], ["large-hot"]) and line.split()[1].isdigit()
    ]
    assert table == [["small", "50", "1"], ["large", "300", "5"], ["large-hot", "300", "5"]]
    rows = json.loads(out.read_text())["rows"]
    assert all(r["non2xx"] == 0 and r["requests"] > 0 for r in rows)


def test_scale_startup_benchmark_prints_a_table(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    done = _run("startup", "--repeats", "1", "--no-bao", "--wait-idle", "0", "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "spawn->first read ms" in done.stdout
    assert "sikker --dev" in json.loads(out.read_text())["summary"]
