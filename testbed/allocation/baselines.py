"""The paper's two allocation baselines (docs/papers.md §C; docs/allocation.md,
"Baselines"):

- Equal-allocation: "all the computation resources of the edge server are equally
  allocated to each model, and only the number of denoising steps is selected":
  φ_m = 1/M for every deployed model (a model without tasks leaves its share idle, as
  a strict partition would), then each model's best steps for that share — exact,
  since with the shares fixed the utility splits into one term per model.
- Optimal-step: "selects the near-optimal step number for each model to guarantee the
  highest score, while only the computation resources are allocated": each model at
  the step count of its best fitted score (the fewest such steps on a tie), then the
  best shares on the share grid for those steps (exact, every composition).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from testbed.allocation.exhaustive import best_shares
from testbed.allocation.problem import Allocation, AllocationProblem, evaluate


def best_steps(problem: AllocationProblem, shares: Sequence[float]) -> list[int]:
    """Each model's best step count for its fixed share φ_m (a model without tasks:
    its largest)."""
    steps = []
    for m, profile in enumerate(problem.models):
        if problem.task_counts[m] == 0 or shares[m] <= 0:
            steps.append(profile.steps[-1])
            continue
        terms = problem.term(m, np.arange(len(profile.steps)), shares[m])
        steps.append(profile.steps[int(np.argmax(terms))])
    return steps


def equal_allocation(problem: AllocationProblem) -> Allocation:
    """φ_m = 1/M for all M models, the best steps for it."""
    shares = [1.0 / len(problem.models)] * len(problem.models)
    return evaluate(problem, best_steps(problem, shares), shares, evaluations=0)


def best_score_steps(problem: AllocationProblem) -> list[int]:
    """Each model's step count of highest fitted score ŝ_m (fewest steps on a tie)."""
    return [p.steps[int(np.argmax(p.score(p.steps)))] for p in problem.models]


def optimal_step(problem: AllocationProblem) -> Allocation:
    """The best-score steps, then the best grid shares for them."""
    return best_shares(problem, best_score_steps(problem))
