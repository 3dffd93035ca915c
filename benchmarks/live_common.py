"""What the issue-3 benchmarks share: CPU time of processes and of their threads, read
from /proc (Linux), so a benchmark can say where a slot's or a task's time goes.

On a machine with fewer cores than busy processes, wall time is bounded below by the
CPU time spent divided by the cores; these readings make that bound visible. A
thread's name comes from `py-spy dump` when py-spy is installed (Python does not
name its native threads); without it, threads are grouped by their native name
(`python` for every Python thread).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _stat_cpu_s(path: Path) -> float:
    """utime + stime of a /proc/<pid>[/task/<tid>]/stat file, in s (NaN if gone)."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) * _TICK_S


class CpuClock:
    """CPU seconds (user + system, all threads) of named processes."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def read(self) -> dict[str, float]:
        return {name: _stat_cpu_s(Path(f"/proc/{pid}/stat")) for name, pid in self.pids.items()}


def process_class(name: str) -> str:
    """agent-3 → agent, edge-0 → edge, echo-7 → echo."""
    return re.sub(r"-\d+$", "", name)


def cpu_ms_by_class(
    before: dict[str, float], after: dict[str, float], per: float
) -> dict[str, float]:
    """CPU ms between two readings, summed by process class and divided by `per`
    (slots, tasks): {"cpu_<class>_ms": ms}."""
    out: dict[str, float] = {}
    for name, start in before.items():
        key = f"cpu_{process_class(name)}_ms"
        out[key] = out.get(key, 0.0) + (after[name] - start) * 1e3 / per
    return out


def py_spy() -> str | None:
    """The py-spy executable (beside this Python first), or None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id → Python thread name, from `py-spy dump` ({} without py-spy)."""
    exe = py_spy()
    if exe is None:
        return {}
    try:
        out = subprocess.run(
            [exe, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(m[1]): m[2] for m in re.finditer(r'Thread (\d+) \([^)]*\): "([^"]*)"', out)}


class ThreadCpu:
    """CPU seconds of each thread of one process, grouped by `groups`: a list of
    (group, regex over the thread's name) tried in order; the rest is "other"."""

    def __init__(self, pid: int, groups: list[tuple[str, str]]) -> None:
        self.pid = pid
        self.groups = [(g, re.compile(p)) for g, p in groups]
        self.names = thread_names(pid)
        self.named = bool(self.names)

    def _name(self, tid: int) -> str:
        if tid in self.names:
            return self.names[tid]
        try:
            return Path(f"/proc/{self.pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            return "?"

    def read(self) -> dict[int, float]:
        out = {}
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{self.pid}/task")]
        except OSError:
            return {}
        for tid in tids:
            out[tid] = _stat_cpu_s(Path(f"/proc/{self.pid}/task/{tid}/stat"))
        return out

    def by_group(self, before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
        """CPU seconds per group between two readings (threads born in between count
        from zero)."""
        out = {g: 0.0 for g, _ in self.groups} | {"other": 0.0}
        for tid, end in after.items():
            spent = end - before.get(tid, 0.0)
            if not math.isfinite(spent):
                continue
            name = self._name(tid)
            group = next((g for g, rx in self.groups if rx.search(name)), "other")
            out[group] += spent
        return out
