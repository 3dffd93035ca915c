"""Contention for the host's cores, measured from task records (docs/twin.md,
"Contention on a shared host").

On the embedded bench every board and edge is a process of one host, so a unit of work
costs more the more computations run beside it. A slot's CPU demand is the cores its
computations ask for at once: each task with a local share asks for 1 / its board's
emulation stretch (a board slower than the host sleeps the rest of its compute,
testbed/emulation.py) and each edge with work for 1 / its own stretch (1 for an edge
faster than the host). Its slowdown is max(1, (demand + background) / cores), the
background being the host's load average before the bench started (other work).

`host_contention` records, for the fit (fit.py), how busy the two calibration runs kept
the host; the twin (coordinator/envs/twin_params.py) divides the figures by the run's
slowdown and multiplies them by each slot's own. `contention_table` is the check: per
run of a calibrate folder, each kind of unit's measured cost against the cost one price
per unit predicts, and against the cost the slowdown model predicts
(`python -m coordinator.calibration.contention RUN`, RUN a calibrate run folder or a
calibration file with its records).
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.calibration.ps_replay import replayed_slowdown
from coordinator.calibration_file import CALIBRATION_NAME, BenchFacts, Calibration, HostContention
from coordinator.envs.twin_ps import CoreShare
from coordinator.records import read_records
from testbed.config import TestbedConfig, load_config
from testbed.emulation import stretch_factor
from testbed.messages import TaskRecord
from testbed.types import EnergyMethod


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class _Demand:
    """Cores each node asks for while it computes (1 / its emulation stretch)."""

    agent: dict[str, float]
    edge: dict[str, float]

    @classmethod
    def of(cls, cfg: TestbedConfig) -> _Demand:
        emu = cfg.emulation
        return cls(
            {a.id: 1.0 / stretch_factor(a.cpu_ghz or emu.host_ghz, emu) for a in cfg.agent_specs()},
            {e.id: 1.0 / stretch_factor(e.cpu_ghz, emu) for e in cfg.edge_specs()},
        )

    def by_slot(self, records: Iterable[TaskRecord]) -> dict[int, float]:
        """Each slot's CPU demand: its tasks with a local share and its edges with work."""
        local: dict[int, float] = defaultdict(float)
        edges: dict[int, set[str]] = defaultdict(set)
        for r in records:
            if r.local_units > 0:
                local[r.slot] += self.agent.get(r.agent_id, 1.0)
            if r.edge_id and r.edge_units > 0:
                edges[r.slot].add(r.edge_id)
        slots = set(local) | set(edges)
        return {s: local[s] + sum(self.edge.get(e, 1.0) for e in edges[s]) for s in slots}


FETCH_CORES = 0.15
"""Cores an edge in a model switch loads the host with: docs/results/twin_fidelity/
fetch_cpu.py measured 0.10-0.24 cores for the bench's processes during an operator
prefetch, 0.06-0.21 above the idle bench (fetch_cpu.txt); calibrate does not measure it."""


@dataclass(frozen=True)
class _Span:
    """A part of a task that loads the host, in seconds from its slot's start."""

    start_s: float
    end_s: float
    cores: float
    computes: bool
    """False: an edge's switch (fetch, verify, load, warm-up), which does not compute."""


def _spans(demand: _Demand, r: TaskRecord, fetch_cores: float) -> list[tuple[str, _Span]]:
    """A record's local share (from the slot's start) and its edge share's switch and
    compute (after its upload and its wait in the edge's queue), by kind."""
    out = []
    if r.local_units > 0 and r.t_local_ms > 0:  # a whole core, then it sleeps the rest
        computes_s = r.t_local_ms / 1e3 * demand.agent.get(r.agent_id, 1.0)
        out.append(("local", _Span(0.0, computes_s, 1.0, True)))
    if r.edge_id and r.edge_units > 0:
        at = (r.t_tx_ms + r.t_edge_queue_ms) / 1e3
        if r.t_switch_ms > 0:
            out.append(("switch", _Span(at, at + r.t_switch_ms / 1e3, fetch_cores, False)))
        at += r.t_switch_ms / 1e3
        if r.t_edge_compute_ms > 0:
            cores = demand.edge.get(r.edge_id, 1.0)
            out.append(("edge", _Span(at, at + r.t_edge_compute_ms / 1e3, cores, True)))
    return out


def alone_times(spans: list[_Span], cores: float, background: float) -> list[float]:
    """Each computing span's time alone on the host, processor sharing: ∫ over it of
    1 / max(1, D(t) / cores), D(t) the background and the cores of the spans running
    at t (coordinator/envs/twin_ps.py runs the same model forward)."""
    edges = sorted({x for s in spans for x in (s.start_s, s.end_s)})
    rate = []
    for t0, t1 in itertools.pairwise(edges):
        mid = 0.5 * (t0 + t1)
        d = background + sum(s.cores for s in spans if s.start_s <= mid < s.end_s)
        rate.append((t0, t1, 1.0 / max(1.0, d / cores)))
    return [
        sum((min(t1, s.end_s) - max(t0, s.start_s)) * r for t0, t1, r in rate
            if t1 > s.start_s and t0 < s.end_s)
        for s in spans if s.computes
    ]  # fmt: skip


def ps_slowdowns(
    demand: _Demand, records: list[TaskRecord], cores: float, background: float,
    fetch_cores: float,
) -> list[tuple[TaskRecord, str, float, float]]:  # fmt: skip
    """Per computation of a run's records: (record, kind, measured s, alone s), each
    alone time from what overlapped it in its slot (`alone_times`); a local share's
    at its board's clock, its sleep included (as `t_local_ms` is)."""
    by_slot: dict[int, list[tuple[TaskRecord, str, _Span]]] = defaultdict(list)
    for r in records:
        by_slot[r.slot] += [(r, kind, span) for kind, span in _spans(demand, r, fetch_cores)]
    out = []
    for items in by_slot.values():
        computing = [(r, kind, span) for r, kind, span in items if span.computes]
        alone = alone_times([span for *_, span in items], cores, background)
        for (r, k, sp), w in zip(computing, alone, strict=True):
            stretch = 1.0 / demand.agent.get(r.agent_id, 1.0) if k == "local" else 1.0
            out.append((r, k, (sp.end_s - sp.start_s) * stretch, w * stretch))
    return out


def _ps_slowdown(
    cfg: TestbedConfig, demand: _Demand, records: list[TaskRecord], kind: str,
    part: HostContention,
) -> float:  # fmt: skip
    """Σ measured / Σ alone compute time of a run's computations of one kind (local
    shares weighted by their board's clock, as their GHz·s figures are)."""
    ghz = {a.id: a.cpu_ghz or 1.0 for a in cfg.agent_specs()}
    found = [
        (t, w, ghz.get(r.agent_id, 1.0) if k == "local" else 1.0)
        for r, k, t, w in ps_slowdowns(
            demand, records, part.host_cores, part.background_load, part.fetch_cores
        )
        if k == kind
    ]
    alone = sum(w * g for _, w, g in found)
    return max(1.0, sum(t * g for t, _, g in found) / alone) if alone > 0 else 1.0


def _replayed(
    cfg: TestbedConfig, demand: _Demand, records: list[TaskRecord], kind: str,
    part: HostContention,
) -> float:  # fmt: skip
    """The processor-sharing slowdown of a run's figures, fitted by replaying the run
    (ps_replay.py), from the measured overlap's (`_ps_slowdown`)."""
    host = CoreShare(float(part.host_cores), part.background_load, part.fetch_cores)
    return replayed_slowdown(
        cfg,
        records,
        local=kind == "local",
        host=host,
        demand=(demand.agent, demand.edge),
        start=_ps_slowdown(cfg, demand, records, kind, part),
    )


def _weighted(pairs: list[tuple[float, float]]) -> float:
    """Σ w·x / Σ w over (x, w) pairs (nan without weight)."""
    total = sum(w for _, w in pairs)
    return sum(x * w for x, w in pairs) / total if total > 0 else math.nan


def background_of(host: dict[str, Any]) -> Any:
    """The host's other work before the bench started, in cores: the busy cores measured
    then (`busy_cores_before`), or, in a calibration from before that was recorded, the
    1-min load average, which also counts the last minute's finished work."""
    return host.get("busy_cores_before", host.get("load_avg_1min_before"))


def host_contention(
    cfg: TestbedConfig,
    facts: BenchFacts,
    local_records: list[TaskRecord],
    offload_records: list[TaskRecord],
) -> HostContention | None:
    """How busy the calibration runs kept the host (None on a bench of hosts, or when
    the host's cores were not recorded)."""
    cores = _float(facts.host.get("cpu_count"))
    if cfg.inventory.remote or not cores:
        return None
    background = max(0.0, _float(background_of(facts.host)) or 0.0)
    demand = _Demand.of(cfg)
    part = HostContention(int(cores), background, 0.0, 0.0, 1.0, 1.0, fetch_cores=FETCH_CORES)
    local_slots, edge_slots = demand.by_slot(local_records), demand.by_slot(offload_records)
    local = [(local_slots[r.slot], float(r.local_units)) for r in local_records
             if r.local_units > 0 and r.t_local_ms > 0]  # fmt: skip
    edge = [(edge_slots[r.slot], float(r.edge_units)) for r in offload_records
            if r.edge_units > 0 and r.t_edge_compute_ms > 0]  # fmt: skip
    if not local or not edge:
        return None
    agent_idle_w, edge_idle_w = (
        cfg.agents.energy.power.idle_w,
        cfg.edge_specs()[0].energy.power.idle_w,
    )
    return HostContention(
        host_cores=part.host_cores,
        background_load=background,
        local_demand=_weighted(local),
        edge_demand=_weighted(edge),
        local_slowdown=_weighted([(part.slowdown(d), w) for d, w in local]),
        edge_slowdown=_weighted([(part.slowdown(d), w) for d, w in edge]),
        local_wall_share=_wall_share(local_records, "local_compute", "t_local_ms", agent_idle_w),
        edge_wall_share=_wall_share(
            offload_records, "edge_compute", "t_edge_compute_ms", edge_idle_w
        ),
        fetch_cores=FETCH_CORES,
        local_ps_slowdown=_replayed(cfg, demand, local_records, "local", part),
        edge_ps_slowdown=_replayed(cfg, demand, offload_records, "edge", part),
    )


def _wall_share(records: list[TaskRecord], part: str, time_field: str, idle_w: float) -> float:
    """idle_w × Σ compute time / Σ compute energy where the meter is the configured
    estimate (testbed/energy/estimated.py: idle power × wall time + per-core power × CPU
    time); 1 where it is not, or without samples."""
    seconds = joules = 0.0
    for r in records:
        for p in r.energy:
            if p.part != part:
                continue
            if p.method is not EnergyMethod.ESTIMATED:
                return 1.0
            seconds += getattr(r, time_field) / 1e3
            joules += p.energy_j
    return min(1.0, idle_w * seconds / joules) if joules > 0 else 1.0


# ---------------------------------------------------------------------- the check


@dataclass(frozen=True)
class UnitCostCheck:
    """One kind of unit (local or edge) in one run: its measured cost (s, Σ over the
    run's tasks, per-unit times at the board's clock) and what the two models predict
    from the calibration run's figures."""

    run: str
    kind: str
    units: int
    demand: float
    measured_s: float
    one_price_s: float
    contention_s: float
    shared_s: float = math.nan
    """Processor sharing on the run's measured timeline: each computation's cost is the
    calibration run's price alone × its own overlap (`ps_slowdowns`)."""


def contention_table(run_dir: Path, cfg: TestbedConfig, facts: BenchFacts) -> list[UnitCostCheck]:
    """Every run of a calibrate folder (tasks-*.csv) against the calibration runs' prices."""
    runs = {
        p.stem.removeprefix("tasks-"): read_records(p) for p in sorted(run_dir.glob("tasks-*.csv"))
    }
    contention = host_contention(cfg, facts, runs["calibration-local"], runs["calibration-offload"])
    if contention is None:
        raise ValueError(f"{run_dir}: no contention to check (a bench of hosts?)")
    demand, ghz = _Demand.of(cfg), {a.id: a.cpu_ghz or 1.0 for a in cfg.agent_specs()}
    # (kind, model) → per run: [(cost, units, slot slowdown, processor-sharing slowdown)]
    pts: dict[tuple[str, str], dict[str, list[tuple[float, int, float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    slots_of = {name: demand.by_slot(records) for name, records in runs.items()}
    host = (float(contention.host_cores), contention.background_load, contention.fetch_cores)
    for name, records in runs.items():
        overlap = {
            (id(r), k): t / w for r, k, t, w in ps_slowdowns(demand, records, *host) if w > 0
        }
        for r in records:
            s = contention.slowdown(slots_of[name].get(r.slot, 0.0))
            if r.local_units > 0 and r.t_local_ms > 0:
                pts["local", r.model_id][name].append(
                    (r.t_local_ms / 1e3 * ghz[r.agent_id], r.local_units, s,
                     overlap.get((id(r), "local"), 1.0))
                )  # fmt: skip
            if r.edge_units > 0 and r.t_edge_compute_ms > 0:
                pts["edge", r.model_id][name].append(
                    (r.t_edge_compute_ms / 1e3, r.edge_units, s, overlap.get((id(r), "edge"), 1.0))
                )
    out: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
    for (kind, _), by_run in pts.items():
        ref = by_run.get("calibration-local" if kind == "local" else "calibration-offload")
        if not ref:
            continue
        plain = sum(c for c, *_ in ref) / sum(u for _, u, *_ in ref)
        alone = sum(c for c, *_ in ref) / sum(u * s for _, u, s, _ in ref)
        alone_ps = sum(c / ps for c, *_, ps in ref) / sum(u for _, u, *_ in ref)
        for name, got in by_run.items():
            acc = out[name, kind]
            acc[0] += sum(u for _, u, *_ in got)
            acc[1] += sum(c for c, *_ in got)
            acc[2] += sum(u * plain for _, u, *_ in got)
            acc[3] += sum(u * s * alone for _, u, s, _ in got)
            acc[4] += sum(u * ps * alone_ps for _, u, _, ps in got)
    rows = []
    for (name, kind), (units, measured, one, cont, shared) in sorted(out.items()):
        slots = slots_of[name]
        mean_demand = sum(slots.values()) / len(slots) if slots else math.nan
        rows.append(UnitCostCheck(name, kind, int(units), mean_demand, measured, one, cont, shared))
    return rows


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a calibrate run folder, or a calibration file")
    args = parser.parse_args()
    path = args.run if args.run.is_file() else args.run / CALIBRATION_NAME
    cal = Calibration.load(path)
    run = args.run if args.run.is_dir() else cal.records(path)
    cfg = load_config(run / "config.yaml")
    print(f"host {cal.bench.host.get('cpu_count')} cores, background load "
          f"{background_of(cal.bench.host)}")  # fmt: skip
    print("| run | unit | units | mean slot demand (cores) | one price | contention | "
          "processor sharing |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|")
    for row in contention_table(run, cfg, cal.bench):
        one = 100 * (row.one_price_s / row.measured_s - 1)
        cont = 100 * (row.contention_s / row.measured_s - 1)
        shared = 100 * (row.shared_s / row.measured_s - 1)
        print(f"| {row.run} | {row.kind} | {row.units} | {row.demand:.2f} | {one:+.1f} % | "
              f"{cont:+.1f} % | {shared:+.1f} % |")  # fmt: skip


if __name__ == "__main__":
    _main()
