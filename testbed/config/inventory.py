"""The `inventory:` section of `testbed.yaml`: the machines of the bench and the nodes
each runs (docs/deploy.md).

An empty host list is the embedded default: one host, `localhost`, on which the
coordinator starts every node as a local process (`testbed up` as it always was). A
listed host is a machine of a real bench (or a namespaced host of `testbed lab`):
`testbed deploy` installs and starts its nodes over SSH, and `testbed up` starts no
node itself but waits until every node of the inventory has registered.

`testbed lab up` and an operator may also keep the inventory in a file of its own
(`--inventory FILE`, the same keys as this section at its top level), which replaces
this section.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from testbed.config.limits import COUNT_MAX, HOST_MAX_LEN, NAME_MAX_LEN
from testbed.ids import NODE_ID_PATTERN
from testbed.schema import meta

HOST_NAME_PATTERN = NODE_ID_PATTERN
"""Host names follow the node id pattern (they name folders, logs and services)."""

LOCALHOST = "localhost"


class BoardClass(enum.StrEnum):
    """What kind of machine a host is: decides the extras deploy installs and the
    facts it expects (docs/deploy.md)."""

    GENERIC = "generic"  # any Linux host: CPU ONNX Runtime
    GPU_SERVER = "gpu-server"  # an NVIDIA GPU: onnxruntime-gpu, NVML energy
    JETSON_XAVIER = "jetson-xavier"  # JetPack 5 (L4T R35), Python 3.8 system interpreter
    JETSON_ORIN = "jetson-orin"  # JetPack 6 (L4T R36), Python 3.10 system interpreter


class ServiceManager(enum.StrEnum):
    """How deploy keeps a node's daemon running on a host."""

    AUTO = "auto"  # systemd where it runs (PID 1), else `process`
    SYSTEMD = "systemd"  # one unit per daemon: restart on failure, stop timeout
    PROCESS = "process"  # a pid file, a restart loop and a log file (containers, CI, labs)


@dataclass
class HostConfig:
    """One machine of the bench and the nodes it runs."""

    name: str = field(
        default=LOCALHOST,
        metadata=meta("Host name (folders, logs, services).", pattern=HOST_NAME_PATTERN),
    )
    address: str = field(
        default="127.0.0.1",
        metadata=meta("Where SSH and the host's services are reached.", max_len=HOST_MAX_LEN),
    )
    ssh_port: int = field(default=22, metadata=meta("SSH port.", ge=1, le=65535))
    user: str = field(default="root", metadata=meta("SSH user.", max_len=NAME_MAX_LEN))
    key: str = field(
        default="",
        metadata=meta("SSH private key file (a path; '': the SSH agent/defaults).", path=True),
    )
    nodes: list[str] = field(
        default_factory=list,
        metadata=meta(
            "Node ids this host runs (cloud, edge-N, agent-N); their roles come from the id's "
            "section.",
            max_len=COUNT_MAX,
        ),
    )
    board: BoardClass = field(default=BoardClass.GENERIC, metadata=meta("Machine class."))
    python: str = field(
        default="python3",
        metadata=meta("The host's Python (3.11+, or deploy provisions one).", path=True),
    )
    prefix: str = field(
        default="~/.testbed",
        metadata=meta("Install prefix on the host: venv, config, certs, logs.", path=True),
    )
    manager: ServiceManager = field(
        default=ServiceManager.AUTO, metadata=meta("How the daemons are kept running.")
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for i, node_id in enumerate(self.nodes):
            if self.nodes.index(node_id) != i:
                problems.append((f"nodes[{i}]", f"{node_id} is listed twice"))
        return problems


@dataclass
class InventoryConfig:
    """The machines of the bench (empty: everything on this machine, as local processes)."""

    hosts: list[HostConfig] = field(
        default_factory=list,
        metadata=meta("Hosts of a real bench; empty: the embedded default.", max_len=COUNT_MAX),
    )

    @property
    def remote(self) -> bool:
        """A bench of deployed daemons: the coordinator starts no node itself."""
        return bool(self.hosts)

    def host_of(self, node_id: str) -> HostConfig | None:
        return next((h for h in self.hosts if node_id in h.nodes), None)

    def check(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        names = [h.name for h in self.hosts]
        for i, host in enumerate(self.hosts):
            if names.index(host.name) != i:
                problems.append((f"hosts[{i}].name", f"host {host.name} is listed twice"))
        owner: dict[str, str] = {}
        for i, host in enumerate(self.hosts):
            for node_id in host.nodes:
                if node_id in owner and owner[node_id] != host.name:
                    problems.append((f"hosts[{i}].nodes", f"{node_id} also runs on "
                                     f"{owner[node_id]}: a node runs on one host"))  # fmt: skip
                owner.setdefault(node_id, host.name)
        return problems

    def to_dict(self) -> dict[str, Any]:
        from testbed.schema import dump_dataclass

        return dump_dataclass(self)
