"""A host's plan: from its facts, the bench config and the artifacts, the ordered
operations that leave the host holding its part of the bench (docs/deploy.md, "What a
deploy does"), and the manifest (`<prefix>/deploy.json`) saying what deploy made there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.deploy.facts import PythonChoice
from coordinator.deploy.host_config import host_config_text
from coordinator.deploy.layout import Extra, HostLayout, NodeSlot
from coordinator.deploy.operations import (
    DirsOp,
    EnvironmentOp,
    FileOp,
    Operation,
    PythonDistOp,
    RetireOp,
    ServiceOp,
    TreeOp,
)
from coordinator.deploy.services import (
    DaemonTargets,
    Manager,
    ProcessManager,
    SystemdManager,
    daemon_argv,
)
from coordinator.deploy.ssh import HostFailure
from testbed.config import HostConfig, TestbedConfig
from testbed.types import NodeKind

SUPERVISOR_SOURCE = Path(__file__).with_name("supervise.py")
MANIFEST_FORMAT = 1
PRIVATE_SUFFIXES = (".key", ".password")
"""Certificate-folder files only their owner may read (0600)."""


@dataclass(frozen=True)
class Artifacts:
    """What the coordinator copies to a host."""

    wheel: Path
    wheel_version: str
    source_key: str
    wheelhouse: Path
    zoo: Path | None
    """The zoo folder of `zoo.scale` (cloud and agents need it); None if not built."""


@dataclass
class HostPlan:
    host: HostConfig
    layout: HostLayout
    slots: list[NodeSlot]
    manager: Manager
    python: PythonChoice
    extras: list[Extra]
    operations: list[Operation] = field(default_factory=list)


def manifest(layout: HostLayout, slots: list[NodeSlot], manager: Manager) -> dict[str, Any]:
    """What deploy made on the host, for `--status`, `--stop` and `--uninstall`."""
    units = [manager.unit_path(s) for s in slots] if isinstance(manager, SystemdManager) else []
    return {
        "format": MANIFEST_FORMAT,
        "prefix": layout.prefix,
        "manager": manager.kind.value,
        "nodes": {s.node_id: s.kind.value for s in slots},
        "units": units,
        "made": layout.made(),
    }


def certificate_files(cfg: TestbedConfig, slots: list[NodeSlot]) -> dict[str, Path]:
    """The bench CA's certificate and each of the host's nodes' certificate, key and
    MQTT password, those that exist (relative name under `<prefix>/certs` → local
    path). Never the CA's key."""
    certs = Path(cfg.security.certs_dir).expanduser()
    names = ["ca.pem"]
    for slot in slots:
        names += [f"{slot.node_id}.pem", f"{slot.node_id}.key", f"mqtt/{slot.node_id}.password"]
    return {name: certs / name for name in names if (certs / name).is_file()}


def zoo_files(zoo: Path) -> dict[str, Path]:
    return {p.relative_to(zoo).as_posix(): p for p in sorted(zoo.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}  # fmt: skip


def _folders(layout: HostLayout, manager: Manager) -> dict[str, int]:
    public = (layout.prefix, layout.bin, layout.logs, layout.run, layout.wheels,
              layout.wheelhouse, layout.cache, layout.zoo)  # fmt: skip
    dirs = dict.fromkeys(public, 0o755)
    dirs[layout.certs] = 0o700
    if isinstance(manager, SystemdManager) and not manager.system:
        dirs[manager.unit_dir] = 0o755  # ~/.config/systemd/user may not exist yet
    return dirs


def _software(plan: HostPlan, cfg: TestbedConfig, art: Artifacts) -> list[Operation]:
    """Interpreter, wheel, wheelhouse and the venv that holds them installed."""
    layout = plan.layout
    ops: list[Operation] = [DirsOp(_folders(layout, plan.manager))]
    if plan.python.provision:
        if not cfg.deploy.python_dist:
            raise HostFailure("deploy.python_dist is needed and empty")
        ops.append(PythonDistOp(layout, Path(cfg.deploy.python_dist).expanduser()))
    ops.append(TreeOp("wheel", "the project wheel", layout.wheels, {art.wheel.name: art.wheel}))
    wheels = {p.name: p for p in sorted(art.wheelhouse.glob("*.whl"))}
    pip_wheel = next((n for n in wheels if n.startswith("pip-")), None)
    if pip_wheel is None:
        raise HostFailure(f"the wheelhouse {art.wheelhouse} holds no pip wheel")
    ops.append(TreeOp("wheelhouse", "the wheelhouse", layout.wheelhouse, wheels))
    ops.append(EnvironmentOp(
        layout, python=plan.python.path, python_version=plan.python.version,
        extras=[e.value for e in plan.extras], wheel_remote=f"{layout.wheels}/{art.wheel.name}",
        wheel_version=art.wheel_version, source_key=f"{art.source_key}/{art.wheelhouse.name}",
        pip_wheel=pip_wheel, after=("python", "wheel", "wheelhouse"),
    ))  # fmt: skip
    return ops


def _node_files(plan: HostPlan, cfg: TestbedConfig, art: Artifacts) -> list[Operation]:
    """The host's config, certificates, zoo and supervisor."""
    layout = plan.layout
    ops: list[Operation] = [FileOp("config", "testbed.yaml", layout.config,
                                   data=host_config_text(cfg, layout).encode())]  # fmt: skip
    certs = certificate_files(cfg, plan.slots)
    if certs:
        ops.append(TreeOp("certs", "certificates", layout.certs, certs, private=PRIVATE_SUFFIXES))
    if any(s.kind in (NodeKind.CLOUD, NodeKind.AGENT) for s in plan.slots):
        if art.zoo is None:
            raise HostFailure(f"no model zoo at {cfg.zoo_path()} (the cloud and agents need "
                              f"it): build it with `testbed zoo build --scale "
                              f"{cfg.zoo.scale.value}`")  # fmt: skip
        zoo_dir = f"{layout.zoo}/{cfg.zoo.scale.value}"
        ops.append(TreeOp("zoo", f"the {cfg.zoo.scale.value} zoo", zoo_dir, zoo_files(art.zoo)))
    if isinstance(plan.manager, ProcessManager):
        ops.append(FileOp("supervisor", "supervise.py", layout.supervisor,
                          local=SUPERVISOR_SOURCE, mode=0o755))  # fmt: skip
    return ops


def _services(plan: HostPlan, targets: DaemonTargets,
              deployed_before: dict[str, str]) -> list[Operation]:  # fmt: skip
    ops: list[Operation] = []
    for slot in plan.slots:
        argv = daemon_argv(slot, plan.layout, targets)
        for path, text in plan.manager.unit_files(slot, argv).items():
            ops.append(FileOp(f"unit:{slot.node_id}", f"{slot.service}.service", path,
                              data=text.encode()))  # fmt: skip
    for node_id, kind in sorted(deployed_before.items()):
        if node_id not in {s.node_id for s in plan.slots}:
            ops.append(RetireOp(NodeSlot(node_id, NodeKind(kind), 0, 0, ""), plan.manager))
    for slot in plan.slots:
        argv = daemon_argv(slot, plan.layout, targets)
        after = ["python", "venv", "config", "certs", "supervisor", f"unit:{slot.node_id}"]
        if slot.kind is not NodeKind.EDGE:
            after.append("zoo")
        ops.append(ServiceOp(slot, plan.manager, argv, tuple(after)))
    return ops


def build_operations(plan: HostPlan, cfg: TestbedConfig, art: Artifacts,
                     targets: DaemonTargets, deployed_before: dict[str, str]) -> None:  # fmt: skip
    """Fill `plan.operations`: software, node files, services, then the manifest."""
    plan.operations = [
        *_software(plan, cfg, art),
        *_node_files(plan, cfg, art),
        *_services(plan, targets, deployed_before),
        FileOp("manifest", "deploy.json", plan.layout.manifest,
               data=json.dumps(manifest(plan.layout, plan.slots, plan.manager),
                               indent=1).encode()),
    ]  # fmt: skip
