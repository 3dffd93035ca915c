"""`testbed deploy`: every host of the inventory at once — facts, plan, diff, apply,
start, health — each host's lines prefixed with its name, a failing host reported with
its reason while the others go on (docs/deploy.md, "What a deploy does").
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.deploy.artifacts import (
    ProjectWheel,
    Target,
    given_wheel,
    project_wheel,
    wheelhouse,
)
from coordinator.deploy.facts import (
    HostFacts,
    check_clock,
    gather_facts,
    python_choice,
    read_providers,
    version_tuple,
)
from coordinator.deploy.health import node_address, wait_serving
from coordinator.deploy.layout import HostLayout, extras_for, host_slots
from coordinator.deploy.operations import diff_all
from coordinator.deploy.plan import Artifacts, HostPlan, build_operations
from coordinator.deploy.services import DaemonTargets, manager_for
from coordinator.deploy.ssh import HostFailure, HostLink, connect, q
from testbed.config import HostConfig, TestbedConfig
from testbed.exit_codes import TestbedExit


@dataclass
class HostResult:
    name: str
    ok: bool
    reason: str = ""
    changes: int = 0
    wall_s: float = 0.0
    nodes: dict[str, str] = field(default_factory=dict)
    """node id → health answer."""


class Printer:
    """Lines prefixed with the host's name; `quiet`: failures only."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet, self.verbose = quiet, verbose

    def line(self, host: str, text: str, *, detail: bool = False) -> None:
        if self.quiet or (detail and not self.verbose):
            return
        print(f"[{host}] {text}", flush=True)

    def failure(self, host: str, text: str) -> None:
        print(f"[{host}] FAILED: {text}", file=sys.stderr, flush=True)


class ArtifactStore:
    """The project wheel (built once per deploy) and one wheelhouse per kind of host,
    made once however many hosts need it (docs/deploy.md, "Artifacts")."""

    def __init__(self, cfg: TestbedConfig, wheel: ProjectWheel) -> None:
        self.cfg, self.wheel = cfg, wheel
        self.cache_dir = Path(cfg.deploy.cache_dir).expanduser()
        self._houses: dict[Target, asyncio.Task[Path]] = {}

    async def wheelhouse(self, target: Target) -> Path:
        if target not in self._houses:
            self._houses[target] = asyncio.ensure_future(asyncio.to_thread(
                wheelhouse, self.cache_dir, target, self.cfg.deploy.wheelhouse))  # fmt: skip
        try:
            return await asyncio.shield(self._houses[target])
        except TestbedExit as exc:
            raise HostFailure(exc.message) from None

    def zoo(self) -> Path | None:
        path = self.cfg.zoo_path()
        return path.resolve() if (path / "catalog.json").is_file() else None


async def _plan_host(link: HostLink, cfg: TestbedConfig, store: ArtifactStore,
                     out: Printer) -> tuple[HostPlan, HostFacts]:  # fmt: skip
    host = link.host
    facts = await gather_facts(link)
    layout = HostLayout.of(host, facts.home)
    out.line(host.name, f"facts: {facts.summary()}")
    check_clock(facts, cfg.deploy)
    choice = python_choice(host, facts, cfg.deploy, layout)
    out.line(host.name, f"python: {choice.path} {choice.version} ({choice.note})")
    slots = host_slots(cfg, host)
    extras = extras_for(slots, host.board, facts.nvidia_gpu)
    manager = manager_for(host.manager, facts.systemd, layout, cfg.deploy,
                          user=host.user, home=facts.home)  # fmt: skip
    py = ".".join(str(p) for p in version_tuple(choice.version)[:2])
    target = Target(facts.arch, py, facts.glibc, tuple(e.value for e in extras))
    art = Artifacts(store.wheel.path, store.wheel.version, store.wheel.source_key,
                    await store.wheelhouse(target), store.zoo())  # fmt: skip
    plan = HostPlan(host, layout, slots, manager, choice, extras)
    targets = DaemonTargets(cfg.broker.url or "", cfg.registry.advertise or cfg.registry.listen)
    build_operations(plan, cfg, art, targets, facts.deployed)
    return plan, facts


async def _wait_healthy(plan: HostPlan, cfg: TestbedConfig, out: Printer) -> dict[str, str]:
    async def one(slot_id: str, port: int) -> tuple[str, str]:
        address = node_address(plan.host.address, port)
        answer = await wait_serving(cfg, address, slot_id, cfg.deploy.health_timeout_s)
        out.line(plan.host.name, f"{slot_id} at {address}: {answer}")
        return slot_id, answer

    try:
        answers = await asyncio.gather(*(one(s.node_id, s.port) for s in plan.slots))
    except TestbedExit as exc:  # the coordinator's own certificate is missing
        raise HostFailure(exc.message) from None
    return dict(answers)


async def deploy_host(host: HostConfig, cfg: TestbedConfig, store: ArtifactStore,
                      out: Printer, *, dry_run: bool = False) -> HostResult:  # fmt: skip
    """Deploy one host; every failure becomes this host's result, never an exception."""
    started = time.monotonic()
    result = HostResult(host.name, ok=False)
    try:
        async with connect(host, cfg.deploy) as link:
            plan, facts = await _plan_host(link, cfg, store, out)
            changes = await diff_all(link, plan.operations)
            todo = [(op, c) for op, c in zip(plan.operations, changes, strict=True) if c]
            out.line(host.name, f"plan: {len(plan.operations)} operations, "
                     f"{len(todo)} change(s)" + (" (dry run)" if dry_run else ""))  # fmt: skip
            for _op, change in todo:
                out.line(host.name, f"  ~ {change}")
            result.changes = len(todo)
            if not dry_run:
                for op, change in todo:
                    began = time.monotonic()
                    await op.apply(link)
                    out.line(host.name, f"  done in {time.monotonic() - began:.2f} s: {change}",
                             detail=True)  # fmt: skip
                installed = any(op.key == "venv" for op, _change in todo)
                providers = await read_providers(link, plan.layout, facts, refresh=installed)
                out.line(host.name, f"onnxruntime providers: {providers}")
                began = time.monotonic()
                result.nodes = await _wait_healthy(plan, cfg, out)
                out.line(host.name, f"health answered in {time.monotonic() - began:.2f} s",
                         detail=True)  # fmt: skip
                await _explain_unhealthy(link, plan, result)
            result.ok = all(a == "serving" for a in result.nodes.values())
    except HostFailure as exc:
        result.reason = str(exc)
    except TestbedExit as exc:  # a config problem found for this host (ports)
        result.reason = exc.message
    result.wall_s = time.monotonic() - started
    return result


async def _explain_unhealthy(link: HostLink, plan: HostPlan, result: HostResult) -> None:
    """A daemon that never answered SERVING: the reason is the end of its log."""
    bad = [n for n, a in result.nodes.items() if a != "serving"]
    if not bad:
        return
    tails = []
    for node_id in bad:
        log = await link.run(f"tail -n 5 {q(plan.layout.log(node_id))}", check=False)
        tails.append(f"{node_id} answered {result.nodes[node_id]!r} after "
                     f"deploy.health_timeout_s; its log ends:\n{log.stdout.rstrip()}")  # fmt: skip
    result.reason = "\n".join(tails)


async def deploy_all(cfg: TestbedConfig, hosts: list[HostConfig], out: Printer, *,
                     dry_run: bool = False) -> list[HostResult]:  # fmt: skip
    """Every host at once: the project wheel first (once), then each host's deploy."""
    if cfg.deploy.wheel:
        wheel = given_wheel(Path(cfg.deploy.wheel).expanduser())
    else:
        wheel = await asyncio.to_thread(project_wheel, Path(cfg.deploy.cache_dir).expanduser())
    out.line("deploy", f"wheel: {wheel.path.name} (sources {wheel.source_key[:12]})")
    store = ArtifactStore(cfg, wheel)
    return list(await asyncio.gather(*(deploy_host(h, cfg, store, out, dry_run=dry_run)
                                       for h in hosts)))  # fmt: skip
