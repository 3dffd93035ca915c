"""Simulated annealing over each model's denoising steps and compute share, eq. 11 of
docs/papers.md §C (docs/allocation.md, "Simulated annealing").

The paper's Algorithm 1 was lost from its text; what it states is kept (a neighbour
changes one k_m by one step of K or moves compute between two models, Metropolis
acceptance exp(ΔU/T), T ← α·T until T_min) and the rest is this project's choice,
each a key of `allocation.annealing` (testbed/config/allocation.py):

- the state is a step index and a whole number of share slices per model with tasks;
  every such model keeps ≥ 1 slice and the slices always sum to S (Σφ = 1: an idle
  slice only adds latency, testbed/allocation/exhaustive.py says why), so no move can
  break Σφ ≤ 1 or leave the step grid;
- the start: the slices as equal as the grid allows (the remainder to the largest
  models), each model at the middle of its step grid;
- ΔU is taken per task (divided by the slot's tasks), so a temperature is in score
  units whatever the slot's size; the start temperature, when not given, makes the
  start's mean worsening neighbour accepted with probability `initial_acceptance`;
- `moves_per_temperature` neighbours at each of `levels` temperatures; the best state
  seen is returned (not the last).

A move changes one or two models' terms, so ΔU is read from the per-model term tables
(testbed/allocation/problem.py) in O(1): thousands of moves take milliseconds.
"""

from __future__ import annotations

import math

import numpy as np

from testbed.allocation.problem import Allocation, AllocationProblem, from_slices
from testbed.config.allocation import AnnealingConfig

_CALIBRATION_MOVES = 64
"""Random neighbours of the start sampled to set the start temperature."""


class _State:
    """The annealing's state over the models with tasks, with O(1) move deltas."""

    def __init__(self, problem: AllocationProblem, slices_per_move: int) -> None:
        active = problem.active
        self.tables = [problem.term_table(m).tolist() for m in active]
        self.sizes = [len(t) for t in self.tables]
        count, total = len(active), problem.share_slices
        extra = total % count
        self.slices = [total // count + (1 if j >= count - extra else 0) for j in range(count)]
        self.index = [(size - 1) // 2 for size in self.sizes]
        self.move = slices_per_move
        self.steppable = [j for j in range(count) if self.sizes[j] > 1]

    def value(self) -> float:
        return sum(t[i][u] for t, i, u in zip(self.tables, self.index, self.slices, strict=True))

    def can_move(self) -> bool:
        return bool(self.steppable) or self.donors() != []

    def donors(self) -> list[int]:
        if len(self.slices) < 2:
            return []
        return [j for j, u in enumerate(self.slices) if u > self.move]

    def propose(
        self, kind: float, pick: float, pick2: float, step_prob: float
    ) -> tuple[float, tuple[int, ...]]:
        """A random neighbour as (ΔU, the change): ("step", j, new index) or
        ("share", donor, receiver); three uniforms in [0, 1) choose it."""
        donors = self.donors()
        if self.steppable and (kind < step_prob or not donors):
            j = self.steppable[int(pick * len(self.steppable))]
            new = self.index[j] + (1 if pick2 < 0.5 else -1)
            if not 0 <= new < self.sizes[j]:
                new = self.index[j] - (new - self.index[j])
            t, u = self.tables[j], self.slices[j]
            return t[new][u] - t[self.index[j]][u], (0, j, new)
        donor = donors[int(pick * len(donors))]
        others = [j for j in range(len(self.slices)) if j != donor]
        receiver = others[int(pick2 * len(others))]
        td, tr = self.tables[donor][self.index[donor]], self.tables[receiver][self.index[receiver]]
        ud, ur = self.slices[donor], self.slices[receiver]
        delta = td[ud - self.move] - td[ud] + tr[ur + self.move] - tr[ur]
        return delta, (1, donor, receiver)

    def apply(self, change: tuple[int, ...]) -> None:
        kind, a, b = change
        if kind == 0:
            self.index[a] = b
        else:
            self.slices[a] -= self.move
            self.slices[b] += self.move


def _start_temperature(
    state: _State, params: AnnealingConfig, per_task: float, rng: np.random.Generator
) -> float:
    if params.initial_temperature is not None:
        return params.initial_temperature
    draws = rng.random((_CALIBRATION_MOVES, 3))
    deltas = [
        state.propose(kind, pick, pick2, params.step_move_prob)[0] * per_task
        for kind, pick, pick2 in draws.tolist()
    ]
    worse = [-d for d in deltas if d < 0]
    scale = float(np.mean(worse)) if worse else float(np.mean(np.abs(deltas)))
    if not scale > 0:
        return 1.0  # a flat landscape: any temperature gives the same result
    return scale / -math.log(params.initial_acceptance)


def anneal(
    problem: AllocationProblem, params: AnnealingConfig, rng: np.random.Generator | None = None
) -> Allocation:
    """The best allocation the annealing visits; `rng` defaults to one seeded with
    `params.seed`. `Allocation.evaluations` counts the neighbours tried."""
    rng = np.random.default_rng(params.seed) if rng is None else rng
    zeros = [0] * len(problem.models)
    if not problem.active:
        return from_slices(problem, zeros, zeros, 0)
    state = _State(problem, params.slices_per_move)
    current = state.value()
    best, best_state = current, (list(state.index), list(state.slices))
    tried = 0
    if state.can_move():
        per_task = 1.0 / problem.total_tasks
        temperature = _start_temperature(state, params, per_task, rng)
        moves = params.moves_per_temperature
        for _ in range(params.levels):
            draws = rng.random((moves, 4)).tolist()
            for kind, pick, pick2, accept in draws:
                delta, change = state.propose(kind, pick, pick2, params.step_move_prob)
                tried += 1
                if delta >= 0 or accept < math.exp(delta * per_task / temperature):
                    state.apply(change)
                    current += delta
                    if current > best:
                        best, best_state = current, (list(state.index), list(state.slices))
            temperature *= params.cooling
    index, slices = list(zeros), list(zeros)
    for j, m in enumerate(problem.active):
        index[m], slices[m] = best_state[0][j], best_state[1][j]
    return from_slices(problem, index, slices, tried)
