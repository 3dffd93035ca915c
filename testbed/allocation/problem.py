"""One slot's step-and-share allocation problem (docs/papers.md §C eq. 11) and the
utility of a solution, shared by the annealing, the baselines and the exhaustive
optimum (docs/allocation.md, "The model").

Model m has N_m tasks in the slot, a step count k_m from its grid and a share φ_m:

    U(k, φ) = Σ_m [ N_m·ŝ_m(k_m) − λ·F_m·g_m(k_m, φ_m) ],   g_m = work_m(k_m)/φ_m

with F_m = N_m when every task takes g_m (the paper's latency, `per_task`) and
F_m = N_m(N_m + 1)/2 when the tasks of a model queue at its share (`queued`: the n-th
finishes at n·g_m). A model without tasks adds nothing and gets no share. The terms
are separable: `term_table` gives each model's term for every (step, slices) pair,
the tables every solver reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from testbed.allocation.score_curve import LatencyCurve, ScoreCurve
from testbed.config.allocation import SlotLatency

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class ModelProfile:
    """What the allocation knows of one model: its fitted curves and allowed steps."""

    name: str
    score: ScoreCurve
    latency: LatencyCurve
    steps: tuple[int, ...]
    """The step counts it may run, increasing (K, or its one fixed count)."""

    def __post_init__(self) -> None:
        if not self.steps or any(a >= b for a, b in pairwise(self.steps)):
            raise ValueError(f"{self.name}: steps must be non-empty and increasing")


@dataclass(frozen=True)
class AllocationProblem:
    models: tuple[ModelProfile, ...]
    task_counts: tuple[int, ...]
    """N_m: the slot's tasks assigned to each model."""
    latency_weight_per_s: float
    """λ."""
    share_slices: int
    """S: shares are whole multiples of 1/S."""
    slot_latency: SlotLatency = SlotLatency.PER_TASK
    _scores: list[Array] = field(init=False, repr=False, compare=False)
    _work: list[Array] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.models) != len(self.task_counts):
            raise ValueError("one task count per model expected")
        if any(n < 0 for n in self.task_counts):
            raise ValueError("task counts must be ≥ 0")
        if self.share_slices < 1:
            raise ValueError("share_slices must be ≥ 1")
        if len(self.active) > self.share_slices:
            raise ValueError(
                f"{len(self.active)} models have tasks but the share grid has only "
                f"{self.share_slices} slices: each needs at least one"
            )
        object.__setattr__(self, "_scores", [np.asarray(m.score(m.steps)) for m in self.models])
        object.__setattr__(
            self, "_work", [np.asarray(m.latency.work_s(m.steps)) for m in self.models]
        )

    @property
    def active(self) -> list[int]:
        """The models with tasks in the slot (only they get compute)."""
        return [m for m, n in enumerate(self.task_counts) if n > 0]

    @property
    def total_tasks(self) -> int:
        return sum(self.task_counts)

    def latency_factor(self, m: int) -> float:
        """F_m: the slot's summed latency of model m in units of one task's g_m."""
        n = self.task_counts[m]
        return float(n) if self.slot_latency is SlotLatency.PER_TASK else n * (n + 1) / 2.0

    def term(self, m: int, step_index: Any, share: Any) -> Any:
        """Model m's utility term at step index/indices and share(s) φ (−inf at φ = 0
        for a model with tasks; 0 for a model without)."""
        if self.task_counts[m] == 0:
            return np.zeros(np.broadcast(np.asarray(step_index), np.asarray(share)).shape)
        phi = np.asarray(share, dtype=np.float64)
        score = self._scores[m][step_index]
        work = self._work[m][step_index]
        with np.errstate(divide="ignore"):
            latency = np.where(phi > 0, work / np.where(phi > 0, phi, 1.0), np.inf)
        lam = self.latency_weight_per_s
        return self.task_counts[m] * score - lam * self.latency_factor(m) * latency

    def term_table(self, m: int) -> Array:
        """(|K_m|, S + 1): model m's term for every step index and every slice count."""
        slices = np.arange(self.share_slices + 1) / self.share_slices
        return np.asarray(
            self.term(m, np.arange(len(self.models[m].steps))[:, None], slices[None, :])
        )


@dataclass(frozen=True)
class Allocation:
    """A solution and what it gives, per model and in all."""

    steps: tuple[int, ...]
    """k_m (a model without tasks: its largest step count, unused)."""
    shares: tuple[float, ...]
    """φ_m, Σ ≤ 1."""
    utility: float
    """U summed over the slot's tasks."""
    mean_score: tuple[float, ...]
    """ŝ_m(k_m) per model (nan for a model without tasks)."""
    mean_latency_s: tuple[float, ...]
    """The mean latency of model m's tasks (nan without tasks): g_m, or g_m·(N_m + 1)/2
    when queued."""
    evaluations: int = 0
    """Utilities the solver computed to find it."""


def evaluate(
    problem: AllocationProblem, steps: Sequence[int], shares: Sequence[float], evaluations: int = 0
) -> Allocation:
    """The Allocation of steps k_m (each from the model's grid) and shares φ_m."""
    if len(steps) != len(problem.models) or len(shares) != len(problem.models):
        raise ValueError("one step count and one share per model expected")
    if sum(shares) > 1.0 + 1e-9 or any(s < 0 for s in shares):
        raise ValueError(f"shares must be ≥ 0 with Σφ ≤ 1, got {list(shares)}")
    utility, scores, latencies = 0.0, [], []
    for m, profile in enumerate(problem.models):
        if steps[m] not in profile.steps:
            raise ValueError(f"{profile.name}: {steps[m]} steps is not in {profile.steps}")
        i = profile.steps.index(steps[m])
        utility += float(problem.term(m, i, shares[m]))
        n = problem.task_counts[m]
        if n == 0:
            scores.append(float("nan"))
            latencies.append(float("nan"))
            continue
        scores.append(float(problem._scores[m][i]))
        one = float(problem._work[m][i] / shares[m]) if shares[m] > 0 else float("inf")
        latencies.append(one * problem.latency_factor(m) / n)
    return Allocation(
        steps=tuple(int(k) for k in steps), shares=tuple(float(s) for s in shares),
        utility=utility, mean_score=tuple(scores), mean_latency_s=tuple(latencies),
        evaluations=evaluations,
    )  # fmt: skip


def from_slices(
    problem: AllocationProblem, step_index: Sequence[int], slices: Sequence[int], evaluations: int
) -> Allocation:
    """The Allocation of grid indices (step index and slice count per model); a model
    without tasks is reported at its largest step count and no share, whatever given."""
    idle = [n == 0 for n in problem.task_counts]
    steps = [
        p.steps[-1 if idle[m] else int(i)]
        for m, (p, i) in enumerate(zip(problem.models, step_index, strict=True))
    ]
    shares = [0.0 if idle[m] else int(u) / problem.share_slices for m, u in enumerate(slices)]
    return evaluate(problem, steps, shares, evaluations)


def summary_totals(problem: AllocationProblem, allocation: Allocation) -> dict[str, float]:
    """Task-weighted mean score and latency, and the utility per task, of a solution."""
    n = np.asarray(problem.task_counts, dtype=np.float64)
    used = n > 0
    total = float(n.sum()) or 1.0
    return {
        "mean_score": float(np.sum(n[used] * np.asarray(allocation.mean_score)[used]) / total),
        "mean_latency_s": float(
            np.sum(n[used] * np.asarray(allocation.mean_latency_s)[used]) / total
        ),
        "utility_per_task": allocation.utility / total,
    }
