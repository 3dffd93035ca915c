"""`testbed deploy --status | --stop | --logs NODE | --uninstall`: look at, stop, read or
remove what a deploy left on the hosts, from each host's `<prefix>/deploy.json`
(docs/deploy.md, "After a deploy"). Every host at once; a host that cannot be reached
is reported with its reason, the others go on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from coordinator.deploy.health import check_once, node_address
from coordinator.deploy.layout import HostLayout, NodeSlot, node_slots
from coordinator.deploy.services import Manager, ProcessManager, SystemdManager
from coordinator.deploy.ssh import HostFailure, HostLink, connect, q
from testbed.config import HostConfig, TestbedConfig
from testbed.exit_codes import TestbedExit
from testbed.types import NodeKind

T = TypeVar("T")


@dataclass
class Deployed:
    """What deploy left on one host, as its manifest says."""

    layout: HostLayout
    manager: Manager
    nodes: dict[str, NodeKind]
    made: list[str] = field(default_factory=list)


async def read_deployed(link: HostLink, cfg: TestbedConfig) -> Deployed | None:
    """The host's manifest, or None where nothing was deployed."""
    host = link.host
    home = (await link.run('printf %s "$HOME"')).stdout
    layout = HostLayout.of(host, home)
    out = await link.run(f"cat {q(layout.manifest)}", check=False)
    try:
        doc = json.loads(out.stdout)
    except ValueError:
        return None
    manager: Manager = (
        SystemdManager(layout, cfg.deploy, user=host.user, home=home)
        if doc.get("manager") == "systemd" else ProcessManager(layout, cfg.deploy)
    )  # fmt: skip
    nodes = {str(k): NodeKind(v) for k, v in doc.get("nodes", {}).items()}
    inside = [p for p in doc.get("made", []) if str(p).startswith(layout.prefix + "/")]
    return Deployed(layout, manager, nodes, inside)


def _slot(cfg: TestbedConfig, node_id: str, kind: NodeKind) -> NodeSlot:
    return node_slots(cfg).get(node_id) or NodeSlot(node_id, kind, 0, 0, "")


Job = Callable[[HostLink], Awaitable[T]]


async def on_hosts(cfg: TestbedConfig, hosts: list[HostConfig],
                   job: Job[T]) -> dict[str, T | HostFailure]:  # fmt: skip
    """`job(link)` on every host at once; host name → its result or its failure."""

    async def one(host: HostConfig) -> T | HostFailure:
        try:
            async with connect(host, cfg.deploy) as link:
                return await job(link)
        except HostFailure as exc:
            return exc
        except TestbedExit as exc:
            return HostFailure(exc.message)

    results = await asyncio.gather(*(one(h) for h in hosts))
    return {h.name: r for h, r in zip(hosts, results, strict=True)}


async def host_status(link: HostLink, cfg: TestbedConfig) -> dict[str, Any]:
    """One host: the installed version, and per node its service state and health."""
    deployed = await read_deployed(link, cfg)
    if deployed is None:
        return {"installed": None, "manager": None, "nodes": {}}
    marker = await link.run(f"cat {q(deployed.layout.install_marker)}", check=False)
    try:
        installed = json.loads(marker.stdout)
    except ValueError:
        installed = None
    nodes = {}
    for node_id, kind in sorted(deployed.nodes.items()):
        slot = _slot(cfg, node_id, kind)
        out = await link.run(deployed.manager.status_command(slot), check=False)
        state = deployed.manager.parse_status(out.stdout)
        address = node_address(link.host.address, slot.port) if slot.port else None
        health = (await asyncio.to_thread(check_once, cfg, address, node_id)
                  if state.running and address else None)  # fmt: skip
        nodes[node_id] = {"kind": kind.value, "service": state.detail, "running": state.running,
                          "address": address, "health": health}  # fmt: skip
    version = None
    if installed:
        version = f"{installed.get('version')} (sources {str(installed.get('source_key'))[:12]})"
    return {"installed": version, "manager": deployed.manager.kind.value,
            "python": installed.get("python_version") if installed else None,
            "nodes": nodes}  # fmt: skip


async def stop_host(link: HostLink, cfg: TestbedConfig) -> list[str]:
    """Stop every daemon deploy started on the host; the nodes stopped."""
    deployed = await read_deployed(link, cfg)
    if deployed is None:
        return []
    await link.run(_at_once([deployed.manager.stop_command(_slot(cfg, n, k))
                             for n, k in sorted(deployed.nodes.items())]), check=False)  # fmt: skip
    return sorted(deployed.nodes)


def _at_once(commands: list[str]) -> str:
    """One shell command running `commands` in parallel (daemons stop at once: each
    may take its stop timeout)."""
    return " ".join(f"( {c} ) >/dev/null 2>&1 &" for c in commands) + " wait"


async def node_log(link: HostLink, cfg: TestbedConfig, node_id: str, lines: int) -> str:
    home = (await link.run('printf %s "$HOME"')).stdout
    path = HostLayout.of(link.host, home).log(node_id)
    out = await link.run(f"tail -n {int(lines)} {q(path)}", check=False)
    if out.exit_status != 0:
        raise HostFailure(f"no log {path} ({out.stderr.strip() or 'tail failed'})")
    return out.stdout


async def uninstall_host(link: HostLink, cfg: TestbedConfig) -> list[str]:
    """Stop every daemon, remove their services and everything deploy made under the
    prefix (the manifest's list, nothing else); the prefix itself goes if it is then
    empty. The paths removed."""
    deployed = await read_deployed(link, cfg)
    if deployed is None:
        return []
    await link.run(_at_once([deployed.manager.remove_command(_slot(cfg, n, k))
                             for n, k in sorted(deployed.nodes.items())]), check=False)  # fmt: skip
    made = deployed.made or deployed.layout.made()
    removed = [p for p in made if p.startswith(deployed.layout.prefix + "/")]
    await link.run(f"rm -rf {' '.join(q(p) for p in removed)} && "
                   f"rmdir {q(deployed.layout.prefix)} 2>/dev/null; true")  # fmt: skip
    return removed
