"""Whether this machine can host a lab, checked before anything is made: Linux, root,
iproute2, OpenSSH's server and key generator (docs/lab.md). Each missing piece is one
message with its exit code; the test fixture (tests/lab_fixtures.py) skips with it."""

from __future__ import annotations

import os
import shutil
import sys

from coordinator.lab.sshd import SSHD
from coordinator.lab.tools import run_tool
from testbed.exit_codes import ExitCode, TestbedExit

_TOOLS = {"ip": "iproute2", "tc": "iproute2", "ssh-keygen": "openssh-client"}
"""Each tool the lab runs, and the Debian package that has it."""


def check_can_host_lab() -> None:
    """Raise `TestbedExit` with the first reason this machine cannot host a lab."""
    if not sys.platform.startswith("linux"):
        raise TestbedExit(ExitCode.DEPENDENCY_MISSING, "testbed lab needs Linux network "
                          f"namespaces (this is {sys.platform})")  # fmt: skip
    if os.geteuid() != 0:
        raise TestbedExit(ExitCode.NOT_PERMITTED, "testbed lab needs root (it makes network "
                          "namespaces, links and qdiscs and runs sshd on port 22): run it as "
                          "root")  # fmt: skip
    for tool, package in _TOOLS.items():
        if shutil.which(tool) is None:
            raise TestbedExit(ExitCode.DEPENDENCY_MISSING,
                              f"{tool} is not installed (apt-get install {package})")  # fmt: skip
    if not os.access(SSHD, os.X_OK):
        raise TestbedExit(ExitCode.DEPENDENCY_MISSING,
                          f"{SSHD} is missing (apt-get install openssh-server)")  # fmt: skip
    probe = run_tool(["ip", "netns", "list"], check=False)
    if probe.returncode != 0:
        said = probe.stderr.strip() or f"exit {probe.returncode}"
        raise TestbedExit(ExitCode.DEPENDENCY_MISSING, "network namespaces are not available "
                          f"here (`ip netns list`: {said})")  # fmt: skip
