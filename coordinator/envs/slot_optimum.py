"""The exact per-slot optimum at the paper's size: per-edge dynamic programmes over the
FIFO, joined over the ways to split the slot's agents among the edges (docs/optimum.md).

The slot's total reward (18) decomposes: an agent that runs its task locally earns
what it earns alone, and each edge's uploads touch only that edge's FIFO and cache. So
the optimum is max over disjoint sets S_0 … S_{M−1} of the agents of
Σ_j V_j(S_j) + Σ_{i in no set} local_i, where V_j(S) is the best reward of S served
by edge j over its members' ratios and download flags. `slot_edge_dp.edge_values`
computes V_j exactly for every set that could still beat the best joint decision found
by a local search first (the floor); the join below keeps, edge after edge, the best
gain over running locally of every union of sets, pruned by the same kind of bound.
The decision space is the exhaustive oracle's (coordinator/envs/oracle.py): local, or
a share in `ratios` to edge j with d ∈ {0, 1} (d only where the policy space has one).

The result is exact unless a programme ran out of room (`max_states`); then
`upper_bound` certifies how far the returned decision can be from the optimum.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from coordinator.envs.heuristics import encode_actions
from coordinator.envs.slot_edge_dp import EdgeValues, edge_values, placements
from coordinator.envs.slot_model import OFFLOAD_ONLY_LOCAL, Decision, Pricing, SlotModel
from coordinator.envs.twin import TaskSource, TwinEnv

Array = np.ndarray[Any, Any]

DEFAULT_RATIOS = (0.25, 0.5, 0.75, 1.0)
MAX_STATES = 200_000
"""States one edge's programme may hold at once before it drops the least promising."""
_TOL = 1e-9
"""Slack on the floor: a state whose bound ties the best found is kept."""
_PAIRS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class SlotSolution:
    """The best joint decision of a slot: (N,) target (−1: local), ratio, download."""

    target: Array
    ratio: Array
    download: Array
    reward: float
    """The slot's total reward in the twin (its float32 rewards summed, as the oracle)."""
    upper_bound: float
    """No joint decision over the grid earns more than this (model arithmetic, float64)."""
    exact: bool
    """Whether `upper_bound` is the returned decision's own total (nothing was dropped)."""
    start_reward: float
    """The local search's best total, before the programmes (float64)."""
    states: int
    """States the largest edge programme held at its end."""
    seconds: float
    """Wall time of the solve."""
    cpu_seconds: float
    """CPU time of the solve (this process): the wall time less other work's share."""


class SlotOptimum:
    """`act(env)` for a `TwinEnv` of one environment: the action vectors (1, N, M + 3)
    of the slot's optimum (float64, decoded exactly); `solve(env)` the solution."""

    def __init__(self, ratios: tuple[float, ...] = DEFAULT_RATIOS, max_states: int = MAX_STATES):
        if not ratios or any(not 0.0 < r <= 1.0 for r in ratios):
            raise ValueError(f"ratios must lie in (0, 1], got {ratios}")
        self.ratios = tuple(float(r) for r in ratios)
        self.max_states = max_states

    def solve(self, env: TwinEnv) -> SlotSolution:
        if env.params.mixed is None:
            return self._solve(env, Pricing.PLAIN)
        return self._solve_mixed(env)

    def _solve_mixed(self, env: TwinEnv) -> SlotSolution:
        """With mixed-slot factors a slot's prices depend on whether a board and an edge
        both compute in it. The optimum is the best of three exact searches: the
        decisions that mix, priced as mixed (`Pricing.MIXED`, a bound for them: it
        prices the others as mixed too); the decisions that offload every task whole
        (`Pricing.OFFLOAD_ONLY`); and everything local. The bound is the largest of the
        three; the returned decision is the best of the three in the twin."""
        t0, cpu0 = time.perf_counter(), time.process_time()
        found = [self._solve(env, Pricing.MIXED)]
        whole = self._solve(env, Pricing.OFFLOAD_ONLY)
        if whole.upper_bound > OFFLOAD_ONLY_LOCAL / 2:  # else some agent cannot offload whole
            found.append(whole)
        n = env.num_agents
        local = (np.full(n, -1, dtype=np.int64), np.zeros(n), np.ones(n, dtype=bool))
        local_total = twin_total(env, *local)
        best = max(found, key=lambda s: s.reward)
        bound = max(local_total, *(s.upper_bound for s in found))
        if local_total > best.reward:
            best = dataclasses.replace(
                best, target=local[0], ratio=local[1], download=local[2], reward=local_total
            )
        return dataclasses.replace(
            best, upper_bound=bound, exact=best.reward >= bound - 1e-5 * max(1.0, abs(bound)),
            start_reward=max(s.start_reward for s in found),
            states=max(s.states for s in found), seconds=time.perf_counter() - t0,
            cpu_seconds=time.process_time() - cpu0,
        )  # fmt: skip

    def _solve(self, env: TwinEnv, pricing: Pricing) -> SlotSolution:
        t0, cpu0 = time.perf_counter(), time.process_time()
        model = SlotModel(env, self.ratios, pricing)
        start, start_total = local_search(model)
        edges = range(model.params.num_edges)
        best_at = {(i, j): -math.inf for i in model.active for j in edges}
        for up in model.uploads:
            best_at[up.agent, up.edge] = max(best_at[up.agent, up.edge], model.upper_bound(up))
        floor = start_total - _TOL * max(1.0, abs(start_total))
        values = []
        for j in edges:
            outside = {
                i: max([model.local_reward(i)] + [best_at[i, k] for k in edges if k != j])
                for i in model.active
            }
            values.append(edge_values(model, j, outside, floor, self.max_states))
        decisions, total = _join(model, values, best_at, floor)
        if decisions is None or total < start_total:
            decisions, total = start, start_total
        dropped = max((v.dropped_bound for v in values), default=-math.inf)
        target, ratio, download = _arrays(model, decisions)
        return SlotSolution(
            target=target, ratio=ratio, download=download,
            reward=twin_total(env, target, ratio, download), upper_bound=max(total, dropped),
            exact=dropped <= total, start_reward=start_total,
            states=max((v.states_kept for v in values), default=0),
            seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - cpu0,
        )  # fmt: skip

    def act(self, env: TwinEnv) -> Array:
        s = self.solve(env)
        return encode_actions(env.params.num_edges, s.target[None], s.ratio[None], s.download[None])


def local_search(model: SlotModel, sweeps: int = 10) -> tuple[dict[int, Decision], float]:
    """A good joint decision to start from: from everything local, and from every agent
    sending all of its task to the nearest edge holding its model (Greedy's rule) where
    the grid has x = 1, each agent in turn takes its best decision given the others',
    until no agent improves (at most `sweeps` rounds)."""
    p = model.params
    starts = [dict.fromkeys(model.active, Decision(0, True))]
    if 1.0 in [r for _, r in model.options[1:]]:
        greedy = {}
        for i in model.active:
            held = [j for j in range(p.num_edges) if _model_of(model, i) in model.initial_held[j]]
            j = min(held, key=lambda j: p.distance_m[i, j]) if held else -1
            greedy[i] = Decision(model.options.index((j, 1.0)) if j >= 0 else 0, False)
        starts.append(greedy)
    choices = [Decision(o, d) for o in range(len(model.options)) for d in model.downloads]
    best: tuple[dict[int, Decision], float] = ({}, -math.inf)
    for decisions in starts:
        total = model.evaluate(decisions)
        for _ in range(sweeps):
            improved = False
            for i in model.active:
                for c in choices:
                    trial = {**decisions, i: c}
                    value = model.evaluate(trial)
                    if value > total + _TOL:
                        decisions, total, improved = trial, value, True
            if not improved:
                break
        if total > best[1]:
            best = (decisions, total)
    return best


def _model_of(model: SlotModel, agent: int) -> int:
    ups = [up for up in model.uploads if up.agent == agent]
    return ups[0].model if ups else -1


def _join(
    model: SlotModel, values: list[EdgeValues], best_at: dict[tuple[int, int], float],
    floor: float,
) -> tuple[dict[int, Decision] | None, float]:  # fmt: skip
    """The best disjoint choice of one set per edge (Σ V_j + the others local) among the
    programmes' sets, with its total; None if no combination reaches `floor`."""
    n = model.num_agents
    local = np.array([model.local_reward(i) for i in range(n)])
    base = float(local.sum())
    num_m = len(values)
    masks, gains = np.zeros(1, dtype=np.int64), np.zeros(1)
    back: list[tuple[Array, Array, Array]] = []
    for j, v in enumerate(values):
        rest = np.zeros(n)  # what each agent could still gain over local at later edges
        for i in model.active:
            later = [best_at[i, k] for k in range(j + 1, num_m)]
            rest[i] = max(0.0, max(later, default=-math.inf) - local[i])
        p_masks = np.array(list(v.best), dtype=np.int64)
        p_gains = np.array([v.best[int(m)][0] - _sum_bits(local, int(m)) for m in p_masks])
        masks, gains, from_q, from_p = _combine(
            masks, gains, p_masks, p_gains, rest, floor - base, n
        )
        back.append((masks, from_q, from_p))
        if not len(masks):
            return None, -math.inf
    k = int(np.argmax(gains))
    predicted = base + float(gains[k])
    decisions: dict[int, Decision] = {}
    for j in range(num_m - 1, -1, -1):
        _, from_q, from_p = back[j]
        p_mask = int(np.array(list(values[j].best), dtype=np.int64)[from_p[k]])
        for up, download in placements(values[j].best[p_mask][1]):
            decisions[up.agent] = Decision(up.option, download)
        k = int(from_q[k])
    total = model.evaluate(decisions)
    if abs(total - predicted) > 1e-6 * max(1.0, abs(total)):  # the programme is the model
        raise RuntimeError(f"the programme's total {predicted} is not its decision's {total}")
    return decisions, total


def _combine(
    q_masks: Array, q_gains: Array, p_masks: Array, p_gains: Array, rest: Array,
    floor_gain: float, n: int,
) -> tuple[Array, Array, Array, Array]:  # fmt: skip
    """Every disjoint union of a set in `q` and one in `p`, the best gain of each union
    and where it came from, dropping unions whose bound (gain + what the agents outside
    could still gain later, `rest`) is below `floor_gain`."""
    rest_of = _bit_sums(rest, n)
    total_rest = float(rest.sum())
    cand_u, cand_g, cand_q, cand_p = [], [], [], []
    rows = max(1, _PAIRS_PER_CHUNK // max(1, len(p_masks)))
    for lo in range(0, len(q_masks), rows):
        qm, qg = q_masks[lo : lo + rows, None], q_gains[lo : lo + rows, None]
        union = qm | p_masks[None, :]
        gain = qg + p_gains[None, :]
        ok = ((qm & p_masks[None, :]) == 0) & (gain + total_rest - rest_of(union) >= floor_gain)
        qi, pi = np.nonzero(ok)
        cand_u.append(union[qi, pi])
        cand_g.append(gain[qi, pi])
        cand_q.append(qi + lo)
        cand_p.append(pi)
    union, gain = np.concatenate(cand_u), np.concatenate(cand_g)
    order = np.lexsort((-gain, union))
    first = np.ones(len(order), dtype=bool)
    first[1:] = union[order][1:] != union[order][:-1]
    keep = order[first]
    return union[keep], gain[keep], np.concatenate(cand_q)[keep], np.concatenate(cand_p)[keep]


def _bit_sums(values: Array, n: int) -> Any:
    """A function: mask array → Σ values[i] over the bits i set, by 10-bit tables."""
    tables = []
    for lo in range(0, n, 10):
        width = min(10, n - lo)
        idx = np.arange(1 << width)
        bits = (idx[:, None] >> np.arange(width)) & 1
        tables.append((lo, width, bits @ values[lo : lo + width]))

    def sums(masks: Array) -> Array:
        out = np.zeros(masks.shape)
        for lo, width, table in tables:
            out += table[(masks >> lo) & ((1 << width) - 1)]
        return out

    return sums


def _sum_bits(values: Array, mask: int) -> float:
    return float(sum(values[i] for i in range(len(values)) if mask >> i & 1))


def _arrays(model: SlotModel, decisions: dict[int, Decision]) -> tuple[Array, Array, Array]:
    n = model.num_agents
    target, ratio = np.full(n, -1, dtype=np.int64), np.zeros(n)
    download = np.ones(n, dtype=bool)
    for i, d in decisions.items():
        if d.option > 0:
            target[i], ratio[i] = model.options[d.option]
            download[i] = d.download
    return target, ratio, download


def twin_total(env: TwinEnv, target: Array, ratio: Array, download: Array) -> float:
    """The slot's total reward when the twin serves (N,) decisions on a copy of `env`'s
    slot (its float32 rewards summed in float64, as the exhaustive oracle sums them)."""
    probe = TwinEnv(env.params, 1, tasks=TaskSource.SAMPLED, model_aware=env.model_aware,
                    episode_slots=env.episode_slots)  # fmt: skip
    probe.cached[:] = env.cached[0]
    probe.last_used[:] = env.last_used[0]
    probe._tick = env._tick
    probe.has_task = env.has_task[:1].copy()
    probe.task_type = env.task_type[:1].copy()
    probe.size_mbit = env.size_mbit[:1].copy()
    out = probe.serve(target[None], ratio[None], download[None])
    return float(out.reward.astype(np.float64).sum())
