"""`TestbedConfig`: the whole `testbed.yaml`, its per-node specs resolved and the folders
it names (the model zoo of a scale)."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.config.allocation import AllocationConfig
from testbed.config.bench import (
    AgentsConfig,
    AgentSpec,
    BrokerConfig,
    CloudConfig,
    EdgesConfig,
    EdgeSpec,
    EmulationConfig,
    LinksConfig,
    NodeAddress,
    RegistryConfig,
    TelemetryConfig,
    TopologyConfig,
    ZooConfig,
    ZooScale,
)
from testbed.config.coedge import CoedgeConfig
from testbed.config.coedge_learners import CoedgeLearnersConfig
from testbed.config.deploy import DeployConfig
from testbed.config.inventory import InventoryConfig
from testbed.config.limits import NAME_MAX_LEN, SEED_END
from testbed.config.quality import QualityConfig
from testbed.config.runs import (
    BenchSystem,
    RewardConfig,
    RunConfig,
    SlotMode,
    TasksConfig,
    TrainConfig,
    TwinConfig,
)
from testbed.config.security import SecurityConfig
from testbed.schema import SchemaError, dump_dataclass, load_dataclass, meta


@dataclass(frozen=True)
class TestbedConfig:
    __test__ = False  # not a pytest class

    experiment: str = field(
        default="default", metadata=meta("Experiment name (run folders).", max_len=NAME_MAX_LEN)
    )
    seed: int = field(
        default=0, metadata=meta("Master seed: tasks, positions, noise.", ge=0, lt=SEED_END)
    )
    broker: BrokerConfig = field(default_factory=BrokerConfig, metadata=meta("MQTT broker."))
    zoo: ZooConfig = field(default_factory=ZooConfig, metadata=meta("Model zoo."))
    topology: TopologyConfig = field(default_factory=TopologyConfig, metadata=meta("Site."))
    links: LinksConfig = field(default_factory=LinksConfig, metadata=meta("Radio links."))
    emulation: EmulationConfig = field(default_factory=EmulationConfig, metadata=meta("Emulation."))
    cloud: CloudConfig = field(default_factory=CloudConfig, metadata=meta("Cloud node."))
    edges: EdgesConfig = field(default_factory=EdgesConfig, metadata=meta("Edge servers."))
    agents: AgentsConfig = field(default_factory=AgentsConfig, metadata=meta("End devices."))
    tasks: TasksConfig = field(default_factory=TasksConfig, metadata=meta("Task generation."))
    reward: RewardConfig = field(default_factory=RewardConfig, metadata=meta("Reward (18)."))
    registry: RegistryConfig = field(default_factory=RegistryConfig, metadata=meta("Registry."))
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig, metadata=meta("Telemetry."))
    run: RunConfig = field(default_factory=RunConfig, metadata=meta("Runs."))
    twin: TwinConfig = field(default_factory=TwinConfig, metadata=meta("The digital twin."))
    train: TrainConfig = field(default_factory=TrainConfig, metadata=meta("Training (MADDPG)."))
    inventory: InventoryConfig = field(
        default_factory=InventoryConfig, metadata=meta("Machines of the bench (docs/deploy.md).")
    )
    security: SecurityConfig = field(
        default_factory=SecurityConfig, metadata=meta("gRPC transport security (docs/security.md).")
    )
    deploy: DeployConfig = field(
        default_factory=DeployConfig, metadata=meta("`testbed deploy` (docs/deploy.md).")
    )
    coedge: CoedgeConfig = field(
        default_factory=CoedgeConfig, metadata=meta("Multi-server scheduling (docs/coedge.md).")
    )
    coedge_learners: CoedgeLearnersConfig = field(
        default_factory=CoedgeLearnersConfig,
        metadata=meta("The §B schedulers' learners (docs/diffusion-learners.md)."),
    )
    allocation: AllocationConfig = field(
        default_factory=AllocationConfig,
        metadata=meta("§C: model assignment and steps/share allocation (docs/allocation.md)."),
    )
    quality: QualityConfig = field(
        default_factory=QualityConfig,
        metadata=meta("§C: measuring generated samples, the live run (docs/quality.md)."),
    )

    def check(self) -> list[tuple[str, str]]:
        try:
            nodes: list[NodeAddress] = [*self.edge_specs(), *self.agent_specs()]
        except SchemaError as exc:
            return exc.problems
        keys = [f"edges.nodes[{i}]" for i in range(self.edges.count)]
        keys += [f"agents.nodes[{i}]" for i in range(self.agents.count)]
        return (
            _clashes(nodes, keys, self.broker)
            + self._degenerate()
            + self._inventory_nodes()
            + self._system()
            + _quality_problems(self)
        )

    def node_ids(self) -> list[str]:
        """Every node of the bench: the cloud, the edges, the agents."""
        return ["cloud", *(s.id for s in self.edge_specs()), *(s.id for s in self.agent_specs())]

    def _inventory_nodes(self) -> list[tuple[str, str]]:
        """On a bench of hosts, every node runs on one of them, and nothing else does."""
        if not self.inventory.remote:
            return []
        known = set(self.node_ids())
        listed = {n for h in self.inventory.hosts for n in h.nodes}
        problems = [
            (f"inventory.hosts[{i}].nodes", f"{n} is not a node of this bench "
             f"(it has {', '.join(sorted(known))})")
            for i, h in enumerate(self.inventory.hosts) for n in h.nodes if n not in known
        ]  # fmt: skip
        missing = sorted(known - listed)
        if missing:
            problems.append(("inventory.hosts", f"no host runs {', '.join(missing)}"))
        return problems

    def _system(self) -> list[tuple[str, str]]:
        """The live §B bench (docs/live-loop.md, "Clocked slots and the §B scheduler"):
        clocked slots are §B's (MADDPG-MATO keeps its barrier); one scheduler per base
        station, agent i at edge i; edge j is the twin's server j (its f_j, its rates)."""
        problems = []
        coedge = self.run.system is BenchSystem.COEDGE
        if self.run.slot_mode is SlotMode.CLOCKED and not coedge:
            why = "clocked slots are the §B system's"
            problems.append(("run.system", f"expected coedge with run.slot_mode clocked ({why})"))
        if coedge and self.agents.count != self.edges.count:
            problems.append((
                "agents.count",
                f"expected {self.edges.count} (edges.count: one scheduler per base station), "
                f"got {self.agents.count}",
            ))  # fmt: skip
        if coedge and self.coedge.num_stations != self.edges.count:
            problems.append((
                "coedge.edge_ghz",
                f"expected {self.edges.count} entries (edges.count: edge j is server j), "
                f"got {self.coedge.num_stations}",
            ))  # fmt: skip
        return problems

    def _degenerate(self) -> list[tuple[str, str]]:
        """Benches that would run "successfully" without doing what was asked. Those
        that need the model catalog to tell are warnings: coordinator/bench_sanity.py."""
        if self.edges.count == 0 and self.agents.count == 0:
            return [("edges.count", "expected at least one edge or agent (agents.count is 0)")]
        if self.edges.count == 0 and self.agents.count > 0 and self.run.policy == "offload":
            why = "offload sends every task to an edge, and edges.count is 0"
            return [("run.policy", f"{why}: set edges.count ≥ 1 or another policy")]
        return []

    def edge_specs(self) -> list[EdgeSpec]:
        """Every edge, its per-node overrides applied and its position resolved."""
        specs = _resolve(EdgeSpec, self.edges, "edges", "edge")
        placed = _ring_positions(len(specs), self.topology.area_m)
        return [
            s if s.position_m is not None else dataclasses.replace(s, position_m=placed[i])
            for i, s in enumerate(specs)
        ]

    def agent_specs(self) -> list[AgentSpec]:
        """Every agent: positions uniform on the site and f_i uniform in cpu_ghz_range,
        both from the master seed unless set per node."""
        specs = _resolve(AgentSpec, self.agents, "agents", "agent")
        rng = random.Random(f"{self.seed}/agents")
        out = []
        w, h = self.topology.area_m
        lo, hi = self.agents.cpu_ghz_range
        for spec in specs:
            pos = (round(rng.uniform(0, w), 3), round(rng.uniform(0, h), 3))
            ghz = round(rng.uniform(lo, hi), 4)
            out.append(
                dataclasses.replace(
                    spec,
                    position_m=spec.position_m if spec.position_m is not None else pos,
                    cpu_ghz=spec.cpu_ghz if spec.cpu_ghz is not None else ghz,
                )
            )
        return out

    def to_dict(self, *, keep_secrets: bool = False) -> dict[str, Any]:
        """The plain form, every secret `<redacted>`; `keep_secrets`: the `Secret`
        objects stay, for a dict that is loaded again in memory, never written."""
        return dump_dataclass(self, keep_secrets=keep_secrets)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def zoo_path(self, scale: ZooScale | None = None) -> Path:
        """The model zoo's folder: `<zoo.dir>/<scale>` (default: `zoo.scale`), as given
        (relative paths stay relative to the working folder)."""
        return Path(self.zoo.dir) / (scale or self.zoo.scale).value


def _quality_problems(cfg: TestbedConfig) -> list[tuple[str, str]]:
    """§C (docs/quality-live.md): quality.categories is the one list of category names;
    allocation.categories gives each its weight and measured score, in the same order.
    quality.live names a zoo model for every allocation model, and an edge of the bench."""
    problems = []
    names = [c.name for c in cfg.quality.categories]
    got = [c.name for c in cfg.allocation.categories]
    if got != names:
        problems.append(
            (
                "allocation.categories",
                f"expected the categories of "
                f"quality.categories in order ({', '.join(names)}), got {', '.join(got)}",
            )
        )
    live = cfg.quality.live
    if set(live.model_ids) != set(cfg.allocation.models):
        problems.append(
            (
                "quality.live.model_ids",
                "expected one model id for each of "
                f"allocation.models ({', '.join(cfg.allocation.models)})",
            )
        )
    edges = [s.id for s in cfg.edge_specs()]
    if live.edge and live.edge not in edges:
        problems.append(("quality.live.edge", f"expected an edge of the bench: {', '.join(edges)}"))
    return problems  # fmt: skip


def _resolve(spec_cls: type, group: Any, path: str, prefix: str) -> list[Any]:
    shared = {
        f.name: getattr(group, f.name)
        for f in dataclasses.fields(group)
        if f.name not in ("count", "nodes")
    }
    specs = []
    ids: set[str] = set()
    for i in range(group.count):
        override = dict(group.nodes[i]) if i < len(group.nodes) else {}
        if override.get("id") == "":  # documented: empty means <class>-<index>
            del override["id"]
        merged = {**dump_dataclass(shared), "id": f"{prefix}-{i}", **override}
        spec: Any = load_dataclass(spec_cls, merged, f"{path}.nodes[{i}]")
        if spec.id in ids:
            raise SchemaError([(f"{path}.nodes[{i}].id", f"duplicate node id {spec.id!r}")])
        ids.add(spec.id)
        specs.append(spec)
    return specs


CLOUD_ID = "cloud"
"""The cloud node's id (coordinator/launcher.py starts it so)."""


def _clashes(
    nodes: list[NodeAddress], keys: list[str], broker: BrokerConfig
) -> list[tuple[str, str]]:
    """Every node needs its own id (its topics, log and ready files are named by it)
    and its own fixed port: a second node named like another, or `cloud`, or on a
    host:port already given, is refused."""
    problems = []
    ids = {CLOUD_ID}
    ports = {(broker.host, broker.port): "broker.port"} if broker.port and not broker.url else {}
    for node, key in zip(nodes, keys, strict=True):
        if node.id in ids:
            problems.append((f"{key}.id", f"expected a node id of its own, got {node.id!r} again"))
        ids.add(node.id)
        where = (node.host, node.port)
        if node.port and where in ports:
            problems.append((f"{key}.port", f"expected a port of its own, {ports[where]} has it"))
        ports.setdefault(where, f"{key}.port")
    return problems


def _ring_positions(n: int, area: tuple[float, float]) -> list[tuple[float, float]]:
    """Edges evenly on a ring around the site's centre (deterministic)."""
    w, h = area
    radius = 0.3 * min(w, h)
    return [
        (
            round(w / 2 + radius * math.cos(2 * math.pi * i / max(n, 1)), 3),
            round(h / 2 + radius * math.sin(2 * math.pi * i / max(n, 1)), 3),
        )
        for i in range(n)
    ]
