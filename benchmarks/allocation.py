"""Benchmark (issue 13): simulated annealing's time per allocation and its gap to the
exhaustive optimum (docs/allocation.md).

Instances: synthetic slots in the paper's units (CLIPScore-like scores, seconds),
drawn per seed from the ranges in `_RANGES` — not measurements: they stand in for the
fitted curves of the zoo's models until those are measured. A slot has 30 requests of
four categories (μ_c ~ U(28, 36), σ_c ~ U(1, 3)), assigned by the paper's
probabilistic assignment (thresholds 29.5, 33.8, and 36.5 for a fourth model); λ = 0.2,
K = {10, 14, …, 42}, the small model fixed at 1 step (testbed.yaml's defaults of
`allocation:`, testbed/config/allocation.py).

Ours: `anneal` (testbed/allocation/annealing.py) at the default `allocation.annealing`
parameters, seed 0: the gap (U* − U_SA)/|U*| in %, U* from `exhaustive_optimum`
(testbed/allocation/exhaustive.py) on the same slot; the mean over the instances is
the headline, the worst instance and the share solved exactly are in the notes.
Reference: the better of the two baselines (Equal-allocation, Optimal-step) on the
same slots, its mean gap in %. Times: the median wall time of one SA allocation and of
one exhaustive search, and their ratio.

Cases: 3 models with 20 share slices (φ in steps of 0.05, the default), per-task and
queued latency; 3 models with 100 slices; 4 models with 20 slices.
Goal (issue 13): a mean gap ≤ 1 %.

`python -m benchmarks.allocation [--quick]` (quick: 10 instances a case, else 100).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.common import Case, Goal, GoalKind, Result, median, percentile, report, standalone

NAME = "allocation"
GOAL = Goal(GoalKind.BELOW, 1.0, "mean gap < 1 % to the exhaustive optimum")
REQUESTS = 30
_RANGES = (  # per model, smallest first: ceiling a, gap b, scale c, fixed_s, per_step_s
    ((27.0, 30.0), (0.0, 0.0), (1.0, 1.0), (0.02, 0.1), (0.02, 0.06)),
    ((31.0, 34.0), (4.0, 10.0), (4.0, 12.0), (0.1, 0.5), (0.03, 0.08)),
    ((34.0, 37.0), (6.0, 14.0), (6.0, 16.0), (0.3, 1.0), (0.1, 0.25)),
    ((36.0, 39.0), (8.0, 16.0), (8.0, 20.0), (0.6, 1.5), (0.2, 0.4)),
)
THRESHOLDS = (29.5, 33.8, 36.5)


def instance(seed: int, models: int, slices: int, queued: bool) -> Any:
    """One synthetic slot: curves from `_RANGES`, requests assigned probabilistically."""
    import numpy as np

    from testbed.allocation import (
        AllocationProblem,
        LatencyCurve,
        ModelProfile,
        ScoreCurve,
        probabilistic_matrix,
        sample_assignment,
        sample_categories,
        task_counts,
    )
    from testbed.config.allocation import AllocationConfig, SlotLatency

    cfg = AllocationConfig()
    rng = np.random.default_rng(seed)
    profiles = []
    for m, (a, b, c, fixed, step) in enumerate(_RANGES[:models]):
        curve = ScoreCurve(rng.uniform(*a), rng.uniform(*b), rng.uniform(*c))
        steps = (1,) if m == 0 else tuple(cfg.step_grid)
        work = LatencyCurve(rng.uniform(*fixed), rng.uniform(*step))
        profiles.append(ModelProfile(f"m{m}", curve, work, steps))
    means, stds = rng.uniform(28.0, 36.0, 4), rng.uniform(1.0, 3.0, 4)
    matrix = probabilistic_matrix(means, stds, THRESHOLDS[: models - 1])
    assigned = sample_assignment(sample_categories([1.0] * 4, REQUESTS, rng), matrix, rng)
    latency = SlotLatency.QUEUED if queued else SlotLatency.PER_TASK
    return AllocationProblem(tuple(profiles), task_counts(assigned, models),
                             cfg.latency_weight_per_s, slices, latency)  # fmt: skip


def _gap(best: float, found: float) -> float:
    return (best - found) / abs(best) * 100.0


def _case(label: str, instances: int, models: int, slices: int, queued: bool) -> tuple[Case, str]:
    from testbed.allocation import anneal, equal_allocation, exhaustive_optimum, optimal_step
    from testbed.config.allocation import AnnealingConfig

    params = AnnealingConfig()
    gaps, baseline_gaps, sa_s, ex_s, moves = [], [], [], [], []
    for seed in range(instances):
        problem = instance(seed, models, slices, queued)
        t0 = time.perf_counter()
        best = exhaustive_optimum(problem)
        t1 = time.perf_counter()
        found = anneal(problem, params)
        t2 = time.perf_counter()
        ex_s.append(t1 - t0)
        sa_s.append(t2 - t1)
        moves.append(found.evaluations)
        gaps.append(_gap(best.utility, found.utility))
        base = max(equal_allocation(problem).utility, optimal_step(problem).utility)
        baseline_gaps.append(_gap(best.utility, base))
    exact = sum(g <= 1e-9 for g in gaps)
    case = Case(
        label=label, ours=statistics.fmean(gaps), reference=statistics.fmean(baseline_gaps),
        samples=instances,
        details={
            "max_gap_pct": max(gaps), "exact_share": exact / instances,
            "sa_median_s": median(sa_s), "sa_p95_s": percentile(sa_s, 95),
            "exhaustive_median_s": median(ex_s),
            "sa_to_exhaustive_time": median(sa_s) / median(ex_s),
            "sa_moves": statistics.fmean(moves), "exhaustive_points": float(best.evaluations),
        },
    )  # fmt: skip
    note = (
        f"{label}: SA gap mean {case.ours:.3f} %, worst {max(gaps):.3f} %, exact on "
        f"{exact}/{instances}; baselines' best gap mean {case.reference:.2f} %; SA "
        f"{median(sa_s) * 1e3:.2f} ms per allocation (p95 {percentile(sa_s, 95) * 1e3:.2f} ms, "
        f"{statistics.fmean(moves):.0f} moves), exhaustive {median(ex_s) * 1e3:.2f} ms "
        f"({best.evaluations:,} points): SA/exhaustive time {median(sa_s) / median(ex_s):.2f}"
    )
    return case, note


def run(quick: bool) -> Result:
    instances = 10 if quick else 100
    cases, notes = [], []
    for label, models, slices, queued in (
        ("3 models, 20 slices, per-task latency", 3, 20, False),
        ("3 models, 20 slices, queued latency", 3, 20, True),
        ("3 models, 100 slices, per-task latency", 3, 100, False),
        ("4 models, 20 slices, per-task latency", 4, 20, False),
    ):
        case, note = _case(label, instances, models, slices, queued)
        cases.append(case)
        notes.append(note)
    notes.append(
        "instances: synthetic (benchmarks/allocation.py _RANGES, paper units), not measured "
        "curves; SA at the default allocation.annealing parameters, seed 0"
    )
    return report(Result(NAME, "%", GOAL, cases, notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
