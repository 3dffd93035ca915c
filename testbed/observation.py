"""The agent's observation (16) and action (17): one fixed, documented layout.

The same code builds the observation on a board (batch of 1) and in the twin (batches
of many environments × agents), so a policy trained in one runs in the other. Layout,
for K task types, L distinct models among them and M edges (docs/observation.md):

    task      type one-hot (K), D / size_max, C / density_max, deadline / deadline_max
    self      x / W, y / H, f_i / ghz_ref, queue / queue_ref
    edge j    x / W, y / H, f_j / ghz_ref, r_ij / rate_ref, queue_j / queue_ref,
              alive_j, free cache fraction_j,
              [model-aware only:] c_jk (holds the task's model), cached models (L)
    cloud     x / W, y / H

The action is a vector of M + 3 numbers in [0, 1]: target scores (none, edge 0..M−1;
the largest wins — an actor outputs probabilities), the offload ratio x, and the
download flag d as a probability (d = 1 when > 0.5). Without a download action
(MADDPG-NoModel) d is 1.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from testbed.config import TestbedConfig

FloatArray = npt.NDArray[np.float32]

TASK_EXTRA = ("size", "density", "deadline")
SELF_FEATURES = ("self_x", "self_y", "self_ghz", "self_queue")
EDGE_FEATURES = ("x", "y", "ghz", "rate", "queue", "alive", "cache_free")
CLOUD_FEATURES = ("cloud_x", "cloud_y")


@dataclass(frozen=True)
class ObservationSpec:
    """Sizes and normalisers of the observation; stored beside every exported actor."""

    task_types: tuple[str, ...]
    task_models: tuple[str, ...]  # the model of each task type, same order
    num_edges: int
    model_aware: bool = True
    download_action: bool = True
    area_m: tuple[float, float] = (1000.0, 1000.0)
    cloud_position_m: tuple[float, float] = (500.0, 500.0)
    size_max_mbit: float = 1.0
    density_max: float = 1.0
    deadline_max_s: float = 1.0
    ghz_ref: float = 10.0
    queue_ref: float = 10.0
    rate_ref_mbps: float = 100.0
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        """Distinct models of the task types, in first-seen order."""
        return tuple(dict.fromkeys(self.task_models))

    @property
    def edge_width(self) -> int:
        return len(EDGE_FEATURES) + ((1 + len(self.models)) if self.model_aware else 0)

    @property
    def obs_dim(self) -> int:
        k = len(self.task_types)
        return k + len(TASK_EXTRA) + len(SELF_FEATURES) + self.num_edges * self.edge_width + 2

    @property
    def action_dim(self) -> int:
        return self.num_edges + 3

    @cached_property
    def divisors(self) -> FloatArray:
        """Each feature's normaliser (1 where it has none), float32, in layout order:
        `observe_one` divides by it as `observe` divides feature by feature."""
        w, h = self.area_m
        out = [1.0] * len(self.task_types)
        out += [self.size_max_mbit, self.density_max, self.deadline_max_s]
        out += [w, h, self.ghz_ref, self.queue_ref]
        edge = [w, h, self.ghz_ref, self.rate_ref_mbps, self.queue_ref, 1.0, 1.0]
        if self.model_aware:
            edge += [1.0] * (1 + len(self.models))
        out += edge * self.num_edges
        out += [w, h]
        return np.asarray(out, dtype=np.float32)

    def feature_names(self) -> list[str]:
        names = [f"type={t}" for t in self.task_types] + list(TASK_EXTRA) + list(SELF_FEATURES)
        for j in range(self.num_edges):
            names += [f"edge{j}_{f}" for f in EDGE_FEATURES]
            if self.model_aware:
                names += [f"edge{j}_holds_task_model"]
                names += [f"edge{j}_cached={m}" for m in self.models]
        return names + list(CLOUD_FEATURES)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> ObservationSpec:
        """The spec `to_json` wrote; `SpecError` naming every field that is missing,
        unknown, of the wrong type, not finite, or out of range."""
        try:
            raw = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise SpecError([("<spec>", f"not JSON: {exc}")]) from None
        if not isinstance(raw, dict):
            raise SpecError([("<spec>", f"expected a JSON object, got {type(raw).__name__}")])
        problems: list[tuple[str, str]] = []
        values = _spec_values(raw, problems)
        if problems:
            raise SpecError(problems)
        spec = cls(**values)
        if spec.num_edges < 0:
            problems.append(("num_edges", f"expected ≥ 0, got {spec.num_edges}"))
        if not spec.task_types or len(spec.task_models) != len(spec.task_types):
            problems.append(("task_models", "expected one model per task type (≥ 1 type)"))
        for name in _SPEC_DIVISORS:  # the observation divides by each
            if not min(np.atleast_1d(getattr(spec, name))) > 0:
                problems.append((name, f"expected > 0, got {getattr(spec, name)}"))
        if problems:
            raise SpecError(problems)
        return spec

    @classmethod
    def from_config(cls, cfg: TestbedConfig, *, model_aware: bool = True) -> ObservationSpec:
        types = cfg.tasks.active_types
        edges = cfg.edge_specs()
        return cls(
            task_types=tuple(t.name for t in types),
            task_models=tuple(t.model for t in types),
            num_edges=len(edges),
            model_aware=model_aware,
            download_action=model_aware,
            area_m=tuple(cfg.topology.area_m),  # type: ignore[arg-type]
            cloud_position_m=tuple(cfg.cloud.position_m),  # type: ignore[arg-type]
            size_max_mbit=max(t.size_mbit[1] for t in types),
            density_max=max(t.density_cycles_per_bit for t in types),
            deadline_max_s=max(t.deadline_s for t in types),
            ghz_ref=max([e.cpu_ghz for e in edges] + [cfg.agents.cpu_ghz_range[1]]),
            queue_ref=float(cfg.agents.queue_capacity),
            rate_ref_mbps=max(e.uplink_capacity_mbps for e in edges) if edges else 100.0,
        )


class SpecError(ValueError):
    """A spec (`ObservationSpec.from_json`) this code cannot use; `problems` are
    `(field, what is wrong)` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("observation spec: " + "; ".join(f"{k}: {m}" for k, m in problems))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: Any) -> tuple[Any, str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value), ""
    return None, f"expected a list of strings, got {value!r:.60}"


def _finite_pair(value: Any) -> tuple[Any, str]:
    numbers = isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
    if numbers and all(math.isfinite(v) for v in value):
        return (float(value[0]), float(value[1])), ""
    return None, f"expected a list of 2 finite numbers, got {value!r:.60}"


def _integer(value: Any) -> tuple[Any, str]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, ""
    return None, f"expected an integer, got {value!r:.60}"


def _flag(value: Any) -> tuple[Any, str]:
    return (
        (value, "")
        if isinstance(value, bool)
        else (None, f"expected true or false, got {value!r:.60}")
    )


def _finite(value: Any) -> tuple[Any, str]:
    if _is_number(value) and math.isfinite(value):
        return float(value), ""
    return None, f"expected a finite number, got {value!r:.60}"


def _object(value: Any) -> tuple[Any, str]:
    return (
        (value, "") if isinstance(value, dict) else (None, f"expected an object, got {value!r:.60}")
    )


_SPEC_DIVISORS = (
    "area_m", "size_max_mbit", "density_max", "deadline_max_s", "ghz_ref", "queue_ref",
    "rate_ref_mbps",
)  # fmt: skip

_SPEC_FIELD_CHECKS = {
    "tuple[str, ...]": _strings,
    "tuple[float, float]": _finite_pair,
    "int": _integer,
    "bool": _flag,
    "float": _finite,
    "dict[str, Any]": _object,
}
"""How `from_json` checks a field, by its annotation: one for every annotation the spec
uses (checked at import, so a new field cannot go unchecked)."""

_unchecked = {str(f.type) for f in dataclasses.fields(ObservationSpec)} - set(_SPEC_FIELD_CHECKS)
if _unchecked:
    raise TypeError(f"ObservationSpec fields of types {_unchecked} have no check in from_json")


def _spec_values(raw: dict[str, Any], problems: list[tuple[str, str]]) -> dict[str, Any]:
    """The spec's fields from a parsed JSON object, each checked against its type."""
    fields = {f.name: f for f in dataclasses.fields(ObservationSpec)}
    problems += [(key, "unknown field") for key in raw if key not in fields]
    values = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append((name, "missing"))
            continue
        value, wrong = _SPEC_FIELD_CHECKS[str(f.type)](raw[name])
        if wrong:
            problems.append((name, wrong))
        values[name] = value
    return values


def observe(
    spec: ObservationSpec,
    *,
    has_task: Any,
    task_type: Any,
    size_mbit: Any,
    density_cycles_per_bit: Any,
    deadline_s: Any,
    self_position_m: Any,
    self_ghz: Any,
    self_queue: Any,
    edge_position_m: Any,
    edge_ghz: Any,
    rate_mbps: Any,
    edge_queue: Any,
    edge_alive: Any,
    edge_cache_free: Any,
    edge_cached: Any,
) -> FloatArray:
    """Observations for a batch (any leading shape `B`): float32 of shape B + (obs_dim,).

    Per task: `has_task`, `task_type` (index into spec.task_types), size, density,
    deadline — shape B. Self: position B+(2,), clock, queue length — B. Edges: position
    B+(M, 2) or (M, 2), clock B+(M,) or (M,), rate r_ij, queue, alive (0/1), free cache
    fraction — B+(M,), cached models B+(M, L) (0/1, in spec.models order). A slot with
    no task has zeros in the task part.
    """
    has = np.asarray(has_task, dtype=np.float32)
    batch = has.shape
    m = spec.num_edges
    k = len(spec.task_types)
    w, h = spec.area_m
    scale_xy = np.array([w, h], dtype=np.float32)

    def b(x: Any, tail: tuple[int, ...] = ()) -> FloatArray:
        return np.broadcast_to(np.asarray(x, dtype=np.float32), (*batch, *tail))

    ttype = np.asarray(task_type, dtype=np.int64)
    onehot = (np.arange(k) == ttype[..., None]).astype(np.float32) * has[..., None]
    task = (
        np.stack(
            [
                b(size_mbit) / spec.size_max_mbit,
                b(density_cycles_per_bit) / spec.density_max,
                b(deadline_s) / spec.deadline_max_s,
            ],
            axis=-1,
        )
        * has[..., None]
    )
    me = np.concatenate(
        [
            b(self_position_m, (2,)) / scale_xy,
            b(self_ghz)[..., None] / spec.ghz_ref,
            b(self_queue)[..., None] / spec.queue_ref,
        ],
        axis=-1,
    )
    edges = [
        b(edge_position_m, (m, 2)) / scale_xy,
        b(edge_ghz, (m,))[..., None] / spec.ghz_ref,
        b(rate_mbps, (m,))[..., None] / spec.rate_ref_mbps,
        b(edge_queue, (m,))[..., None] / spec.queue_ref,
        b(edge_alive, (m,))[..., None],
        b(edge_cache_free, (m,))[..., None],
    ]
    if spec.model_aware:
        cached = b(edge_cached, (m, len(spec.models)))
        model_of_type = np.array([spec.models.index(x) for x in spec.task_models], dtype=np.int64)
        task_model = model_of_type[np.clip(ttype, 0, k - 1)]
        holds = (
            np.take_along_axis(
                cached, np.broadcast_to(task_model[..., None, None], (*batch, m, 1)), axis=-1
            )
            * has[..., None, None]
        )
        edges += [holds, cached]
    edge_block = np.concatenate(edges, axis=-1).reshape((*batch, m * spec.edge_width))
    cloud = np.broadcast_to(np.asarray(spec.cloud_position_m, np.float32) / scale_xy, (*batch, 2))
    return np.concatenate([onehot, task, me, edge_block, cloud], axis=-1).astype(np.float32)


def observe_one(
    spec: ObservationSpec,
    *,
    task_type: int,
    size_mbit: float,
    density_cycles_per_bit: float,
    deadline_s: float,
    self_position_m: Sequence[float],
    self_ghz: float,
    self_queue: float,
    edge_position_m: Sequence[Sequence[float]],
    edge_ghz: Sequence[float],
    rate_mbps: Sequence[float],
    edge_queue: Sequence[float],
    edge_alive: Sequence[float],
    edge_cache_free: Sequence[float],
    edge_cached: Sequence[Sequence[float]],
) -> FloatArray:
    """One board's observation of a task: the same float32 numbers as `observe` with
    `has_task=1` (units and arguments as there, edges as sequences of length M), built
    from Python values in one array and one division — ~15× faster for a batch of one,
    which is what a board decides on every slot."""
    k, m = len(spec.task_types), spec.num_edges
    if not 0 <= task_type < k:
        raise IndexError(f"task type {task_type} out of range for {k} types")
    values = [0.0] * k
    values[task_type] = 1.0
    values += [size_mbit, density_cycles_per_bit, deadline_s]
    values += [self_position_m[0], self_position_m[1], self_ghz, self_queue]
    if spec.model_aware:
        held = spec.models.index(spec.task_models[task_type])
    for j in range(m):
        pos = edge_position_m[j]
        values += [pos[0], pos[1], edge_ghz[j], rate_mbps[j], edge_queue[j]]
        values += [edge_alive[j], edge_cache_free[j]]
        if spec.model_aware:
            cached = edge_cached[j]
            values.append(cached[held])
            values += cached
    values += spec.cloud_position_m
    numerators = np.asarray(values, dtype=np.float32)
    if numerators.shape != (spec.obs_dim,):
        raise ValueError(f"expected {spec.obs_dim} features, built {numerators.shape}")
    return numerators / spec.divisors  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Decision:
    """A decoded action: target edge index (−1: none), ratio x, download d."""

    target: int
    ratio: float
    download: bool
    raw: tuple[float, ...] = ()


def decode(spec: ObservationSpec, raw: Any) -> tuple[Any, Any, Any]:
    """Decode action vectors (shape B + (M + 3,)) into (target, ratio, download) arrays.

    A target of none means ratio 0; a ratio of 0 means no target.
    """
    raw = np.asarray(raw, dtype=np.float32)
    m = spec.num_edges
    target = np.argmax(raw[..., : m + 1], axis=-1) - 1
    ratio = np.clip(raw[..., m + 1], 0.0, 1.0)
    ratio = np.where(target < 0, 0.0, ratio)
    target = np.where(ratio <= 0.0, -1, target)
    if spec.download_action:
        download = raw[..., m + 2] > 0.5
    else:
        download = np.ones(raw.shape[:-1], dtype=bool)
    return target, ratio, download


def encode(spec: ObservationSpec, target: int, ratio: float, download: bool) -> FloatArray:
    """The action vector a heuristic's decision corresponds to (for logs and replay)."""
    raw = np.zeros(spec.action_dim, dtype=np.float32)
    raw[target + 1] = 1.0
    raw[spec.num_edges + 1] = ratio
    raw[spec.num_edges + 2] = 1.0 if download else 0.0
    return raw


def decide(spec: ObservationSpec, raw: Any) -> Decision:
    """Decode one action vector: `decode`'s rules on Python floats (a board decodes one
    vector per slot; numpy's per-call overhead would be most of the decision)."""
    as_float32 = np.asarray(raw, dtype=np.float32)
    values = as_float32.tolist()  # decoded as float32, as `decode` does
    if as_float32.shape != (spec.action_dim,) or math.isnan(sum(values)):
        target, ratio, download = decode(spec, raw)  # numpy's rules for NaN and shapes
        return Decision(int(target), float(ratio), bool(download), tuple(float(v) for v in raw))
    if isinstance(raw, np.ndarray) and raw.dtype == np.float32:
        raw_values = tuple(values)
    else:  # the caller's own numbers, as given
        raw_values = tuple(float(v) for v in raw)
    m = spec.num_edges
    scores = values[: m + 1]
    target_i = scores.index(max(scores)) - 1  # the first largest, as argmax
    ratio_f = min(max(values[m + 1], 0.0), 1.0) if target_i >= 0 else 0.0
    if ratio_f <= 0.0:
        target_i = -1
    download_b = values[m + 2] > 0.5 if spec.download_action else True
    return Decision(target_i, ratio_f, download_b, raw_values)
