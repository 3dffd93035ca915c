"""From a §B scheduler's decision to what each edge gets (docs/live-loop.md, "Clocked
slots and the §B scheduler"), as pure functions: the whole task's time at each edge,
the finish-together split over the chosen edges (testbed/coedge/split.py) and the
split turned into whole units of work.

On the board a task has `units` units of work (docs/workload.md); edge j takes
a_j = D / r_bj (0 at the home edge) + units × its compute time per unit, after
w_j, the work already ahead of it there. The split's shares x_j become units by the
largest-remainder rule, so they sum to the task's units exactly; an edge left with
0 units gets nothing (no submission), and since the units sum to at least 1 at least
one edge always gets some.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from testbed.coedge.split import split_task

Array = np.ndarray[Any, Any]

MIN_WHOLE_S = 1e-9
"""The least a_j: an edge with nothing measured yet and no transfer still takes time,
and the split rule divides by a_j."""


@dataclass(frozen=True)
class SharePlan:
    """One task's shares: the edges that get units, in edge order."""

    edges: tuple[int, ...]
    """Indices of the edges that get units (ascending)."""
    units: tuple[int, ...]
    """Units per edge of `edges`, summing to the task's units."""
    split: tuple[float, ...]
    """The split rule's x_j over every edge (0 where not chosen or dropped)."""
    planned_finish_s: float
    """The split rule's T: when the chosen edges finish together, as planned."""

    @property
    def shares(self) -> tuple[float, ...]:
        """units_j / units per edge of `edges`: the shares actually sent."""
        total = sum(self.units)
        return tuple(u / total for u in self.units)


def unit_compute_s(
    model_id: str,
    published_ms: Sequence[Mapping[str, float]],
    edge_ghz: Sequence[float] | Array,
    nominal_unit_s_at_1ghz: float,
) -> Array:
    """(B,) each edge's compute seconds per unit of `model_id`: what the edge published
    (its measured moving average), else another edge's measurement scaled by the
    clocks (t_k·f_k / f_j, the mean over those that published), else the nominal
    time per unit at 1 GHz over f_j (the cost model's estimate, docs/workload.md)."""
    ghz = np.asarray(edge_ghz, dtype=np.float64)
    measured = [(k, p[model_id] / 1e3) for k, p in enumerate(published_ms) if model_id in p]
    if measured:
        at_1ghz = float(np.mean([t * ghz[k] for k, t in measured]))
    else:
        at_1ghz = nominal_unit_s_at_1ghz
    out = at_1ghz / ghz
    for k, t in measured:
        out[k] = t
    return out


def whole_task_s(size_mbit: float, units: int, rate_mbps: Array, unit_s: Array) -> Array:
    """a_j (B,): the whole task at each edge, transfer D / r_j (0 where r_j is inf, the
    home edge) then `units` × its compute time per unit; at least `MIN_WHOLE_S`."""
    rate = np.asarray(rate_mbps, dtype=np.float64)
    transfer = np.where(np.isinf(rate), 0.0, size_mbit / rate)
    return np.maximum(transfer + units * np.asarray(unit_s, dtype=np.float64), MIN_WHOLE_S)


def largest_remainder(shares: Array, units: int) -> Array:
    """(B,) int64: `units` whole units in proportion to `shares` (≥ 0, summing to 1):
    each edge its floor, then one more to the largest remainders (ties: lower index)."""
    exact = np.asarray(shares, dtype=np.float64) * units
    out = np.floor(exact).astype(np.int64)
    left = units - int(out.sum())
    if left > 0:
        order = np.argsort(-(exact - out), kind="stable")
        out[order[:left]] += 1
    return out


def plan_task(chosen: Array, whole_s: Array, wait_s: Array, units: int) -> SharePlan:
    """The finish-together split of a task of `units` (≥ 1) units over the edges of the
    (B,) bool mask `chosen` (at least one), with a_j = `whole_s` and w_j = `wait_s`."""
    if units < 1:
        raise ValueError(f"expected units ≥ 1, got {units}")
    split = split_task(np.asarray(whole_s), np.asarray(wait_s), np.asarray(chosen, dtype=bool))
    per_edge = largest_remainder(split.shares, units)
    edges = tuple(int(j) for j in np.flatnonzero(per_edge > 0))
    finish = float(split.finish_s)
    return SharePlan(
        edges=edges,
        units=tuple(int(per_edge[j]) for j in edges),
        split=tuple(float(x) for x in split.shares),
        planned_finish_s=finish if math.isfinite(finish) else 0.0,
    )
