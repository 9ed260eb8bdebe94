"""Issue 19's targets in one table, from the JSON files the three `make bench` steps wrote.

    .venv/bin/python bench/targets.py          # the last step of `make bench`
    .venv/bin/python bench/targets.py --vs a.json --startup b.json --scale c.json

Every figure comes from those files (measured in that run): bench/vs_openbao.py (reads,
writes, PSS, CPU per read, the PostgreSQL store, the PyNaCl verify timed in the same run),
bench/scale.py startup and bench/scale.py reads. A figure missing from its file is shown
as "not measured" and counts as not met. Nothing is measured here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = "sikker"  # vs_openbao.py's label of `sikker server` as it runs by default
CONNS = 64


@dataclass(frozen=True, slots=True)
class Target:
    figure: str
    sikker: float | None
    baseline: float | None
    unit: str
    bound: float
    at_least: bool  # ratio >= bound, else ratio <= bound
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.sikker is None or not self.baseline:
            return None
        return self.sikker / self.baseline

    @property
    def met(self) -> bool:
        r = self.ratio
        return r is not None and (r >= self.bound if self.at_least else r <= self.bound)


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        print(f"(missing: {path})", file=sys.stderr)
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _row(
    rows: list[dict[str, Any]], server: str, kind: str, conns: int | None = None
) -> dict[str, Any] | None:
    for r in rows:
        if r["server"] == server and r["kind"] == kind and (conns is None or r["connections"] == conns):
            return r
    return None


def _field(row: dict[str, Any] | None, key: str) -> float | None:
    return float(row[key]) if row else None


def _flag(*rows: dict[str, Any] | None, max_other: float) -> str:
    """'contended' when another process used more than ``max_other`` CPUs during a row."""
    return "contended" if any(r and r["other_cpus"] > max_other for r in rows) else ""


def _startup(summary: dict[str, Any], prefix: str) -> float | None:
    for name, figures in summary.items():
        if name.startswith(prefix):
            return float(figures["first_read_s"]["median_ms"])
    return None


def collect(vs: dict[str, Any], startup: dict[str, Any], scale: dict[str, Any]) -> list[Target]:
    rows: list[dict[str, Any]] = vs.get("rows", [])
    max_other = float(vs.get("args", {}).get("max_other", 0.15))
    read = _row(rows, DEFAULT, "signed read", CONNS)
    bao_read = _row(rows, "openbao", "token read", CONNS)
    write, bao_write = _row(rows, DEFAULT, "write"), _row(rows, "openbao", "write")
    pg_read = _row(rows, "sikker pg", "signed read", CONNS)
    mine = [r["peak_pss_mib"] for r in rows if r["server"] == DEFAULT]
    theirs = [r["peak_pss_mib"] for r in rows if r["server"] == "openbao"]
    verify = vs.get("ed25519_verify_us_pynacl")
    scale_rows: list[dict[str, Any]] = scale.get("rows", [])
    small = [r["rps"] for r in scale_rows if r["dataset"] == "small"]
    large = [r["rps"] for r in scale_rows if r["dataset"] == "large"]
    size: dict[str, int] = scale.get("large", {}).get("size", {})
    small_size = int(scale.get("args", {}).get("small_secrets", 1000))
    scale_other = float(scale.get("args", {}).get("max_other", 0.15))
    scale_rows = [r for r in scale_rows if r["dataset"] in ("small", "large")]
    return [
        Target(
            f"signed reads/s at {CONNS} conns, default server / OpenBao non-root token reads",
            _field(read, "rps"),
            _field(bao_read, "rps"),
            "req/s",
            3.0,
            True,
            _flag(read, bao_read, max_other=max_other),
        ),
        Target(
            "admin writes/s (PUT /api/secrets/<id>), 16 conns / OpenBao KV v2 writes",
            _field(write, "rps"),
            _field(bao_write, "rps"),
            "req/s",
            1.5,
            True,
            _flag(write, bao_write, max_other=max_other),
        ),
        Target(
            f"reads/s with {size.get('secrets', 1_000_000):,} secrets,"
            f" {size.get('machines', 10_000):,} machines (uniform) / {small_size:,} secrets",
            statistics.median(large) if large else None,
            statistics.median(small) if small else None,
            "req/s",
            0.9,
            True,
            ", ".join(x for x in ("medians of the rounds", _flag(*scale_rows, max_other=scale_other)) if x),
        ),
        Target(
            "spawn -> first served read, sikker server / bao server -dev",
            _startup(startup.get("summary", {}), "sikker"),
            _startup(startup.get("summary", {}), "bao"),
            "ms",
            2.0,
            False,
            "medians",
        ),
        Target(
            "peak memory under load (PSS, all processes) / OpenBao",
            max(mine) if mine else None,
            max(theirs) if theirs else None,
            "MiB",
            1.0,
            False,
            "peak over each server's rows",
        ),
        Target(
            f"server CPU per signed read ({CONNS} conns) / one Ed25519 verify (PyNaCl)",
            _field(read, "server_cpu_us_per_req"),
            float(verify) if verify else None,
            "us",
            4.0,
            False,
            _flag(read, max_other=max_other),
        ),
        Target(
            f"signed reads/s on PostgreSQL (one node), {CONNS} conns / OpenBao",
            _field(pg_read, "rps"),
            _field(bao_read, "rps"),
            "req/s",
            1.0,
            True,
            _flag(pg_read, bao_read, max_other=max_other),
        ),
    ]


def _num(x: float | None) -> str:
    return "not measured" if x is None else f"{x:,.1f}"


def print_table(targets: list[Target]) -> None:
    head = f"{'figure':<78} {'sikker':>12} {'baseline':>12} {'unit':>5} {'ratio':>7} {'target':>7}  result"
    print(head)
    print("-" * len(head))
    for t in targets:
        ratio = "-" if t.ratio is None else f"{t.ratio:.2f}x"
        bound = f"{'>=' if t.at_least else '<='} {t.bound:.1f}x"
        note = f"  ({t.note})" if t.note else ""
        print(
            f"{t.figure:<78} {_num(t.sikker):>12} {_num(t.baseline):>12} {t.unit:>5} {ratio:>7} {bound:>7}"
            f"  {'met' if t.met else 'NOT MET'}{note}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vs", type=Path, default=RESULTS / "make-bench-vs_openbao.json")
    ap.add_argument("--startup", type=Path, default=RESULTS / "make-bench-startup.json")
    ap.add_argument("--scale", type=Path, default=RESULTS / "make-bench-scale-reads.json")
    ap.add_argument("--json", type=Path, help="also write the table here")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    args = ap.parse_args()
    vs, startup, scale = _load(args.vs), _load(args.startup), _load(args.scale)
    targets = collect(vs, startup, scale)
    print(f"\nIssue 19 targets (from {args.vs.name}, {args.startup.name}, {args.scale.name})")
    for name, data in (("vs_openbao", vs), ("startup", startup), ("scale reads", scale)):
        print(f"  {name}: {data.get('machine', {}).get('date', 'missing')}")
    rows: list[dict[str, Any]] = vs.get("rows", [])
    print_table(targets)
    print(
        "baseline = OpenBao (bench/vs_openbao.py, scale.py startup), the 1k-secret store (scale.py reads),"
        " or one PyNaCl verify timed in the same run; contended = another process used more CPU than"
        " --max-other during a row."
    )
    pg1 = _row(rows, "sikker pg", "signed read", CONNS)
    spread = [r for r in rows if r["server"].startswith("sikker pg") and r["server"] != "sikker pg"]
    if pg1 and spread:
        n = spread[0]["extra"].get("nodes", "?")
        print(
            f"no target: {n} nodes on one PostgreSQL {spread[0]['rps']:,.0f} req/s vs one node"
            f" {pg1['rps']:,.0f} req/s = {spread[0]['rps'] / pg1['rps']:.2f}x (this machine, {CONNS} conns)"
        )
    met = sum(t.met for t in targets)
    print(f"{met} of {len(targets)} targets met")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                [
                    {
                        "figure": t.figure,
                        "sikker": t.sikker,
                        "baseline": t.baseline,
                        "unit": t.unit,
                        "ratio": t.ratio,
                        "target": f"{'>=' if t.at_least else '<='} {t.bound}",
                        "met": t.met,
                        "note": t.note,
                    }
                    for t in targets
                ],
                indent=2,
            )
        )
    return 1 if args.strict and met < len(targets) else 0


if __name__ == "__main__":
    raise SystemExit(main())
