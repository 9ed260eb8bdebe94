"""What the benchmarks read from /proc: CPU time and peak RSS of a process tree,
the machine's total CPU time and load average, and a one-line machine description.

Linux only. CPU times are in seconds (clock ticks / SC_CLK_TCK).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import threading
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    own: float  # utime + stime of the process itself
    reaped: float  # cutime + cstime: children that have exited and were waited for


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return text[text.rindex(")") + 2 :].split()


def cpu_times(pid: int) -> CpuTimes:
    f = _stat_fields(pid)  # f[0] is field 3 (state): utime=f[11] stime=f[12] cutime=f[13] cstime=f[14]
    return CpuTimes((int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK)


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, grandchildren, ...)."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent_of[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, pp in parent_of.items() if pp == current]
        found.extend(kids)
        frontier.extend(kids)
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds used by ``pid``, its live descendants and its reaped children."""
    total = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            t = cpu_times(p)
        except OSError:
            continue
        total += t.own + (t.reaped if p == pid else 0.0)
    return total


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of ``pid`` plus that of its live descendants, in MiB."""
    total_kib = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def pss_mib(pid: int) -> float:
    """Proportional set size of ``pid`` and its live descendants, in MiB: pages shared between
    them (forked workers) are counted once in all, unlike the sum of their RSS."""
    total_kib = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


class PeakPss:
    """Sample ``pss_mib(pid)`` every ``interval`` s while the ``with`` block runs; ``.peak``."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, pss_mib(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, pss_mib(self.pid))


def machine_cpu() -> float:
    """CPU seconds used by everything on the machine so far (all cores, not idle/iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def describe() -> dict[str, str]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
