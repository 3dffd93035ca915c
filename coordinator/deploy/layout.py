"""Where deploy puts things on a host, and which daemons it runs there with which ports
(docs/deploy.md, "What goes where" and "Ports").

Everything deploy makes lives under the host's prefix, except systemd units, which
live where systemd reads them; `<prefix>/deploy.json` lists both, and `--uninstall`
removes exactly what it lists.
"""

from __future__ import annotations

import enum
import posixpath
from dataclasses import dataclass

from testbed.config import BoardClass, HostConfig, NodeAddress, TestbedConfig
from testbed.config.testbed_config import CLOUD_ID
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.types import NodeKind

EDGE_PORT_OFFSET = 1
AGENT_PORT_OFFSET = 500
"""Default ports: cloud base_port, edge i base_port + 1 + i, agent i base_port + 500 + i."""

DAEMON_OF_KIND = {NodeKind.CLOUD: "testbed-cloud", NodeKind.EDGE: "testbed-edge",
                  NodeKind.AGENT: "testbed-agent"}  # fmt: skip
"""The console script (pyproject.toml) that runs each kind of node."""

MANIFEST = "deploy.json"
"""Under the prefix: what deploy made there (coordinator/deploy/plan.py)."""
PROVIDERS_SAID = "venv/testbed-providers.txt"
"""Under the prefix: the venv's ONNX Runtime execution providers after its install."""
PROVISIONED_PYTHON = "python/bin/python3"
"""Under the prefix: the interpreter unpacked from `deploy.python_dist`."""

SERVICE_PREFIX = "testbed-"
"""Services are named `testbed-<node id>` (systemd units, process-manager files)."""


class Extra(enum.StrEnum):
    """The pyproject.toml extras deploy chooses between."""

    CPU = "cpu"
    GPU = "gpu"


@dataclass(frozen=True)
class HostLayout:
    """The absolute paths of one host's install, under its prefix."""

    prefix: str

    @classmethod
    def of(cls, host: HostConfig, home: str) -> HostLayout:
        """The host's prefix with `~` resolved against its home (from its facts)."""
        prefix = host.prefix
        if prefix == "~" or prefix.startswith("~/"):
            prefix = home.rstrip("/") + prefix[1:]
        if not prefix.startswith("/"):
            prefix = posixpath.join(home or "/", prefix)
        return cls(posixpath.normpath(prefix))

    def path(self, *parts: str) -> str:
        return posixpath.join(self.prefix, *parts)

    @property
    def venv(self) -> str:
        return self.path("venv")

    @property
    def venv_python(self) -> str:
        return self.path("venv", "bin", "python")

    @property
    def install_marker(self) -> str:
        """What is installed in the venv (python, extras, wheel): deploy's own record."""
        return self.path("venv", "testbed-install.json")

    @property
    def provisioned_root(self) -> str:
        return self.path("python")

    @property
    def provisioned_python(self) -> str:
        return self.path(PROVISIONED_PYTHON)

    @property
    def provisioned_marker(self) -> str:
        return self.path("python", "testbed-archive.sha256")

    @property
    def wheels(self) -> str:
        return self.path("wheels")

    @property
    def wheelhouse(self) -> str:
        return self.path("wheelhouse")

    @property
    def config(self) -> str:
        return self.path("testbed.yaml")

    @property
    def certs(self) -> str:
        return self.path("certs")

    @property
    def zoo(self) -> str:
        return self.path("zoo")

    @property
    def cache(self) -> str:
        return self.path("cache")

    @property
    def logs(self) -> str:
        return self.path("logs")

    @property
    def run(self) -> str:
        return self.path("run")

    @property
    def bin(self) -> str:
        return self.path("bin")

    @property
    def supervisor(self) -> str:
        return self.path("bin", "supervise.py")

    @property
    def manifest(self) -> str:
        return self.path(MANIFEST)

    def log(self, node_id: str) -> str:
        return self.path("logs", f"{node_id}.log")

    def made(self) -> list[str]:
        """Every path under the prefix deploy makes (what `--uninstall` removes)."""
        return [self.venv, self.provisioned_root, self.wheels, self.wheelhouse, self.config,
                self.certs, self.zoo, self.cache, self.logs, self.run, self.bin,
                self.manifest]  # fmt: skip


@dataclass(frozen=True)
class NodeSlot:
    """One daemon of the bench: its id, kind, index in its config section and port."""

    node_id: str
    kind: NodeKind
    index: int
    """Index in `edges.nodes` / `agents.nodes` (0 for the cloud)."""
    port: int
    port_key: str
    """The config key the port came from, or how it was assigned."""

    @property
    def service(self) -> str:
        return f"{SERVICE_PREFIX}{self.node_id}"

    @property
    def daemon(self) -> str:
        return DAEMON_OF_KIND[self.kind]


def node_slots(cfg: TestbedConfig) -> dict[str, NodeSlot]:
    """Every node of the bench with its fixed port: the configured one
    (`edges.nodes[i].port`, `agents.nodes[i].port`), else the deterministic default."""
    base = cfg.deploy.base_port
    slots = {CLOUD_ID: NodeSlot(CLOUD_ID, NodeKind.CLOUD, 0, base, "deploy.base_port")}
    groups: list[tuple[NodeKind, list[NodeAddress], int, str]] = [
        (NodeKind.EDGE, [*cfg.edge_specs()], EDGE_PORT_OFFSET, "edges"),
        (NodeKind.AGENT, [*cfg.agent_specs()], AGENT_PORT_OFFSET, "agents"),
    ]
    for kind, specs, offset, section in groups:
        for i, spec in enumerate(specs):
            port, key = ((spec.port, f"{section}.nodes[{i}].port") if spec.port
                         else (base + offset + i, f"deploy.base_port + {offset + i}"))  # fmt: skip
            slots[spec.id] = NodeSlot(spec.id, kind, i, port, key)
    return slots


def host_slots(cfg: TestbedConfig, host: HostConfig) -> list[NodeSlot]:
    """The daemons `host` runs; CONFIG_INVALID naming the keys when two of them would
    take one port."""
    slots = node_slots(cfg)
    mine = [slots[n] for n in host.nodes if n in slots]
    taken: dict[int, NodeSlot] = {}
    for slot in mine:
        other = taken.setdefault(slot.port, slot)
        if other is not slot:
            raise TestbedExit(ExitCode.CONFIG_INVALID, f"{slot.port_key}: {slot.node_id} and "
                              f"{other.node_id} ({other.port_key}) would both listen on port "
                              f"{slot.port} of {host.name}")  # fmt: skip
    return mine


def extras_for(slots: list[NodeSlot], board: BoardClass, nvidia_gpu: bool) -> list[Extra]:
    """The extras a host's roles need: an agent `cpu`; an edge `gpu` on an NVIDIA GPU
    server (PyPI's onnxruntime-gpu: x86-64 CUDA; a Jetson's GPU build is JetPack's,
    for its system Python only), else `cpu`; the cloud nothing. `gpu` replaces `cpu`
    (both would install the same `onnxruntime` module)."""
    kinds = {s.kind for s in slots}
    jetson = board in (BoardClass.JETSON_XAVIER, BoardClass.JETSON_ORIN)
    if NodeKind.EDGE in kinds and nvidia_gpu and not jetson:
        return [Extra.GPU]
    if kinds & {NodeKind.EDGE, NodeKind.AGENT}:
        return [Extra.CPU]
    return []
