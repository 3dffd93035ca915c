"""The third paper's model assignment and step/compute allocation on one edge server
(docs/papers.md §C), as pure functions: docs/allocation.md describes them.

- `assignment`: probabilistic assignment by category (eqs. 9–10), Direct- and
  Random-assignment, a seeded sampler for a stream of requests;
- `score_curve`: the fitted score-vs-steps curve ŝ_m(k) and latency g_m(k, φ);
- `problem`: one slot's allocation problem and the utility of a solution (eq. 11);
- `annealing`: simulated annealing over steps and shares;
- `baselines`: Equal-allocation and Optimal-step;
- `exhaustive`: the exact optimum on the grids, for small instances.
"""

from testbed.allocation.annealing import anneal
from testbed.allocation.assignment import (
    AssignmentMethod,
    assignment_matrix,
    direct_matrix,
    matrix_from_config,
    probabilistic_matrix,
    random_matrix,
    sample_assignment,
    sample_categories,
    task_counts,
)
from testbed.allocation.baselines import best_steps, equal_allocation, optimal_step
from testbed.allocation.exhaustive import best_shares, exhaustive_optimum, search_size
from testbed.allocation.problem import Allocation, AllocationProblem, ModelProfile, evaluate
from testbed.allocation.score_curve import (
    LatencyCurve,
    LatencyFit,
    ScoreCurve,
    ScoreCurveFit,
    fit_latency,
    fit_score_curve,
)

__all__ = [
    "Allocation",
    "AllocationProblem",
    "AssignmentMethod",
    "LatencyCurve",
    "LatencyFit",
    "ModelProfile",
    "ScoreCurve",
    "ScoreCurveFit",
    "anneal",
    "assignment_matrix",
    "best_shares",
    "best_steps",
    "direct_matrix",
    "equal_allocation",
    "evaluate",
    "exhaustive_optimum",
    "fit_latency",
    "fit_score_curve",
    "matrix_from_config",
    "optimal_step",
    "probabilistic_matrix",
    "random_matrix",
    "sample_assignment",
    "sample_categories",
    "search_size",
    "task_counts",
]
