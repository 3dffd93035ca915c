"""Where each node of a bench is: the one answer every part of the coordinator asks
(the live bench, `testbed up`'s runs, the envs' bench operations, calibration).

- The embedded bench (no inventory): the launcher's processes (coordinator/launcher.py),
  each at the address of its ready file, alive while its process runs — as always.
- A bench of hosts (`inventory.remote`): the registry's view (coordinator/registry.py,
  `NodeTable`): each node at the address it registered, alive while the registry holds
  it alive, on the host of the inventory that runs it. A node that listens on every
  interface (`0.0.0.0`) is reached at its host's inventory address.

Each node's clock offset to the coordinator comes from its last registration, which
carries the node's clock (coordinator/registry.py, `Registry.clock_offsets_s`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from coordinator.launcher import Launcher
from coordinator.registry import NodeRecord, NodeState, Registry
from testbed.config import TestbedConfig
from testbed.config.inventory import LOCALHOST
from testbed.exit_codes import ExitCode, TestbedExit

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})
"""Listen addresses that mean "every interface": no address to reach a node at."""


@dataclass(frozen=True)
class NodeLocation:
    """One node as the coordinator reaches it."""

    node_id: str
    address: str
    """gRPC HOST:PORT ('' when the node serves none or is not known yet)."""
    host: str
    """The inventory host that runs it (`localhost` on the embedded bench)."""
    host_address: str
    """Where that host is reached (SSH and its services)."""
    alive: bool


class NodeDirectory:
    """Where is node X, on either kind of bench."""

    def __init__(self, cfg: TestbedConfig, registry: Registry, launcher: Launcher) -> None:
        self.cfg = cfg
        self.registry = registry
        self.table = registry.table
        self.launcher = launcher
        self.remote = cfg.inventory.remote

    # ------------------------------------------------------------------ where

    def locate(self, node_id: str) -> NodeLocation:
        host = self.cfg.inventory.host_of(node_id)
        host_name = host.name if host is not None else LOCALHOST
        host_address = host.address if host is not None else "127.0.0.1"
        return NodeLocation(
            node_id, self.address(node_id), host_name, host_address, self.alive(node_id)
        )

    def address(self, node_id: str) -> str:
        """The node's gRPC address; '' when it is not known (not started, not registered)."""
        if not self.remote:
            node = self.launcher.nodes.get(node_id)
            return node.address if node is not None else ""
        record = self.table.get(node_id)
        return self.reachable(record) if record is not None else ""

    def reachable(self, record: NodeRecord) -> str:
        """A registered address the coordinator can dial: a wildcard host (the node
        listens on every interface) is replaced by its inventory host's address."""
        address = record.info.address
        host, sep, port = address.rpartition(":")
        if not sep or host not in WILDCARD_HOSTS:
            return address
        inventory_host = self.cfg.inventory.host_of(record.node_id)
        if inventory_host is None:
            return address
        return f"{_bracketed(inventory_host.address)}:{port}"

    def alive(self, node_id: str) -> bool:
        """Embedded: its process runs. Bench of hosts: the registry holds it alive."""
        if not self.remote:
            node = self.launcher.nodes.get(node_id)
            return node is not None and node.alive()
        record = self.table.get(node_id)
        return record is not None and record.state is NodeState.ALIVE

    # ------------------------------------------------------------------ registrations

    def wait_registered(self, node_ids: list[str], timeout_s: float) -> None:
        """Until every one of `node_ids` has registered; NODE_START_FAILED after
        `timeout_s` naming those missing and, on a bench of hosts, their hosts."""
        deadline = time.monotonic() + timeout_s
        while any(self.table.get(n) is None for n in node_ids):
            if time.monotonic() > deadline:
                missing = self.missing(node_ids)
                if not self.remote:
                    missing = missing.removesuffix(" (no host)")
                    raise TestbedExit(ExitCode.NODE_START_FAILED, f"never registered: {missing}")
                raise TestbedExit(
                    ExitCode.NODE_START_FAILED,
                    f"not registered after {timeout_s:g} s (run.start_timeout_s): {missing}; "
                    "are they deployed and running (`testbed deploy --status`), and do they "
                    f"reach the registry at {self.launcher.registry_address}?",
                )
            time.sleep(0.05)

    def clock_offset_ms(self, node_id: str) -> float | None:
        """The node's clock minus the coordinator's at its last registration (off by
        the one-way delay, well under a millisecond on a LAN); None without one."""
        offset_s = self.registry.clock_offsets_s.get(node_id)
        return None if offset_s is None else round(offset_s * 1e3, 3)

    # ------------------------------------------------------------------ reports

    def missing(self, node_ids: list[str]) -> str:
        """Those of `node_ids` not registered, by host: `edge-1, agent-0 (host lab-a at
        198.18.0.2); agent-1 (host lab-b at 198.18.0.3)`; '' when none is missing."""
        by_host: dict[str, list[str]] = {}
        for node_id in node_ids:
            if self.table.get(node_id) is not None:
                continue
            host = self.cfg.inventory.host_of(node_id)
            where = f"host {host.name} at {host.address}" if host else "no host"
            by_host.setdefault(where, []).append(node_id)
        return "; ".join(f"{', '.join(ids)} ({where})" for where, ids in by_host.items())

    def describe(self) -> dict[str, dict[str, Any]]:
        """The manifest's `nodes`: embedded, each process's ready file and log; on a
        bench of hosts, each node's kind, address, host, registry state and facts."""
        if not self.remote:
            return {
                n.node_id: {**n.info, "log": str(n.log_path)} for n in self.launcher.nodes.values()
            }
        out: dict[str, dict[str, Any]] = {}
        for node_id in self.cfg.node_ids():
            record = self.table.get(node_id)
            where = self.locate(node_id)
            entry: dict[str, Any] = {"host": where.host, "address": where.address}
            if record is not None:
                entry.update(kind=record.kind.value, state=record.state.value,
                             facts=dict(record.info.facts))  # fmt: skip
            out[node_id] = entry
        return out


def _bracketed(host: str) -> str:
    """An IPv6 literal in brackets, as HOST:PORT needs it."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
