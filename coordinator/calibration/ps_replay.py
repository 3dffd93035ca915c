"""The processor-sharing slowdown a calibration run's figures hold, fitted by replaying
the run with the twin's own model (docs/twin.md, "Processor sharing within a slot").

The twin prices a computation at its model's figure (Σ cost / Σ units over the
calibration run, fit.py) over a slowdown s, then runs the slot's computations on the
shared cores (coordinator/envs/twin_ps.py). s is the value for which that replay of the
calibration run itself takes as long in all as the run measured: each of the run's
slots is an environment, each board's local share and each edge's tasks (in the order
they started, after their measured upload and with their measured switch) a lane, and
s is found by the fixed-point s ← s · Σ replayed / Σ measured (compute time; local
shares weighted by their board's clock, as their GHz·s figures are).

Fitting on the replay rather than on each computation's measured overlap
(contention.py `ps_slowdowns`) keeps the twin's mean equal to the run's: the overlap
changes when every task of a model costs its model's mean, so the two differ (by 2–5 %
on the committed runs, docs/results/twin_fidelity/).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from coordinator.envs.twin_ps import CoreShare, SlotJobs, node_lanes, share_cores
from testbed.config import TestbedConfig
from testbed.messages import TaskRecord

Array = np.ndarray[Any, Any]


class _Replay:
    """A run's computations of one kind as the twin's lanes, their work at s = 1."""

    def __init__(
        self, cfg: TestbedConfig, records: list[TaskRecord], local: bool,
        demand: tuple[dict[str, float], dict[str, float]],
    ) -> None:  # fmt: skip
        agents = [a.id for a in cfg.agent_specs()]
        edges = [e.id for e in cfg.edge_specs()]
        ghz = {a.id: a.cpu_ghz or 1.0 for a in cfg.agent_specs()}
        mine = [r for r in records if (r.local_units > 0 and r.t_local_ms > 0 if local
                else bool(r.edge_id) and r.edge_units > 0 and r.edge_id in edges)]  # fmt: skip
        slots = sorted({r.slot for r in mine})
        lanes: dict[tuple[int, int], list[TaskRecord]] = defaultdict(list)
        for r in mine:
            lane = agents.index(r.agent_id) if local else len(agents) + edges.index(r.edge_id)
            lanes[slots.index(r.slot), lane].append(r)
        price = _per_unit(mine, local, ghz)
        shape = (
            len(slots),
            len(agents) + len(edges),
            max((len(v) for v in lanes.values()), default=1),
        )
        self.arrive, self.switch, self.work = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.measured, self.weight = np.zeros(shape), np.zeros(shape)
        self.count = np.zeros(shape[:2], dtype=np.int64)
        for (e, lane), items in lanes.items():
            items.sort(key=lambda r: r.t_tx_ms + r.t_edge_queue_ms)
            self.count[e, lane] = len(items)
            for k, r in enumerate(items):
                g = ghz.get(r.agent_id, 1.0) if local else 1.0
                units = r.local_units if local else r.edge_units
                took = (r.t_local_ms if local else r.t_edge_compute_ms) / 1e3
                self.work[e, lane, k] = units * price[r.model_id] / g if took > 0 else 0.0
                self.measured[e, lane, k], self.weight[e, lane, k] = took, g
                if not local:
                    self.arrive[e, lane, k] = r.t_tx_ms / 1e3
                    self.switch[e, lane, k] = r.t_switch_ms / 1e3
        agent_demand, edge_demand = demand
        stretch_demand = [agent_demand.get(a, 1.0) for a in agents] + [
            edge_demand.get(j, 1.0) for j in edges
        ]
        self.cores, self.sleep = node_lanes(np.array(stretch_demand))

    def replayed(self, slowdown: float, host: CoreShare) -> float:
        """Σ weight × compute time of the run replayed with the figures over `slowdown`."""
        work = self.work / slowdown / (1.0 + self.sleep)[None, :, None]
        jobs = SlotJobs(self.arrive, self.switch, work, self.count, self.cores, self.sleep)
        t = share_cores(jobs, host)
        took = np.where(self.work > 0, t.finish_s - t.start_s - self.switch, 0.0)
        return float((took * self.weight).sum())


def _per_unit(records: list[TaskRecord], local: bool, ghz: dict[str, float]) -> dict[str, float]:
    """Per model: Σ cost / Σ units (s, or GHz·s for local shares) as fit.py prices it."""
    cost: dict[str, float] = defaultdict(float)
    units: dict[str, float] = defaultdict(float)
    for r in records:
        took = (r.t_local_ms * ghz.get(r.agent_id, 1.0) if local else r.t_edge_compute_ms) / 1e3
        if took > 0:
            cost[r.model_id] += took
            units[r.model_id] += r.local_units if local else r.edge_units
    return {m: cost[m] / units[m] if units[m] > 0 else 0.0 for m in cost}


def replayed_slowdown(
    cfg: TestbedConfig, records: list[TaskRecord], *, local: bool, host: CoreShare,
    demand: tuple[dict[str, float], dict[str, float]], start: float = 1.0,
) -> float:  # fmt: skip
    """The s for which the run's computations of one kind (`local`: the boards' local
    shares, else the edges'), replayed on the shared cores at their figures over s,
    take as long in all as measured (1 without any)."""
    replay = _Replay(cfg, records, local, demand)
    measured = float((replay.measured * replay.weight).sum())
    if measured <= 0:
        return 1.0
    s = max(start, 1e-6)
    for _ in range(50):
        nxt = s * replay.replayed(s, host) / measured
        if abs(nxt - s) <= 1e-9 * s:
            break
        s = nxt
    return s
