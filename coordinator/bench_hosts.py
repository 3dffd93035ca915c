"""The hosts of a bench in its run folder (docs/bench-of-hosts.md).

- `hosts_manifest`: per host of the inventory, what it runs on — the facts its nodes
  announced when they registered (testbed/host_facts.py: JetPack/L4T release, power
  mode, clocks, GPU, Python, package versions) — and its clock offset to the
  coordinator (from the clock each registration carries: coordinator/node_directory.py).
  No SSH round is needed: the nodes said it themselves.
- `LogFetch`: each node's service log (`<prefix>/logs/<node>.log`, where deploy's
  services write it: coordinator/deploy/layout.py) fetched over SSH with deploy's
  helpers (coordinator/deploy/ssh.py) into `<run>/logs/<node>.log` at the end of the
  run — only what was written since the run began (`mark` notes each log's size at
  the start). A host that cannot be reached loses its logs, never the run: the reason
  is returned (and logged).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from pathlib import Path
from typing import Any

from coordinator.node_directory import NodeDirectory
from testbed.config import HostConfig, TestbedConfig

log = logging.getLogger(__name__)

HOST_FACT_KEYS = (
    "l4t_release", "board_model", "power_mode", "clocks", "gpu", "python", "os", "machine",
    "cpu_count", "packages",
)  # fmt: skip
"""The facts of testbed/host_facts.py that describe a host, not a node."""

FETCH_TIMEOUT_S = 60.0
"""Longest the log fetch of all hosts may take at the end of a run."""


def hosts_manifest(cfg: TestbedConfig, nodes: NodeDirectory) -> dict[str, dict[str, Any]]:
    """Per host: address, board class, its nodes, the facts its first registered node
    announced, and the median clock offset of its nodes to the coordinator (ms)."""
    out: dict[str, dict[str, Any]] = {}
    for host in cfg.inventory.hosts:
        facts: dict[str, str] = {}
        offsets = []
        for node_id in host.nodes:
            record = nodes.table.get(node_id)
            if record is None:
                continue
            if not facts:
                facts = {k: record.info.facts[k] for k in HOST_FACT_KEYS if k in record.info.facts}
                facts["hostname"] = record.info.facts.get("host", "")
            offset = nodes.clock_offset_ms(node_id)
            if offset is not None:
                offsets.append(offset)
        out[host.name] = {
            "address": host.address,
            "board": host.board.value,
            "nodes": list(host.nodes),
            "registered": [n for n in host.nodes if nodes.table.get(n) is not None],
            **facts,
            "clock_offset_ms": statistics.median(offsets) if offsets else None,
        }
    return out


class LogFetch:
    """The nodes' service logs of one run, from their hosts into `<run>/logs/`."""

    def __init__(self, cfg: TestbedConfig, logs_dir: Path) -> None:
        self.cfg = cfg
        self.logs_dir = logs_dir
        self.start_bytes: dict[str, int] = {}  # node id -> its log's size when the run began

    def mark(self, timeout_s: float = 20.0) -> None:
        """Note how long each node's log is now (best effort: unknown ones are fetched
        whole at the end)."""
        found = self._on_every_host(self._sizes, timeout_s)
        for sizes in found.values():
            if isinstance(sizes, dict):
                self.start_bytes.update(sizes)

    def fetch(self, timeout_s: float = FETCH_TIMEOUT_S) -> dict[str, str]:
        """Each node's log since `mark` into `logs/<node>.log`; returns host name →
        why its logs could not be fetched (empty: all were)."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        found = self._on_every_host(self._fetch_host, timeout_s)
        problems = {name: str(result) for name, result in found.items() if result is not None
                    and not isinstance(result, dict)}  # fmt: skip
        for name, problem in problems.items():
            log.warning("logs of host %s not fetched: %s", name, problem)
        return problems

    # ------------------------------------------------------------------ per host

    def _on_every_host(self, job: Any, timeout_s: float) -> dict[str, Any]:
        """`job(link, layout, host)` on every host at once; host name → its result or
        the exception it ended with."""

        async def one(host: HostConfig) -> Any:
            from coordinator.deploy.layout import HostLayout
            from coordinator.deploy.ssh import connect

            async with connect(host, self.cfg.deploy) as link:
                home = (await link.run('printf %s "$HOME"', timeout_s=timeout_s)).stdout
                return await job(link, HostLayout.of(host, home), host)

        async def every() -> list[Any]:
            jobs = [asyncio.wait_for(one(h), timeout_s) for h in self.cfg.inventory.hosts]
            return await asyncio.gather(*jobs, return_exceptions=True)

        try:
            results = asyncio.run(every())
        except Exception as exc:  # asyncssh missing, an event loop problem: no logs
            return {h.name: exc for h in self.cfg.inventory.hosts}
        return {h.name: r for h, r in zip(self.cfg.inventory.hosts, results, strict=True)}

    async def _sizes(self, link: Any, layout: Any, host: HostConfig) -> dict[str, int]:
        from coordinator.deploy.ssh import q

        paths = " ".join(q(layout.log(n)) for n in host.nodes)
        done = await link.run(f"stat -c '%s %n' {paths} 2>/dev/null", check=False)
        by_path = {layout.log(n): n for n in host.nodes}
        sizes = {}
        for line in done.stdout.splitlines():
            size, _, path = line.partition(" ")
            if path in by_path and size.isdigit():
                sizes[by_path[path]] = int(size)
        return sizes

    async def _fetch_host(self, link: Any, layout: Any, host: HostConfig) -> dict[str, int]:
        """Every node log of `host` since its mark; node id → bytes fetched."""
        from coordinator.deploy.ssh import q

        fetched = {}
        for node_id in host.nodes:
            path = layout.log(node_id)
            start = self.start_bytes.get(node_id, 0)
            # a log shorter than its mark was truncated or rotated since: take it whole
            since = f'if [ "$s" -lt {start} ]; then cat "$f"; else tail -c +{start + 1} "$f"; fi'
            done = await link.run(f'f={q(path)}; s=$(stat -c %s "$f") || exit 3; {since}',
                                  check=False)  # fmt: skip
            if done.exit_status != 0:
                log.warning("%s: no log at %s:%s", node_id, host.name, path)
                continue
            target = self.logs_dir / f"{node_id}.log"
            target.write_text(done.stdout)
            fetched[node_id] = len(done.stdout)
        return fetched


def write_hosts_manifest(
    cfg: TestbedConfig, nodes: NodeDirectory, run_dir: Path, broker: str
) -> None:
    """A started bench of hosts: the manifest with its hosts and nodes, unless the run
    folder has one (a command that writes a fuller one includes them:
    coordinator/bench_run.py)."""
    from coordinator.run_folder import write_manifest

    if not (run_dir / "manifest.json").exists():
        write_manifest(run_dir, cfg, {"broker": broker, "nodes": nodes.describe(),
                                      "hosts": hosts_manifest(cfg, nodes)})  # fmt: skip
