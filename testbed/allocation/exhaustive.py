"""The exact optimum of one slot's allocation over the step grid × the share grid, by
brute force in numpy: the reference the annealing's gap is measured against
(docs/allocation.md, "The exhaustive optimum").

Only Σφ = 1 is searched. It loses nothing against Σφ ≤ 1: a solution that leaves a
slice idle is never better than the same solution with that slice added to any model
with tasks (its latency only falls). A model without tasks gets no share; every model
with tasks gets at least one slice (at φ = 0 its latency is infinite). The shares are
then the compositions of S slices into A parts ≥ 1, C(S − 1, A − 1) of them, and every
one is tried with every combination of the active models' step counts: Π_m |K_m| ×
C(S − 1, A − 1) utilities, each summed from the per-model term tables.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from testbed.allocation.problem import Allocation, AllocationProblem, from_slices

Array = np.ndarray[Any, Any]

MAX_POINTS = 50_000_000
"""Most (steps, shares) points the exhaustive search evaluates (≈ 10 s on one core)."""
_CHUNK_POINTS = 1 << 21
"""Points evaluated at once (bounds the memory to ≈ 16 MiB of float64)."""


def compositions(total: int, parts: int) -> Array:
    """Every way to cut `total` slices into `parts` ordered parts ≥ 1: (count, parts)."""
    if parts < 1 or total < parts:
        return np.zeros((0, max(parts, 0)), dtype=np.int64)
    cuts = np.array(list(itertools.combinations(range(1, total), parts - 1)), dtype=np.int64)
    cuts = cuts.reshape(math.comb(total - 1, parts - 1), parts - 1)  # parts = 1: one empty row
    edges = np.concatenate(
        [np.zeros((len(cuts), 1), np.int64), cuts, np.full((len(cuts), 1), total, np.int64)],
        axis=1,
    )
    return np.diff(edges, axis=1)


def search_size(problem: AllocationProblem) -> int:
    """The number of (steps, shares) points the exhaustive search evaluates."""
    active = problem.active
    if not active:
        return 0
    steps = math.prod(len(problem.models[m].steps) for m in active)
    return steps * math.comb(problem.share_slices - 1, len(active) - 1)


def exhaustive_optimum(problem: AllocationProblem, max_points: int = MAX_POINTS) -> Allocation:
    """The best allocation on the grids (the first in C order among equal utilities).
    Raises ValueError naming the size when the search would pass `max_points`."""
    active = problem.active
    size = search_size(problem)
    if size > max_points:
        raise ValueError(
            f"exhaustive search over {size:,} points (steps × shares for {len(active)} "
            f"models with tasks, {problem.share_slices} share slices) is beyond its "
            f"limit of {max_points:,}: use fewer slices or models, or the annealing"
        )
    zeros = [0] * len(problem.models)
    if not active:
        return from_slices(problem, zeros, zeros, 0)
    comps = compositions(problem.share_slices, len(active))
    tables = [problem.term_table(m) for m in active]
    sizes = [t.shape[0] for t in tables]
    chunk = max(1, _CHUNK_POINTS // math.prod(sizes))
    best_value, best_point = -math.inf, (0, (0,) * len(active))
    for start in range(0, len(comps), chunk):
        block = comps[start : start + chunk]
        total = np.zeros((len(block), *sizes))
        for j, table in enumerate(tables):
            shape = [len(block)] + [1] * len(active)
            shape[1 + j] = sizes[j]
            total = total + table[:, block[:, j]].T.reshape(shape)
        flat = int(np.argmax(total))
        if total.flat[flat] > best_value:
            point = np.unravel_index(flat, total.shape)
            best_value = float(total.flat[flat])
            best_point = (start + int(point[0]), tuple(int(i) for i in point[1:]))
    row, step_index = best_point
    return _allocation(problem, step_index, comps[row], size)


def _allocation(
    problem: AllocationProblem, step_index: Sequence[int], slices: Sequence[int], evaluations: int
) -> Allocation:
    """An Allocation from the active models' grid indices."""
    idx, units = [0] * len(problem.models), [0] * len(problem.models)
    for j, m in enumerate(problem.active):
        idx[m], units[m] = int(step_index[j]), int(slices[j])
    return from_slices(problem, idx, units, evaluations)


def best_shares(problem: AllocationProblem, steps: Sequence[int]) -> Allocation:
    """The best shares on the grid for fixed step counts k_m (exact: every
    composition of the slices over the models with tasks)."""
    active = problem.active
    index = [problem.models[m].steps.index(int(steps[m])) for m in range(len(problem.models))]
    if not active:
        return from_slices(problem, index, [0] * len(problem.models), 0)
    comps = compositions(problem.share_slices, len(active))
    total = np.zeros(len(comps))
    for j, m in enumerate(active):
        total += problem.term_table(m)[index[m], comps[:, j]]
    row = int(np.argmax(total))
    return _allocation(problem, [index[m] for m in active], comps[row], len(comps))
