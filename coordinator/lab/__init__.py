"""`testbed lab`: a bench of hosts on one Linux machine, to rehearse a deployment
without the hardware (docs/lab.md).

Each host is a network namespace with its own address, link, OpenSSH server and
install prefix, joined to the coordinator by a bridge; the lab writes an inventory
(testbed/config/inventory.py) of its hosts. `plan.py` names what a lab is made of,
`up.py` makes it, `down.py` removes it, `status.py` reports it; `network.py`,
`shaping.py` and `sshd.py` hold the kernel's and OpenSSH's side, `state.py` the
`lab.json` that ties them together.
"""

from __future__ import annotations

from coordinator.lab.down import DownReport, lab_down, teardown
from coordinator.lab.inventory_file import host_python, lab_inventory
from coordinator.lab.plan import (
    DEFAULT_LAB_DIR,
    DEFAULT_LAB_NAME,
    DEFAULT_SUBNET,
    HostPlan,
    LabPlan,
    make_plan,
)
from coordinator.lab.preflight import check_can_host_lab
from coordinator.lab.state import LabState, QdiscKind, load_state
from coordinator.lab.status import format_status, lab_status, state_status
from coordinator.lab.up import lab_up

__all__ = [
    "DEFAULT_LAB_DIR",
    "DEFAULT_LAB_NAME",
    "DEFAULT_SUBNET",
    "DownReport",
    "HostPlan",
    "LabPlan",
    "LabState",
    "QdiscKind",
    "check_can_host_lab",
    "format_status",
    "host_python",
    "lab_down",
    "lab_inventory",
    "lab_status",
    "lab_up",
    "load_state",
    "make_plan",
    "state_status",
    "teardown",
]
