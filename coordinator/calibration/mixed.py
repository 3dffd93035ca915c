"""Mixed slots (docs/twin.md, "Mixed slots"): what a slot in which the boards and the
edges both compute costs beyond what the twin predicts for it.

The per-unit prices come from a `local` run (boards only) and an `offload` run (edges
only). On the embedded bench a slot that mixes them costs more than the twin's pricing
says, whichever pricing: docs/results/twin_fidelity/ measured `random`'s board shares
at 1.18-1.30x and its edge shares at 1.14-1.16x what processor sharing predicts on the
run's own timeline, and located the cost (the rest of the bench's load while the boards
compute), without a model of it that fits every run. So it is measured: calibrate runs
`random` a second time (slots S ... 2S-1, its boards' generators continued from the
fidelity run on slots 0 ... S-1), the twin replays that run's tasks and draws, and each
factor is Σ measured / Σ twin over the run's computations in mixed slots, refined over a
few rounds (under processor sharing a longer local share changes what the edges
overlap). The factors hold for the pricing they were fitted under (`twin.shared_host`).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

from coordinator.calibration.fit import _part_j
from coordinator.calibration_file import Calibration, MixedSlots
from coordinator.envs.heuristics import make_heuristic
from coordinator.envs.twin import TaskSource, TwinEnv
from coordinator.envs.twin_params import TwinParams
from testbed.config import TestbedConfig
from testbed.messages import TaskRecord
from testbed.zoo.catalog import Catalog

MIXED_POLICY = "random"
"""The heuristic of the mixed calibration run."""
ROUNDS = 3
"""Fit rounds: each multiplies the factors by Σ measured / Σ twin."""


@dataclass(frozen=True)
class _Share:
    """One computation: its task's edge and edge units (the decision), and its time and
    energy."""

    edge: str
    edge_units: int
    time_s: float
    energy_j: float


_Key = tuple[int, str, str]
"""(slot, agent id, kind: local or edge)."""


def mixed_slots(records: list[TaskRecord]) -> set[int]:
    """The slots in which a board and an edge both computed."""
    local, edge = set(), set()
    for r in records:
        if r.local_units > 0:
            local.add(r.slot)
        if r.edge_id and r.edge_units > 0:
            edge.add(r.slot)
    return local & edge


def _live(records: list[TaskRecord]) -> dict[_Key, _Share]:
    mixed = mixed_slots(records)
    out: dict[_Key, _Share] = {}
    for r in records:
        if r.slot not in mixed:
            continue
        if r.local_units > 0 and r.t_local_ms > 0:
            out[r.slot, r.agent_id, "local"] = _Share(
                r.edge_id, r.edge_units, r.t_local_ms / 1e3, _part_j(r, "local_compute")
            )
        if r.edge_id and r.edge_units > 0 and r.t_edge_compute_ms > 0:
            out[r.slot, r.agent_id, "edge"] = _Share(
                r.edge_id, r.edge_units, r.t_edge_compute_ms / 1e3, _part_j(r, "edge_compute")
            )
    return out


def _twin(params: TwinParams, slots: int, first_slot: int) -> dict[_Key, _Share]:
    """The twin's computations of `random` on `slots` slots from `first_slot` (a
    multiple of `slots`; CRN tasks, the boards' draws continued from slot 0, the edges
    from their preload)."""
    cfg = params.cfg
    env = TwinEnv(params, 1, tasks=TaskSource.CRN, episode_slots=slots)
    env.reset(seed=cfg.seed)
    policy = make_heuristic(MIXED_POLICY, seed=cfg.seed, crn=True)
    edges = [e.id for e in cfg.edge_specs()]
    over = params.local_overhead_s
    out: dict[_Key, _Share] = {}
    for step in range(first_slot + slots):
        has = env.has_task[0].copy()
        slot = int(env.global_slot()[0])
        info = env.step(policy.act(env)).info
        if step < first_slot:
            continue
        for n, agent in enumerate(env.agent_ids):
            if not has[n]:
                continue
            target, edge_units = int(info["target"][0, n]), int(info["edge_units"][0, n])
            edge = edges[target] if target >= 0 else ""
            if info["units"][0, n] > edge_units:
                t = float(info["t_local_s"][0, n]) - over
                out[slot, agent, "local"] = _Share(
                    edge, edge_units, t, float(info["e_local_j"][0, n])
                )
            if info["t_edge_compute_s"][0, n] > 0:
                out[slot, agent, "edge"] = _Share(
                    edge, edge_units, float(info["t_edge_compute_s"][0, n]),
                    float(info["e_edge_compute_j"][0, n]),
                )  # fmt: skip
    return out


def fit_mixed(
    cfg: TestbedConfig, catalog: Catalog | None, calibration: Calibration,
    records: list[TaskRecord], *, first_slot: int | None = None,
) -> MixedSlots | None:  # fmt: skip
    """`calibration`'s mixed-slot factors from the records of the `random` calibration
    run (slots S ... 2S-1; `first_slot` 0: a `random` run on slots 0 ... S-1 with fresh
    generators, such as a calibrate run's fidelity run), under `cfg`'s twin pricing;
    None without a mixed slot whose computations the twin replays with the same
    decisions."""
    slots = calibration.bench.slots
    first = slots if first_slot is None else first_slot
    live = _live(records)
    base = dataclasses.replace(calibration, mixed=None)
    params = TwinParams.from_config(cfg, base, catalog=catalog, use_config_calibration=False)
    factors = MixedSlots(params.pricing_mode, 1.0, 1.0, 1.0, 1.0)
    for _ in range(ROUNDS):  # the bench resolved once; each round swaps in the factors
        twin = _twin(dataclasses.replace(params, mixed=factors), slots, first)
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0.0])
        for key, got in live.items():
            want = twin.get(key)
            if want is None or (want.edge, want.edge_units) != (got.edge, got.edge_units):
                continue  # the twin decided otherwise (or the share failed there)
            acc = sums[key[2]]
            acc[0] += got.time_s
            acc[1] += want.time_s
            acc[2] += got.energy_j
            acc[3] += want.energy_j
            acc[4] += 1
        local, edge = sums.get("local"), sums.get("edge")
        if local is None or edge is None or not local[1] > 0 or not edge[1] > 0:
            return None
        factors = dataclasses.replace(
            factors,
            local_time=factors.local_time * local[0] / local[1],
            local_energy=factors.local_energy * _ratio(local[2], local[3]),
            edge_time=factors.edge_time * edge[0] / edge[1],
            edge_energy=factors.edge_energy * _ratio(edge[2], edge[3]),
            slots=len(mixed_slots(records)),
            local_shares=int(local[4]),
            edge_shares=int(edge[4]),
        )
    return factors


def _ratio(measured: float, twin: float) -> float:
    """measured / twin; 1 where either has no energy (a meter that reports none)."""
    return measured / twin if measured > 0 and twin > 0 else 1.0


def with_mixed(
    cfg: TestbedConfig, catalog: Catalog | None, calibration: Calibration,
    records: list[TaskRecord] | None,
) -> Calibration:  # fmt: skip
    """`calibration` with its mixed-slot factors fitted on `records` (the `random`
    calibration run; None: a calibration without one, unchanged)."""
    mixed = fit_mixed(cfg, catalog, calibration, records) if records else None
    return dataclasses.replace(calibration, mixed=mixed)
