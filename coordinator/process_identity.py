"""Which process a PID recorded in `bench.json` was, so that `testbed down` signals
only the bench's own processes.

A PID alone is not an identity: once a node has exited, the kernel may hand its PID
to any later process, and a `testbed down` days later would kill that one. So the
launcher records each process's start time (psutil's `create_time()`, from
/proc/PID/stat) and command line when it leaves a bench running; before signalling,
`testbed down` checks that the PID still has both (coordinator/commands/bench_state.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psutil

_START_TOLERANCE_S = 0.05
"""Start times are read from the same boot clock; this only absorbs float rounding. A
recycled PID starts after the original exited, so at least a whole run later."""


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it was recorded: its PID, start time and command line."""

    pid: int
    started_at: float
    """When it started, in s since the epoch (psutil `create_time()`)."""
    cmdline: tuple[str, ...]

    @classmethod
    def of(cls, pid: int | None) -> ProcessIdentity | None:
        """The identity of the running process `pid`; None if there is none."""
        found = _read(pid)
        return found[1] if found else None

    def to_record(self) -> dict[str, Any]:
        """The fields `bench.json` keeps for a node: pid, started_at, cmdline."""
        return {"pid": self.pid, "started_at": self.started_at, "cmdline": list(self.cmdline)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ProcessIdentity | None:
        """The identity a `bench.json` node entry recorded; None if it has none (a file
        written before identities were recorded, or a process already gone)."""
        pid, started_at, cmdline = (
            record.get("pid"),
            record.get("started_at"),
            record.get("cmdline"),
        )
        if not isinstance(pid, int) or not isinstance(started_at, int | float):
            return None
        if not isinstance(cmdline, list) or not all(isinstance(a, str) for a in cmdline):
            return None
        return cls(pid, float(started_at), tuple(cmdline))

    def matches(self, other: ProcessIdentity) -> bool:
        return (
            self.pid == other.pid
            and abs(self.started_at - other.started_at) <= _START_TOLERANCE_S
            and self.cmdline == other.cmdline
        )

    def process(self) -> psutil.Process | None:
        """The running process if it is still this one; None if it exited or the PID
        now belongs to another process. The `psutil.Process` returned is the one
        checked, and psutil re-checks its start time before each signal, so a PID
        recycled after this call is not signalled either."""
        found = _read(self.pid)
        if found is None or not self.matches(found[1]):
            return None
        return found[0]


def _read(pid: int | None) -> tuple[psutil.Process, ProcessIdentity] | None:
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return proc, ProcessIdentity(pid, proc.create_time(), tuple(proc.cmdline()))
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
