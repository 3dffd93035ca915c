"""`<lab dir>/inventory.yaml`: the lab's hosts as an inventory (the `hosts:` list of
testbed/config/inventory.py), ready for `testbed deploy` once each host's `nodes` are
filled in (docs/lab.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from coordinator.lab.plan import SSH_PORT
from coordinator.lab.state import LabState
from testbed.config.inventory import BoardClass, HostConfig, InventoryConfig, ServiceManager

_HEADER = """\
# The hosts of the lab in {dir}, written by `testbed lab up` (docs/lab.md).
# Every host shares this machine's filesystem: `python` is this machine's Python.
# Fill in each host's `nodes` (node ids: cloud, edge-N, agent-N) before deploying.
"""


def host_python() -> str:
    """A Python 3.11 that exists inside the hosts: this interpreter's base (a venv's
    `python` is a link into the venv, which deploy must not share between hosts)."""
    return str(Path(getattr(sys, "_base_executable", sys.executable) or sys.executable))


def lab_inventory(state: LabState) -> InventoryConfig:
    """The inventory of the lab's hosts (no nodes yet)."""
    return InventoryConfig(hosts=[
        HostConfig(
            name=h.name, address=h.address, ssh_port=SSH_PORT, user="root",
            key=state.client_key, nodes=[], board=BoardClass.GENERIC,
            python=host_python(), prefix=h.prefix, manager=ServiceManager.PROCESS,
        )
        for h in state.hosts
    ])  # fmt: skip


def write_inventory(state: LabState) -> Path:
    path = Path(state.inventory)
    body = yaml.safe_dump(lab_inventory(state).to_dict(), sort_keys=False)
    path.write_text(_HEADER.format(dir=state.dir) + body)
    return path
