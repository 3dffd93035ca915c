"""The `testbed.yaml` schema, its validation and the resolved per-node specs.

`load_config(path)` returns a `TestbedConfig` or raises `ConfigError` whose message
names every bad key path and what was expected; the CLI turns that into exit code 2
with no traceback. Precedence: the file, then `TESTBED__SECTION__KEY=value`
environment variables, then `--set section.key=value` flags (values are YAML).

Units are in the key names: `_s`, `_ms`, `_mb` (10^6 bytes), `_mbit`, `_mbps`
(10^6 bit/s), `_ghz`, `_w`, `_m`, `_db`, `_dbm`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from testbed.schema import SchemaError, dump_dataclass, load_dataclass, meta

DEFAULT_CONFIG_NAME = "testbed.yaml"
ENV_PREFIX = "TESTBED__"


class ConfigError(Exception):
    """An invalid configuration; `problems` are `(key_path, message)` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"invalid configuration{f' in {source}' if source else ''}:"
        super().__init__("\n".join([head, *(f"  {p}: {m}" for p, m in problems)]))


class BrokerKind(enum.StrEnum):
    AUTO = "auto"
    AMQTT = "amqtt"
    MOSQUITTO = "mosquitto"


class ZooScale(enum.StrEnum):
    TINY = "tiny"
    DEMO = "demo"
    PAPER = "paper"


class RuntimeKind(enum.StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    TENSORRT = "tensorrt"


class MeterKind(enum.StrEnum):
    AUTO = "auto"
    NVML = "nvml"
    JETSON = "jetson"
    RAPL = "rapl"
    ESTIMATED = "estimated"


# ---------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str | None = field(default=None, metadata=meta("CA certificate (PEM) to trust."))
    cert_file: str | None = field(default=None, metadata=meta("Client certificate (PEM)."))
    key_file: str | None = field(default=None, metadata=meta("Client private key (PEM)."))


@dataclass(frozen=True)
class BrokerConfig:
    url: str | None = field(
        default=None,
        metadata=meta("mqtt://HOST:PORT or mqtts://HOST:PORT; null: embedded broker."),
    )
    embedded: BrokerKind = field(
        default=BrokerKind.AUTO,
        metadata=meta("Embedded broker: auto (mosquitto if installed, else amqtt)."),
    )
    host: str = field(default="127.0.0.1", metadata=meta("Bind address of the embedded broker."))
    port: int = field(
        default=0, metadata=meta("Embedded broker port; 0: a free one.", ge=0, le=65535)
    )
    username: str | None = field(default=None, metadata=meta("MQTT username."))
    password: str | None = field(default=None, metadata=meta("MQTT password."))
    tls: TlsConfig = field(default_factory=TlsConfig, metadata=meta("TLS files for mqtts://."))
    keepalive_s: int = field(default=30, metadata=meta("MQTT keepalive.", ge=5, le=3600))
    topic_prefix: str = field(default="testbed", metadata=meta("Root of every topic."))

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.url is not None:
            parsed = urlparse(self.url)
            if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
                want = "expected mqtt://HOST:PORT or mqtts://HOST:PORT"
                problems.append(("url", f"{want}, got {self.url!r}"))
            else:
                try:
                    parsed.port  # noqa: B018 - raises on a bad port
                except ValueError:
                    problems.append(("url", f"expected a port number in {self.url!r}"))
        if not self.topic_prefix or "#" in self.topic_prefix or "+" in self.topic_prefix:
            problems.append(("topic_prefix", "expected a non-empty topic without '#' or '+'"))
        return problems


@dataclass(frozen=True)
class ZooConfig:
    scale: ZooScale = field(
        default=ZooScale.DEMO,
        metadata=meta("Model sizes: tiny (≤5 MB each, tests), demo, paper (90–250 MB)."),
    )
    dir: str = field(default=".zoo", metadata=meta("Folder the zoo is built in (per scale)."))
    seed: int = field(default=0, metadata=meta("Seed of weight init and training data.", ge=0))
    train_steps: int = field(
        default=200, metadata=meta("Training steps for the trained models (0: untrained).", ge=0)
    )


@dataclass(frozen=True)
class TopologyConfig:
    area_m: tuple[float, float] = field(
        default=(1000.0, 1000.0), metadata=meta("Width and height of the site.", gt=0)
    )


@dataclass(frozen=True)
class LinksConfig:
    bandwidth_mhz: float = field(default=20.0, metadata=meta("Bandwidth of an ED→ES link.", gt=0))
    noise_dbm_per_hz: float = field(default=-174.0, metadata=meta("Noise power spectral density."))
    path_loss_exponent: float = field(default=3.0, metadata=meta("Path loss exponent.", ge=1, le=6))
    gain_at_1m_db: float = field(default=-30.0, metadata=meta("Channel gain at 1 m (dB)."))
    min_distance_m: float = field(default=1.0, metadata=meta("Distances are at least this.", gt=0))


@dataclass(frozen=True)
class EmulationConfig:
    links: bool = field(
        default=True,
        metadata=meta("Pace transfers to the configured link rates (off for real radios)."),
    )
    compute: bool = field(
        default=True,
        metadata=meta("Stretch compute time by host_ghz / node cpu_ghz (slower nodes only)."),
    )
    host_ghz: float = field(
        default=3.0, metadata=meta("The clock this host's real compute counts as.", gt=0)
    )


@dataclass(frozen=True)
class PowerModelConfig:
    idle_w: float = field(default=5.0, metadata=meta("Idle power of the node.", ge=0))
    active_w_per_core: float = field(
        default=10.0, metadata=meta("Extra power per fully busy CPU core (estimated meter).", ge=0)
    )


@dataclass(frozen=True)
class EnergyConfig:
    meter: MeterKind = field(
        default=MeterKind.AUTO,
        metadata=meta("Energy meter: auto (first that reads: nvml, jetson, rapl), or one."),
    )
    poll_interval_ms: float = field(
        default=20.0, metadata=meta("Power polling period for rails and NVML power.", gt=0)
    )
    power: PowerModelConfig = field(
        default_factory=PowerModelConfig,
        metadata=meta("Power model of the `estimated` meter."),
    )
    jetson_sysfs_root: str = field(
        default="/sys/bus/i2c/drivers/ina3221", metadata=meta("Where Jetson INA3221 rails live.")
    )
    rapl_sysfs_root: str = field(
        default="/sys/class/powercap", metadata=meta("Where RAPL powercap zones live.")
    )


@dataclass(frozen=True)
class NodeBase:
    """Settings every node of a class shares unless a per-node entry overrides them."""

    kappa: float = field(
        default=1e-28, metadata=meta("Effective switched capacitance κ of the chip.", ge=0)
    )
    runtime: RuntimeKind = field(
        default=RuntimeKind.AUTO,
        metadata=meta("ONNX Runtime provider: auto (TensorRT, CUDA, CPU), cpu, cuda, tensorrt."),
    )
    intra_op_threads: int = field(
        default=1, metadata=meta("ONNX Runtime intra-op threads per session.", ge=1, le=256)
    )
    energy: EnergyConfig = field(default_factory=EnergyConfig, metadata=meta("Energy meter."))


@dataclass(frozen=True)
class EdgeSettings(NodeBase):
    cpu_ghz: float = field(default=7.0, metadata=meta("CPU clock f_j of the edge.", gt=0))
    cache_capacity_mb: float = field(
        default=60.0, metadata=meta("Model cache capacity (10^6 bytes).", gt=0)
    )
    cache_dir: str | None = field(
        default=None, metadata=meta("Cache folder; null: <run folder>/cache/<edge id>.")
    )
    parallel_slots: int = field(default=1, metadata=meta("Tasks executed at once.", ge=1, le=64))
    queue_capacity: int = field(
        default=256, metadata=meta("Tasks waiting at most; more are rejected.", ge=1)
    )
    cloud_link_mbps: float = field(default=400.0, metadata=meta("Cloud→edge rate r_cj.", gt=0))
    uplink_capacity_mbps: float = field(
        default=200.0, metadata=meta("Capacity B_j for uploads into this edge.", gt=0)
    )
    preload: list[str] = field(default_factory=list, metadata=meta("Models fetched at start."))
    max_batch: int = field(default=32, metadata=meta("Samples per model invocation.", ge=1))
    fetch_timeout_s: float = field(
        default=120.0, metadata=meta("Give up a model fetch after this long.", gt=0)
    )


@dataclass(frozen=True)
class NodeAddress:
    id: str = field(default="", metadata=meta("Node id; empty: <class>-<index>."))
    host: str = field(default="127.0.0.1", metadata=meta("Address the node listens on."))
    port: int = field(default=0, metadata=meta("gRPC port; 0: a free one.", ge=0, le=65535))
    position_m: tuple[float, float] | None = field(
        default=None, metadata=meta("Position on the site; null: placed automatically.")
    )


@dataclass(frozen=True)
class EdgeSpec(EdgeSettings, NodeAddress):
    """One edge server, resolved from `edges`."""


@dataclass(frozen=True)
class EdgesConfig(EdgeSettings):
    count: int = field(default=3, metadata=meta("Number of edge servers M.", ge=0, le=256))
    nodes: list[dict[str, Any]] = field(
        default_factory=list,
        metadata=meta("Per-edge overrides by index (beyond count: unused); keys above, id, ..."),
    )


@dataclass(frozen=True)
class AgentSettings(NodeBase):
    cpu_ghz_range: tuple[float, float] = field(
        default=(1.0, 2.0), metadata=meta("f of each agent is drawn uniformly from this.", gt=0)
    )
    transmit_power_w: float = field(default=0.5, metadata=meta("Transmit power p_i.", gt=0))
    queue_capacity: int = field(default=16, metadata=meta("Tasks an agent queues at most.", ge=1))
    max_batch: int = field(default=32, metadata=meta("Samples per local invocation.", ge=1))


@dataclass(frozen=True)
class AgentSpec(AgentSettings, NodeAddress):
    """One agent (end device), resolved from `agents`."""

    cpu_ghz: float | None = field(
        default=None, metadata=meta("CPU clock f_i; null: drawn from cpu_ghz_range.", gt=0)
    )


@dataclass(frozen=True)
class AgentsConfig(AgentSettings):
    count: int = field(default=10, metadata=meta("Number of end devices N.", ge=0, le=1024))
    nodes: list[dict[str, Any]] = field(
        default_factory=list,
        metadata=meta("Per-agent overrides by index (beyond count: unused); keys above, id, ..."),
    )


@dataclass(frozen=True)
class CloudConfig:
    host: str = field(default="127.0.0.1", metadata=meta("Host the cloud node runs on."))
    position_m: tuple[float, float] = field(
        default=(500.0, 500.0), metadata=meta("Position of the cloud centre.")
    )
    cpu_ghz: float = field(default=40.0, metadata=meta("CPU clock of the cloud centre.", gt=0))
    transmit_power_w: float = field(
        default=20.0, metadata=meta("Power p_c while sending a model, in (8).", ge=0)
    )
    chunk_kib: int = field(
        default=1024, metadata=meta("Bytes per chunk on the MQTT model feed.", ge=4, le=1024)
    )
    max_parallel_transfers: int = field(
        default=8, metadata=meta("Model transfers served at once.", ge=1, le=64)
    )
    energy: EnergyConfig = field(default_factory=EnergyConfig, metadata=meta("Energy meter."))


@dataclass(frozen=True)
class TaskTypeConfig:
    name: str = field(metadata=meta("Task type name."))
    model: str = field(metadata=meta("Model id in the zoo catalog this type needs."))
    size_mbit: tuple[float, float] = field(
        metadata=meta("Task size D is drawn uniformly from this range.", gt=0)
    )
    density_cycles_per_bit: float = field(metadata=meta("Computational density C.", gt=0))
    deadline_s: float = field(metadata=meta("Completed only if latency ≤ this.", gt=0))
    weight: float = field(default=1.0, metadata=meta("Reward weight w_k.", ge=0))
    steps: int | None = field(
        default=None, metadata=meta("Denoising steps (diffusion); null: the model's default.", ge=1)
    )

    def check(self) -> list[tuple[str, str]]:
        lo, hi = self.size_mbit
        return [("size_mbit", f"expected low ≤ high, got [{lo}, {hi}]")] if lo > hi else []


def _default_task_types() -> list[TaskTypeConfig]:
    return [
        TaskTypeConfig("health_prediction", "diffusion-s", (1.0, 3.0), 60.0, 2.0, 1.0),
        TaskTypeConfig("process_optimisation", "cgan-s", (1.0, 3.0), 40.0, 2.0, 1.0),
        TaskTypeConfig("safety_monitoring", "ae-s", (1.0, 3.0), 30.0, 1.5, 1.2),
        TaskTypeConfig("health_prediction_hq", "diffusion-l", (1.0, 3.0), 80.0, 3.0, 1.0),
        TaskTypeConfig("process_optimisation_hq", "cgan-l", (1.0, 3.0), 50.0, 3.0, 1.0),
        TaskTypeConfig("safety_monitoring_hq", "ae-l", (1.0, 3.0), 40.0, 2.0, 1.2),
    ]


@dataclass(frozen=True)
class TasksConfig:
    arrival_prob: float = field(
        default=1.0, metadata=meta("Chance a task arrives at an agent in a slot.", ge=0, le=1)
    )
    flops_per_cycle: float = field(
        default=1.0,
        metadata=meta("Model FLOPs one cycle of task work stands for (docs/workload.md).", gt=0),
    )
    num_types: int | None = field(
        default=None, metadata=meta("Use only the first N task types; null: all.", ge=1)
    )
    types: list[TaskTypeConfig] = field(
        default_factory=_default_task_types,
        metadata=meta("IIoT AIGC task types.", min_len=1),
    )

    def check(self) -> list[tuple[str, str]]:
        problems = []
        names = [t.name for t in self.types]
        for i, name in enumerate(names):
            if names.index(name) != i:
                problems.append((f"types[{i}].name", f"duplicate task type {name!r}"))
        if self.num_types is not None and self.num_types > len(self.types):
            problems.append(
                ("num_types", f"expected ≤ {len(self.types)} (types listed), got {self.num_types}")
            )
        return problems

    @property
    def active_types(self) -> list[TaskTypeConfig]:
        return self.types[: self.num_types] if self.num_types else list(self.types)


@dataclass(frozen=True)
class RewardConfig:
    omega_latency: float = field(default=0.5, metadata=meta("ω1, latency weight.", ge=0, le=1))
    omega_energy: float = field(default=0.5, metadata=meta("ω2, energy weight.", ge=0, le=1))
    latency_scale_s: float = field(default=1.0, metadata=meta("Latency is divided by this.", gt=0))
    energy_scale_j: float = field(default=1.0, metadata=meta("Energy is divided by this.", gt=0))
    penalty: float = field(default=2.0, metadata=meta("φ, penalty when a constraint fails.", ge=0))

    def check(self) -> list[tuple[str, str]]:
        if not math.isclose(self.omega_latency + self.omega_energy, 1.0, abs_tol=1e-9):
            total = self.omega_latency + self.omega_energy
            return [("omega_energy", f"expected omega_latency + omega_energy = 1, got {total:g}")]
        return []


@dataclass(frozen=True)
class RegistryConfig:
    heartbeat_interval_s: float = field(default=1.0, metadata=meta("Heartbeat period.", gt=0))
    missing_after_beats: int = field(
        default=3, metadata=meta("Missed heartbeats before a node is marked missing.", ge=1)
    )
    remove_after_s: float = field(
        default=30.0, metadata=meta("Silence after which a node is removed.", gt=0)
    )


@dataclass(frozen=True)
class TelemetryConfig:
    interval_s: float = field(default=1.0, metadata=meta("Telemetry publishing period.", gt=0))


@dataclass(frozen=True)
class RunConfig:
    out_dir: str = field(default="runs", metadata=meta("Where run folders are written."))
    slots: int = field(default=30, metadata=meta("Slots per run.", ge=1))
    policy: str = field(
        default="greedy", metadata=meta("random, greedy, local, offload or an ONNX actor's path.")
    )
    step_timeout_s: float = field(default=120.0, metadata=meta("Longest wait for a slot.", gt=0))
    task_timeout_s: float = field(
        default=60.0, metadata=meta("Longest wait for an edge's answer to a task.", gt=0)
    )
    start_timeout_s: float = field(
        default=60.0, metadata=meta("Longest wait for a node process to come up.", gt=0)
    )


@dataclass(frozen=True)
class TwinConfig:
    calibration: str | None = field(
        default=None,
        metadata=meta("calibration.json from `testbed calibrate`; null: the paper's model (f, κ)."),
    )
    episode_slots: int = field(default=50, metadata=meta("Slots per twin episode.", ge=1))


@dataclass(frozen=True)
class TrainConfig:
    lr_actor: float = field(default=0.001, metadata=meta("Actor learning rate.", gt=0))
    lr_critic: float = field(default=0.001, metadata=meta("Critic learning rate.", gt=0))
    gamma: float = field(default=0.95, metadata=meta("Discount factor γ.", ge=0, le=1))
    tau: float = field(default=0.01, metadata=meta("Soft target update rate τ.", gt=0, le=1))
    buffer_size: int = field(default=10000, metadata=meta("Replay capacity (joint steps).", ge=1))
    batch_size: int = field(default=1024, metadata=meta("Minibatch size.", ge=1))
    hidden: int = field(default=256, metadata=meta("Width of the two hidden layers.", ge=1))
    num_envs: int = field(default=16, metadata=meta("Twin environments stepped together.", ge=1))
    steps: int = field(
        default=3000, metadata=meta("Environment steps (each: num_envs slots).", ge=1)
    )
    warmup_steps: int = field(
        default=100, metadata=meta("Random-action steps before learning starts.", ge=0)
    )
    updates_per_step: int = field(default=1, metadata=meta("Gradient updates per step.", ge=1))
    noise_start: float = field(default=0.3, metadata=meta("Exploration noise at the start.", ge=0))
    noise_end: float = field(default=0.02, metadata=meta("Exploration noise at the end.", ge=0))
    gumbel_temperature: float = field(
        default=1.0, metadata=meta("Temperature of the Gumbel-softmax relaxations.", gt=0)
    )
    logit_reg: float = field(
        default=0.001,
        metadata=meta("Weight of mean(logits²) in the actor loss (keeps heads unsaturated).", ge=0),
    )
    checkpoint_every: int = field(default=500, metadata=meta("Steps between checkpoints.", ge=1))
    eval_every: int = field(default=250, metadata=meta("Steps between evaluations.", ge=1))
    eval_episodes: int = field(default=4, metadata=meta("Episodes per evaluation.", ge=1))
    threads: int = field(default=2, metadata=meta("torch threads.", ge=1))


@dataclass(frozen=True)
class TestbedConfig:
    __test__ = False  # not a pytest class

    experiment: str = field(default="default", metadata=meta("Experiment name (run folders)."))
    seed: int = field(default=0, metadata=meta("Master seed: tasks, positions, noise.", ge=0))
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

    def check(self) -> list[tuple[str, str]]:
        try:
            self.edge_specs()
            self.agent_specs()
        except SchemaError as exc:
            return exc.problems
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

    def to_dict(self) -> dict[str, Any]:
        return dump_dataclass(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _resolve(spec_cls: type, group: Any, path: str, prefix: str) -> list[Any]:
    shared = {
        f.name: getattr(group, f.name)
        for f in dataclasses.fields(group)
        if f.name not in ("count", "nodes")
    }
    specs = []
    ids: set[str] = set()
    for i in range(group.count):
        override = group.nodes[i] if i < len(group.nodes) else {}
        merged = {**dump_dataclass(shared), "id": f"{prefix}-{i}", **override}
        spec: Any = load_dataclass(spec_cls, merged, f"{path}.nodes[{i}]")
        if spec.id in ids:
            raise SchemaError([(f"{path}.nodes[{i}].id", f"duplicate node id {spec.id!r}")])
        ids.add(spec.id)
        specs.append(spec)
    return specs


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


# ---------------------------------------------------------------------------- loading


def _set_path(data: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError([(dotted, f"expected a dotted key path (from {origin})")])
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError([(dotted, f"{key!r} is not a mapping (from {origin})")])
        node = child
    node[keys[-1]] = value


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(
    data: dict[str, Any],
    env: Mapping[str, str] | None = None,
    sets: Sequence[str] = (),
) -> dict[str, Any]:
    """Apply `TESTBED__A__B=value` environment variables, then `a.b=value` strings."""
    env = os.environ if env is None else env
    for name, value in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_path(data, dotted, _parse_value(value), f"environment variable {name}")
    for item in sets:
        if "=" not in item:
            raise ConfigError([(item, "expected KEY.PATH=VALUE")])
        key, value = item.split("=", 1)
        _set_path(data, key.strip(), _parse_value(value), "--set")
    return data


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("<file>", f"no such file: {source}")], source) from None
    except OSError as exc:
        raise ConfigError([("<file>", f"cannot read: {exc.strerror}")], source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("<yaml>", f"not valid YAML at {where}: {problem}")], source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "expected a mapping at the top of the file")], source)
    return data


def config_from_dict(data: Mapping[str, Any], source: str = "") -> TestbedConfig:
    try:
        return load_dataclass(TestbedConfig, dict(data))
    except SchemaError as exc:
        raise ConfigError(exc.problems, source) from None


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    sets: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> TestbedConfig:
    """Load and validate a testbed file (default: ./testbed.yaml, else built-in defaults)."""
    if path is None and Path(DEFAULT_CONFIG_NAME).exists():
        path = DEFAULT_CONFIG_NAME
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, env, sets)
    return config_from_dict(data, str(path) if path else "<defaults>")
