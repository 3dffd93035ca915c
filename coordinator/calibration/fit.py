"""From live measurements to a `Calibration`: per-unit costs from a `local` and an
`offload` run's task records, switch costs from the edges' operator prefetches
(docs/twin.md, "How each figure is measured").

A per-unit cost is a ratio of sums — Σ cost / Σ units over the model's tasks — and an
overhead a mean, so the twin's *mean* latency and energy match the runs' (the edge's
per-unit times are skewed by contention: their mean is 30–45 % above their median on
the 2-core default bench). The few switch repeats per model are medians (one slow
repeat is the host, not the model). A model with no sample (no task of its type arrived
in the run) is priced by scaling the measured models' cost per FLOP to its unit FLOPs,
and says so in `sources`.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from coordinator.calibration.contention import host_contention
from coordinator.calibration.switches import SwitchSample
from coordinator.calibration_file import (
    CALIBRATION_VERSION,
    BenchFacts,
    Calibration,
    ClassPower,
    FigureSource,
    ModelCalibration,
    config_digest,
)
from testbed.config import EdgeSpec, TestbedConfig
from testbed.links import distance_m, shannon_rate_mbps
from testbed.messages import TaskRecord
from testbed.types import EnergyMethod, FailureReason
from testbed.zoo.catalog import Catalog, ModelEntry
from testbed.zoo.workload import effective_steps

Figures = dict[str, float | None]
"""A model's figures by `ModelCalibration` field name (None: no sample)."""


def _median(values: Iterable[float]) -> float | None:
    items = [v for v in values if v == v]  # drop NaN
    return float(statistics.median(items)) if items else None


def _mean(values: Iterable[float]) -> float | None:
    items = [v for v in values if v == v]
    return float(statistics.fmean(items)) if items else None


def _part_j(record: TaskRecord, part: str) -> float:
    return sum(p.energy_j for p in record.energy if p.part == part)


def _part_method(records: Iterable[TaskRecord], part: str) -> str:
    for r in records:
        for p in r.energy:
            if p.part == part:
                return p.method.value
    return ""


@dataclass
class _PerModel:
    """Σ cost and Σ units per model id of one per-unit figure."""

    cost: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    units: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    count_: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, model_id: str, cost: float, units: float) -> None:
        self.cost[model_id] += cost
        self.units[model_id] += units
        self.count_[model_id] += 1

    def per_unit(self, model_id: str) -> float | None:
        units = self.units.get(model_id, 0.0)
        return self.cost[model_id] / units if units > 0 else None

    def count(self, model_id: str) -> int:
        return self.count_.get(model_id, 0)


def _step_factor(entry: ModelEntry, steps: int) -> float:
    """Forward passes of a sample relative to the default steps (1 but for diffusion)."""
    return effective_steps(entry, steps or None) / entry.default_steps


@dataclass
class _LocalRun:
    """What the `local` run's records give: the agents' GHz·s and J per unit, and the
    overhead of the tasks that ran wholly on the agent (s)."""

    ghz_s: _PerModel = field(default_factory=_PerModel)
    joules: _PerModel = field(default_factory=_PerModel)
    overhead_s: list[float] = field(default_factory=list)


def _from_local_run(
    cfg: TestbedConfig, entries: dict[str, ModelEntry], records: list[TaskRecord]
) -> _LocalRun:
    agents = {a.id: a for a in cfg.agent_specs()}
    out = _LocalRun()
    for r in records:
        spec, entry = agents.get(r.agent_id), entries.get(r.model_id)
        if spec is None or entry is None or r.local_units <= 0 or r.t_local_ms <= 0:
            continue
        if r.reason is FailureReason.LOCAL_FAILED or spec.cpu_ghz is None:
            continue
        per_unit = r.local_units * _step_factor(entry, r.steps)
        out.ghz_s.add(r.model_id, r.t_local_ms / 1e3 * spec.cpu_ghz, per_unit)
        out.joules.add(r.model_id, _part_j(r, "local_compute"), per_unit)
        if not r.edge_id:
            out.overhead_s.append((r.latency_ms - r.t_local_ms) / 1e3)
    return out


@dataclass
class _OffloadRun:
    """What the `offload` run's records give: the edges' s and J per unit, the upload
    overhead beyond the paced transfer and the reply overhead (s), and the edges' power
    while loading and warming up a model (W)."""

    seconds: _PerModel = field(default_factory=_PerModel)
    joules: _PerModel = field(default_factory=_PerModel)
    upload_overhead_s: list[float] = field(default_factory=list)
    reply_overhead_s: list[float] = field(default_factory=list)
    load_w: list[float] = field(default_factory=list)
    warmup_w: list[float] = field(default_factory=list)
    switches: dict[str, list[SwitchSample]] = field(default_factory=lambda: defaultdict(list))
    """Per model, the run's own downloads (fetch, verify, load, warm-up of a task)."""


def _from_offload_run(
    cfg: TestbedConfig, entries: dict[str, ModelEntry], records: list[TaskRecord]
) -> _OffloadRun:
    agents = {a.id: a for a in cfg.agent_specs()}
    edges = {e.id: e for e in cfg.edge_specs()}
    out = _OffloadRun()
    for r in records:
        entry = entries.get(r.model_id)
        if entry is None or not r.edge_id or r.edge_units <= 0:
            continue
        if r.reason not in (FailureReason.NONE, FailureReason.DEADLINE):
            continue
        per_unit = r.edge_units * _step_factor(entry, r.steps)
        if r.t_edge_compute_ms > 0:
            out.seconds.add(r.model_id, r.t_edge_compute_ms / 1e3, per_unit)
            out.joules.add(r.model_id, _part_j(r, "edge_compute"), per_unit)
        rate = _rate(cfg, agents[r.agent_id].position_m, edges[r.edge_id].position_m)
        paced_s = r.share * r.size_mbit / rate if _paced(cfg) else 0.0
        out.upload_overhead_s.append(r.t_tx_ms / 1e3 - paced_s)
        if r.local_units == 0:
            edge_path = r.t_tx_ms + r.t_edge_queue_ms + r.t_switch_ms + r.t_edge_compute_ms
            out.reply_overhead_s.append((r.latency_ms - edge_path) / 1e3)
        if r.fetch_ms > 0:
            parts = (r.fetch_ms / 1e3, r.verify_ms / 1e3, r.load_ms / 1e3, r.warmup_ms / 1e3)
            out.switches[r.model_id].append(SwitchSample(r.model_id, r.edge_id, *parts, sum(parts)))
        if r.load_ms > 0:
            out.load_w.append(_part_j(r, "edge_load") / (r.load_ms / 1e3))
        if r.warmup_ms > 0:
            out.warmup_w.append(_part_j(r, "edge_warmup") / (r.warmup_ms / 1e3))
    return out


def _model_figures(
    cfg: TestbedConfig,
    entry: ModelEntry,
    local: _LocalRun,
    offload: _OffloadRun,
    samples: list[SwitchSample],
    edge0: EdgeSpec,
) -> Figures:
    """One model's measured figures: per unit from the runs; the switch parts the means
    of the `offload` run's own downloads of the model where it made any (what a task
    waits for in a run, on the run's busy host), else the operator prefetches' medians."""
    model_id = entry.id
    rate = edge0.cloud_link_mbps
    paced = entry.size_bytes * 8 / 1e6 / rate if _paced(cfg) else 0.0
    in_run = offload.switches.get(model_id, [])
    pick = _mean if in_run else _median
    switches = in_run or samples
    return {
        "local_ghz_s_per_unit": local.ghz_s.per_unit(model_id),
        "local_j_per_unit": local.joules.per_unit(model_id),
        "edge_s_per_unit": offload.seconds.per_unit(model_id),
        "edge_j_per_unit": offload.joules.per_unit(model_id),
        "fetch_overhead_s": pick(s.fetch_s - paced for s in switches),
        "verify_s": pick(s.verify_s for s in switches),
        "load_s": pick(s.load_s for s in switches),
        "warmup_s": pick(s.warmup_s for s in switches),
    }


def _model_calibration(
    entry: ModelEntry,
    figures: Figures,
    scale: _Scaler,
    counts: dict[str, int],
    load_measured: bool,
    load_power_w: tuple[float, float],
) -> ModelCalibration:
    """A model's `ModelCalibration`: a figure without a sample is scaled from the
    measured models; load and warm-up energy at `load_power_w` (load, warm-up)."""
    sources = {}
    values: dict[str, float] = {}
    for name, value in figures.items():
        if value is None:
            value = scale.scaled(name, entry)
            sources[name] = FigureSource.SCALED
        else:
            sources[name] = FigureSource.MEASURED
        values[name] = max(0.0, value)
    energy_source = FigureSource.MEASURED if load_measured else FigureSource.CONFIGURED
    sources["load_j"] = sources["warmup_j"] = energy_source
    load_w, warm_w = load_power_w
    return ModelCalibration(
        model_id=entry.id, family=entry.family, size_bytes=entry.size_bytes,
        flops_per_invocation=entry.flops_per_invocation, default_steps=entry.default_steps,
        load_j=values["load_s"] * load_w, warmup_j=values["warmup_s"] * warm_w,
        samples=counts, sources=dict(sources), **values,
    )  # fmt: skip


def fit_calibration(
    cfg: TestbedConfig,
    catalog: Catalog,
    *,
    models: list[str],
    local_records: list[TaskRecord],
    offload_records: list[TaskRecord],
    switches: list[SwitchSample],
    facts: BenchFacts,
) -> Calibration:
    """The calibration of the bench in `cfg` from its measurements (see module doc)."""
    edge0 = cfg.edge_specs()[0]
    entries = {m: catalog.get(m) for m in models}
    local = _from_local_run(cfg, entries, local_records)
    offload = _from_offload_run(cfg, entries, offload_records)
    power = edge0.energy.power
    configured_w = power.idle_w + power.active_w_per_core  # one busy core
    load_power = _median(offload.load_w) or configured_w
    warm_power = _median(offload.warmup_w) or configured_w
    by_model: dict[str, list[SwitchSample]] = defaultdict(list)
    for s in switches:
        by_model[s.model_id].append(s)
    figures = {
        m: _model_figures(cfg, entries[m], local, offload, by_model.get(m, []), edge0)
        for m in models
    }
    scale = _Scaler(entries)
    for model_id, found in figures.items():
        scale.note(model_id, found)
    models_out = [
        _model_calibration(
            entries[m], figures[m], scale,
            {"local": local.ghz_s.count(m), "edge": offload.seconds.count(m),
             "switch": len(by_model.get(m, [])),
             "switch_in_run": len(offload.switches.get(m, []))},
            bool(offload.load_w), (load_power, warm_power),
        )
        for m in models
    ]  # fmt: skip
    power_source = (
        "measured in tasks" if offload.load_w else "configured power model: idle + one core"
    )
    notes = [
        f"local figures from {len(local_records)} task records of a `local` run, edge figures "
        f"from {len(offload_records)} of an `offload` run, switches from "
        f"{len(switches)} operator prefetches on {edge0.id}",
        f"load/warm-up power {load_power:.1f} / {warm_power:.1f} W ({power_source})",
    ]
    if any(s == FigureSource.SCALED for m in models_out for s in m.sources.values()):
        notes.append("figures marked `scaled` had no sample: scaled by FLOPs per unit")
    return Calibration(
        version=CALIBRATION_VERSION,
        bench=facts,
        edge_ghz=edge0.cpu_ghz,
        upload_overhead_s=max(0.0, _mean(offload.upload_overhead_s) or 0.0),
        reply_overhead_s=max(0.0, _mean(offload.reply_overhead_s) or 0.0),
        local_overhead_s=max(0.0, _mean(local.overhead_s) or 0.0),
        models=models_out,
        power=_class_powers(cfg, local_records, offload_records),
        notes=notes,
        contention=host_contention(cfg, facts, local_records, offload_records),
    )


def _class_powers(
    cfg: TestbedConfig, local_records: list[TaskRecord], offload_records: list[TaskRecord]
) -> dict[str, ClassPower]:
    """Busy power of agents and edges while computing, as their meters gave it."""
    local_w = [_part_j(r, "local_compute") / (r.t_local_ms / 1e3) for r in local_records
               if r.t_local_ms > 0]  # fmt: skip
    compute_w = [_part_j(r, "edge_compute") / (r.t_edge_compute_ms / 1e3) for r in offload_records
                 if r.t_edge_compute_ms > 0]  # fmt: skip
    agent_method = _part_method(local_records, "local_compute")
    edge_method = _part_method(offload_records, "edge_compute")
    edge_idle_w = cfg.edge_specs()[0].energy.power.idle_w
    return {
        "agent": ClassPower(
            _median(local_w), _idle(agent_method, cfg.agents.energy.power.idle_w), agent_method
        ),
        "edge": ClassPower(_median(compute_w), _idle(edge_method, edge_idle_w), edge_method),
    }


def _idle(method: str, configured_w: float) -> float | None:
    """The idle power where the meter is the configured estimate (others do not say)."""
    return configured_w if method == EnergyMethod.ESTIMATED.value else None


def _paced(cfg: TestbedConfig) -> bool:
    """Whether the bench paced its transfers (emulation.links, docs/architecture.md)."""
    return cfg.emulation.links_paced(cfg.inventory.remote)


def _rate(cfg: TestbedConfig, agent_pos: Any, edge_pos: Any) -> float:
    """r_ij as the board computes it (agent_node/edges.py)."""
    d = distance_m(agent_pos, edge_pos)
    return float(shannon_rate_mbps(cfg.agents.transmit_power_w, d, cfg.links))


class _Scaler:
    """Prices a model without samples from the measured models' cost per unit FLOP."""

    def __init__(self, entries: dict[str, ModelEntry]) -> None:
        self._entries = entries
        self._per_flop: dict[str, list[float]] = defaultdict(list)
        self._per_mb: dict[str, list[float]] = defaultdict(list)

    def note(self, model_id: str, figures: Figures) -> None:
        e = self._entries[model_id]
        unit = e.flops_per_invocation * e.default_steps
        for name, value in figures.items():
            if value is None:
                continue
            if "per_unit" in name:
                self._per_flop[name].append(value / unit)
            else:
                self._per_mb[name].append(value / max(e.size_bytes / 1e6, 1e-9))

    def scaled(self, name: str, e: ModelEntry) -> float:
        if "per_unit" in name:
            return (_median(self._per_flop[name]) or 0.0) * e.flops_per_invocation * e.default_steps
        return (_median(self._per_mb[name]) or 0.0) * e.size_bytes / 1e6


def bench_facts(
    cfg: TestbedConfig,
    catalog: Catalog,
    *,
    broker: str,
    slots: int,
    run_dir: str,
    host: dict[str, object],
    git_commit: str,
) -> BenchFacts:
    """The facts of the bench in `cfg` a calibration records (`Calibration.bench`)."""
    return BenchFacts(
        created_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        host={k: str(v) for k, v in host.items()},
        zoo_scale=catalog.scale,
        zoo_models=[e.key for e in catalog.entries],
        broker=broker,
        config_digest=config_digest(cfg),
        git_commit=git_commit,
        seed=cfg.seed,
        slots=slots,
        agents=cfg.agents.count,
        edges=cfg.edges.count,
        emulation_links=_paced(cfg),
        emulation_compute=cfg.emulation.compute,
        host_ghz=cfg.emulation.host_ghz,
        run_dir=run_dir,
    )
