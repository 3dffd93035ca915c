"""Which process a PID recorded in `bench.json` was, so that `testbed down` signals
only the bench's own processes.

A PID alone is not an identity: once a node has exited, the kernel may hand its PID
to any later process, and a `testbed down` days later would kill that one. So the
launcher records each process's start time and command line when it leaves a bench
running; before signalling, `testbed down` checks that the PID still has both
(coordinator/commands/bench_state.py).

The start time that decides is the one on the boot clock: the kernel's boot id
(/proc/sys/kernel/random/boot_id) and the seconds from boot to the process's start
(/proc/PID/stat), which no change of the wall clock moves. psutil's `create_time()`,
in seconds since the epoch, is the boot time plus those seconds, and the boot time
moves whenever the wall clock is set: by NTP after a board without a real-time clock
has booted, or by a whole second when a small correction carries /proc/stat's `btime`
over a second's edge. The epoch time is still recorded, for people and for the
records of before (which it decides alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import psutil

_START_TOLERANCE_S = 0.05
"""Start times are read from the same clock; this only absorbs float rounding. A
recycled PID starts after the original exited, so at least a whole run later."""


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as it was recorded: its PID, start time and command line."""

    pid: int
    started_at: float
    """When it started, in s since the epoch (psutil `create_time()`)."""
    cmdline: tuple[str, ...]
    boot_id: str | None = None
    """The kernel's boot id when it was read (None where there is none: not Linux)."""
    since_boot_s: float | None = None
    """When it started, in s from boot (/proc/PID/stat `starttime`)."""

    @classmethod
    def of(cls, pid: int | None) -> ProcessIdentity | None:
        """The identity of the running process `pid`; None if there is none."""
        found = read_process(pid)
        return found[1] if found else None

    def to_record(self) -> dict[str, Any]:
        """The fields `bench.json` keeps for a node: pid, started_at, cmdline, and where
        known boot_id and since_boot_s."""
        record: dict[str, Any] = {
            "pid": self.pid, "started_at": self.started_at, "cmdline": list(self.cmdline),
        }  # fmt: skip
        if self.boot_id is not None and self.since_boot_s is not None:
            record |= {"boot_id": self.boot_id, "since_boot_s": self.since_boot_s}
        return record

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
        boot_id, since_boot = record.get("boot_id"), record.get("since_boot_s")
        if not isinstance(boot_id, str) or not isinstance(since_boot, int | float):
            boot_id, since_boot = None, None  # a record of before, or a damaged one
        return cls(
            pid, float(started_at), tuple(cmdline), boot_id,
            None if since_boot is None else float(since_boot),
        )  # fmt: skip

    def matches(self, other: ProcessIdentity) -> bool:
        """Same PID, same command line, and the same start: on the boot clock where both
        know it (another boot is another process), else in epoch seconds."""
        if self.pid != other.pid or self.cmdline != other.cmdline:
            return False
        if self.since_boot_s is not None and other.since_boot_s is not None:
            return (
                self.boot_id == other.boot_id
                and abs(self.since_boot_s - other.since_boot_s) <= _START_TOLERANCE_S
            )
        return abs(self.started_at - other.started_at) <= _START_TOLERANCE_S

    def process(self) -> psutil.Process | None:
        """The running process if it is still this one; None if it exited or the PID
        now belongs to another process. The `psutil.Process` returned is the one
        checked, and psutil re-checks its start time before each signal, so a PID
        recycled after this call is not signalled either."""
        found = read_process(self.pid)
        if found is None or not self.matches(found[1]):
            return None
        return found[0]


def read_process(pid: int | None) -> tuple[psutil.Process, ProcessIdentity] | None:
    """The running process `pid` and its identity as of now; None if there is none."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            started_at, cmdline = proc.create_time(), tuple(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    boot_id = _boot_id()
    # create_time() is /proc/PID/stat's ticks from boot plus the boot time it read just
    # now; less the boot time, the start from boot, which setting the clock does not move
    since_boot = started_at - psutil.boot_time() if boot_id is not None else None
    return proc, ProcessIdentity(pid, started_at, cmdline, boot_id, since_boot)


@cache
def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None
