"""The system tools a lab is built with (`ip`, `tc`, `ssh-keygen`, `/usr/sbin/sshd`),
run as subprocesses: a failure becomes one error naming the command and what the tool
said, never a traceback (docs/lab.md)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from testbed.exit_codes import ExitCode, TestbedExit

Completed = subprocess.CompletedProcess[str]

TOOL_TIMEOUT_S = 30.0
"""No `ip`/`tc`/`ssh-keygen` call takes more than a fraction of a second; a hung one
(a wedged namespace mount) is reported instead of waited on forever."""


class ToolFailed(TestbedExit):
    """A tool exited non-zero; `stderr` holds what it said."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        said = stderr.strip().splitlines()
        super().__init__(
            ExitCode.FAILURE,
            f"`{shlex.join(argv)}` failed (exit {returncode})" + (f": {said[-1]}" if said else ""),
        )
        self.returncode = returncode
        self.stderr = stderr


def run_tool(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `argv`; raise `ToolFailed` on a non-zero exit when `check`."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise TestbedExit(
            ExitCode.DEPENDENCY_MISSING, f"{argv[0]} is not installed (needed by testbed lab)"
        ) from None
    except subprocess.TimeoutExpired:
        raise TestbedExit(
            ExitCode.FAILURE, f"`{shlex.join(argv)}` did not finish in {TOOL_TIMEOUT_S:g} s"
        ) from None
    if check and done.returncode != 0:
        raise ToolFailed(argv, done.returncode, done.stderr)
    return done


def tool_ok(argv: Sequence[str]) -> bool:
    """Whether `argv` exits 0 (a probe: its output is discarded)."""
    try:
        return run_tool(argv, check=False).returncode == 0
    except TestbedExit:
        return False


def ip(*args: str, netns: str | None = None, check: bool = True) -> Completed:
    """`ip [-n NETNS] ARGS...`."""
    return run_tool(["ip", *(("-n", netns) if netns else ()), *args], check=check)


def tc(*args: str, netns: str | None = None, check: bool = True) -> Completed:
    """`tc [-n NETNS] ARGS...`."""
    return run_tool(["tc", *(("-n", netns) if netns else ()), *args], check=check)
