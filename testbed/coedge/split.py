"""The split rule of DDRL-AMSA (docs/coedge.md, "The split rule"): the
shares of one task over a chosen set S of edge servers that make them all finish at
the same time, as pure numpy over a batch of tasks.

For each server j: a_j is the whole task's time there (transfer over the core network,
0 at the home server, plus compute) and w_j what j must finish first (its queued work
over its capacity, plus the backlog of the link to it). A share x_j finishes at
x_j·a_j + w_j; asking all of S to finish together at T with Σ x_j = 1 gives

    T = (1 + Σ_{j∈S} w_j/a_j) / Σ_{j∈S} 1/a_j,        x_j = (T − w_j)/a_j.

A server whose wait alone passes T (x_j < 0) is dropped and the rest solved again;
T only falls as servers are dropped, so at most |S| rounds reach the set
{j ∈ S : w_j < T}: the water-filling split, which minimises the task's delay
max_j (x_j·a_j + w_j) over all splits on S. Servers with x_j = 0 finish nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Split:
    """The split of a batch of tasks (…, B over the servers)."""

    shares: Array
    """(…, B) x_j ≥ 0, summing to 1 over each task's kept servers, 0 elsewhere."""
    kept: Array
    """(…, B) bool: the servers of S that got a share (x_j ≥ 0 at the last round)."""
    finish_s: Array
    """(…,) T: when every kept server finishes its share (the task's delay)."""


def whole_task_s(size_mbit: Array, cycles_g: Array, rate_mbps: Array, edge_ghz: Array) -> Array:
    """a_j (…, B): the whole task at each server — transfer D/r_j (0 where r_j is inf,
    the home server) then compute D·C/f_j; `cycles_g` is D·C in Gcycles."""
    size = np.asarray(size_mbit, dtype=np.float64)[..., None]
    cycles = np.asarray(cycles_g, dtype=np.float64)[..., None]
    return size / np.asarray(rate_mbps, dtype=np.float64) + cycles / np.asarray(edge_ghz)


def split_task(whole_s: Array, wait_s: Array, chosen: Array) -> Split:
    """The finish-together split of each task over its chosen servers.

    `whole_s` a_j > 0 and `wait_s` w_j ≥ 0 are (…, B); `chosen` (…, B) bool is S, at
    least one server per task."""
    a = np.asarray(whole_s, dtype=np.float64)
    w = np.asarray(wait_s, dtype=np.float64)
    kept = np.array(chosen, dtype=bool, copy=True)
    if not kept.any(axis=-1).all():
        raise ValueError("every task needs at least one chosen server")
    inv_a = 1.0 / a
    w_inv_a = w * inv_a
    for _ in range(a.shape[-1]):
        finish = _common_finish(inv_a, w_inv_a, kept)
        shares = finish[..., None] * inv_a - w_inv_a
        negative = kept & (shares < 0)
        if not negative.any():
            break
        kept &= ~negative
    shares = np.maximum(shares, 0.0) * kept
    return Split(shares=shares, kept=kept, finish_s=finish)


def _common_finish(inv_a: Array, w_inv_a: Array, kept: Array) -> Array:
    """T of the kept servers: (1 + Σ w_j/a_j) / Σ 1/a_j."""
    return (1.0 + sum_last(w_inv_a * kept)) / sum_last(inv_a * kept)


def sum_last(x: Array) -> Array:
    """Σ over the last axis (einsum: several times numpy's `sum` on a short last axis)."""
    return np.einsum("...j->...", x)


def max_last(x: Array) -> Array:
    """max over the last axis, column by column (numpy's `max` is slow on a short one)."""
    return np.maximum.reduce([x[..., j] for j in range(x.shape[-1])])


def finish_times_s(whole_s: Array, wait_s: Array, shares: Array) -> Array:
    """(…, B) when each server finishes its share x_j·a_j + w_j (w_j where x_j = 0)."""
    return np.asarray(shares) * np.asarray(whole_s) + np.asarray(wait_s)


def task_delay_s(whole_s: Array, wait_s: Array, shares: Array) -> Array:
    """(…,) the task's delay: the latest finish over the servers with a share."""
    finish = finish_times_s(whole_s, wait_s, shares)
    return max_last(np.where(np.asarray(shares) > 0, finish, -np.inf))
