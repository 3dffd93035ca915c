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
(`python -m coordinator.calibration.contention RUN`).
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from coordinator.calibration_file import BenchFacts, Calibration, HostContention
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


def _weighted(pairs: list[tuple[float, float]]) -> float:
    """Σ w·x / Σ w over (x, w) pairs (nan without weight)."""
    total = sum(w for _, w in pairs)
    return sum(x * w for x, w in pairs) / total if total > 0 else math.nan


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
    background = max(0.0, _float(facts.host.get("load_avg_1min_before")) or 0.0)
    demand = _Demand.of(cfg)
    part = HostContention(int(cores), background, 0.0, 0.0, 1.0, 1.0)
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


def contention_table(run_dir: Path, cfg: TestbedConfig, facts: BenchFacts) -> list[UnitCostCheck]:
    """Every run of a calibrate folder (tasks-*.csv) against the calibration runs' prices."""
    runs = {
        p.stem.removeprefix("tasks-"): read_records(p) for p in sorted(run_dir.glob("tasks-*.csv"))
    }
    contention = host_contention(cfg, facts, runs["calibration-local"], runs["calibration-offload"])
    if contention is None:
        raise ValueError(f"{run_dir}: no contention to check (a bench of hosts?)")
    demand, ghz = _Demand.of(cfg), {a.id: a.cpu_ghz or 1.0 for a in cfg.agent_specs()}
    # (kind, model) → per run: [(cost, units, slowdown)]
    pts: dict[tuple[str, str], dict[str, list[tuple[float, int, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    slots_of = {name: demand.by_slot(records) for name, records in runs.items()}
    for name, records in runs.items():
        for r in records:
            s = contention.slowdown(slots_of[name].get(r.slot, 0.0))
            if r.local_units > 0 and r.t_local_ms > 0:
                pts["local", r.model_id][name].append(
                    (r.t_local_ms / 1e3 * ghz[r.agent_id], r.local_units, s)
                )
            if r.edge_units > 0 and r.t_edge_compute_ms > 0:
                pts["edge", r.model_id][name].append((r.t_edge_compute_ms / 1e3, r.edge_units, s))
    out: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
    for (kind, _), by_run in pts.items():
        ref = by_run.get("calibration-local" if kind == "local" else "calibration-offload")
        if not ref:
            continue
        plain = sum(c for c, _, _ in ref) / sum(u for _, u, _ in ref)
        alone = sum(c for c, _, _ in ref) / sum(u * s for _, u, s in ref)
        for name, got in by_run.items():
            acc = out[name, kind]
            acc[0] += sum(u for _, u, _ in got)
            acc[1] += sum(c for c, _, _ in got)
            acc[2] += sum(u * plain for _, u, _ in got)
            acc[3] += sum(u * s * alone for _, u, s in got)
    rows = []
    for (name, kind), (units, measured, one, cont, _) in sorted(out.items()):
        slots = slots_of[name]
        mean_demand = sum(slots.values()) / len(slots) if slots else math.nan
        rows.append(UnitCostCheck(name, kind, int(units), mean_demand, measured, one, cont))
    return rows


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a calibrate run folder")
    args = parser.parse_args()
    cal = Calibration.load(args.run / "calibration.json")
    cfg = load_config(args.run / "config.yaml")
    print(f"host {cal.bench.host.get('cpu_count')} cores, background load "
          f"{cal.bench.host.get('load_avg_1min_before')}")  # fmt: skip
    print("| run | unit | units | mean slot demand (cores) | one price | contention |")
    print("|---|---|---:|---:|---:|---:|")
    for row in contention_table(args.run, cfg, cal.bench):
        one = 100 * (row.one_price_s / row.measured_s - 1)
        cont = 100 * (row.contention_s / row.measured_s - 1)
        print(f"| {row.run} | {row.kind} | {row.units} | {row.demand:.2f} | {one:+.1f} % | "
              f"{cont:+.1f} % |")  # fmt: skip


if __name__ == "__main__":
    _main()
