"""Domain dataclasses for what crosses the wire between nodes.

Nodes work with these; `testbed.serde` is the only module that converts them to and
from protobuf messages. Edge state also travels as JSON over MQTT (`to_json`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from testbed.payloads import PayloadSchema, stamped, unstamped
from testbed.types import EnergyPart, FailureReason, Outcome


@dataclass(frozen=True, slots=True)
class ModelRef:
    model_id: str
    version: str = ""  # empty: the catalog's current version

    def __str__(self) -> str:
        return f"{self.model_id}@{self.version}" if self.version else self.model_id


@dataclass(frozen=True, slots=True)
class EdgeTaskRequest:
    """The header of one edge's share of a task."""

    task_id: str
    model: ModelRef
    units: int
    download: bool
    agent_id: str = ""
    task_type: str = ""
    share: float = 1.0
    steps: int = 0  # 0: the model's default
    data_bytes: int = 0
    slot: int = 0
    upload_rate_mbps: float = 0.0
    max_output_bytes: int = 0  # outputs to send back, at most this many bytes (§C)


@dataclass(slots=True)
class EdgeTiming:
    """Where an edge's share of a task spent its time, in milliseconds."""

    receive_ms: float = 0.0
    queue_ms: float = 0.0
    fetch_ms: float = 0.0
    verify_ms: float = 0.0
    load_ms: float = 0.0
    warmup_ms: float = 0.0
    compute_ms: float = 0.0
    total_ms: float = 0.0

    @property
    def switch_ms(self) -> float:
        """T_sw as measured: fetch + verify + load + warm-up."""
        return self.fetch_ms + self.verify_ms + self.load_ms + self.warmup_ms


@dataclass(frozen=True, slots=True)
class EdgeTaskResult:
    task_id: str
    edge_id: str
    outcome: Outcome
    reason: FailureReason = FailureReason.NONE
    detail: str = ""
    timing: EdgeTiming = field(default_factory=EdgeTiming)
    energy: tuple[EnergyPart, ...] = ()
    cache_hit: bool = False
    units_done: int = 0
    bytes_fetched: int = 0
    output_sha256: bytes = b""
    outputs: bytes = b""  # the outputs themselves, when asked and small enough (§C)

    @property
    def energy_j(self) -> float:
        return sum(p.energy_j for p in self.energy)


@dataclass(frozen=True, slots=True)
class CachedModelInfo:
    model: ModelRef
    size_bytes: int
    in_use: bool = False
    last_used_seq: int = 0
    compute_share: float = 0.0
    steps: int = 0


@dataclass(slots=True)
class CacheCounters:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    fetches: int = 0
    bytes_fetched: int = 0
    checksum_failures: int = 0
    rejected_missing: int = 0


@dataclass(frozen=True, slots=True)
class EdgeStateSnapshot:
    """An edge's state as published (retained) on MQTT and answered by GetState."""

    edge_id: str
    seq: int
    queue_length: int
    running: int
    cached: tuple[CachedModelInfo, ...]  # least recently used first
    cache_used_bytes: int
    cache_capacity_bytes: int
    counters: CacheCounters
    cpu_ghz: float = 0.0
    position_m: tuple[float, float] = (0.0, 0.0)
    runtime: str = ""
    address: str = ""
    uplink_capacity_mbps: float = 0.0
    timestamp_unix_s: float = 0.0
    queued_work_s: float = 0.0
    """The edge's estimate of the seconds to finish everything queued and running
    (edge_node/work_estimate.py); the §B schedulers' w_j."""
    unit_compute_ms: dict[str, float] = field(default_factory=dict)
    """Per model id: moving average of the measured, stretched compute time per unit."""

    def holds(self, model_id: str) -> bool:
        return any(c.model.model_id == model_id for c in self.cached)

    def to_json(self) -> str:
        """The `edge-state/v1` payload (docs/schemas/edge-state.v1.json)."""
        return json.dumps(stamped(PayloadSchema.EDGE_STATE, _plain(self)), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> EdgeStateSnapshot:
        raw: dict[str, Any] = unstamped(json.loads(text))
        raw["cached"] = tuple(
            CachedModelInfo(**{**c, "model": ModelRef(**c["model"])}) for c in raw["cached"]
        )
        raw["counters"] = CacheCounters(**raw["counters"])
        raw["position_m"] = tuple(raw["position_m"])
        return cls(**raw)


@dataclass
class ShareResult:
    """One edge's share of a task split over several edges (docs/papers.md §B): what it
    got and how it ended. Times in ms, counted from the task's start of service."""

    edge_id: str
    share: float
    units: int
    outcome: Outcome
    reason: FailureReason = FailureReason.NONE
    detail: str = ""
    finish_ms: float = 0.0
    """The task's start of service to this share's result on the board."""
    planned_finish_ms: float = 0.0
    """The split rule's T for the task (testbed/coedge/split.py)."""
    t_tx_ms: float = 0.0
    t_edge_queue_ms: float = 0.0
    t_edge_compute_ms: float = 0.0

    @property
    def completed(self) -> bool:
        return self.outcome is Outcome.COMPLETED


@dataclass
class TaskRecord:
    """One task's measured life: exactly one per generated task (times in ms)."""

    task_id: str
    agent_id: str
    slot: int
    task_type: str
    model_id: str
    size_mbit: float
    density_cycles_per_bit: float
    deadline_s: float
    units: int
    outcome: Outcome
    reason: FailureReason = FailureReason.NONE
    detail: str = ""
    edge_id: str = ""
    share: float = 0.0
    download: bool = False
    steps: int = 0
    latency_ms: float = 0.0
    t_local_ms: float = 0.0
    t_tx_ms: float = 0.0
    t_switch_ms: float = 0.0
    t_edge_queue_ms: float = 0.0
    t_edge_compute_ms: float = 0.0
    t_agent_queue_ms: float = 0.0
    fetch_ms: float = 0.0
    verify_ms: float = 0.0
    load_ms: float = 0.0
    warmup_ms: float = 0.0
    cache_hit: bool = False
    served_slot: int = 0
    local_units: int = 0
    edge_units: int = 0
    reward: float = 0.0  # filled in by the coordinator (reward (18) of the measured numbers)
    energy: list[EnergyPart] = field(default_factory=list)
    shares: list[ShareResult] = field(default_factory=list)
    """§B: one per edge that got units (empty for a MATO record)."""

    @property
    def energy_j(self) -> float:
        return sum(p.energy_j for p in self.energy)

    @property
    def completed(self) -> bool:
        return self.outcome is Outcome.COMPLETED


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_LEAVES = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` for JSON, without its deep copies: the same dict (fields in
    order, tuples as lists) ~5× faster. An edge publishes its state after every burst
    of changes, up to once per task; asdict was ~70 % of `to_json` there (measured
    with three cached models: 128 of 176 µs)."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is tuple or kind is list:
        return [_plain(v) for v in value]
    names = _FIELD_NAMES.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            if isinstance(value, dict):
                return {k: _plain(v) for k, v in value.items()}
            return [_plain(v) for v in value] if isinstance(value, list | tuple) else value
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    return {name: _plain(getattr(value, name)) for name in names}
