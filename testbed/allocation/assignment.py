"""Assigning requests to models by category: the paper's probabilistic assignment
(docs/papers.md §C eqs. 9–10) and its two baselines (docs/allocation.md,
"Assignment").

Category c's score on the reference (medium) model is taken as N(μ_c, σ_c); the
thresholds θ_1 < … < θ_{M−1} cut the score axis into one interval per model, smallest
model lowest, and

    P_cm = Φ((θ_m − μ_c)/σ_c) − Φ((θ_{m−1} − μ_c)/σ_c),   θ_0 = −∞, θ_M = +∞.

Every method is a (C, M) matrix of assignment probabilities (a baseline's rows are
one-hot or uniform), so one sampler serves them all: each request of a stream draws
its model from its category's row with a seeded numpy Generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from testbed.config.allocation import AllocationConfig, DirectRule
from testbed.config.allocation import AssignmentMethod as AssignmentMethod  # the config names it

Array = np.ndarray[Any, Any]


def _checked(means: Any, stds: Any, thresholds: Any) -> tuple[Array, Array, Array]:
    mu = np.asarray(means, dtype=np.float64).ravel()
    sigma = np.asarray(stds, dtype=np.float64).ravel()
    theta = np.asarray(thresholds, dtype=np.float64).ravel()
    if mu.shape != sigma.shape:
        raise ValueError(f"one σ per μ expected: {mu.size} means, {sigma.size} stds")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all() and np.isfinite(theta).all()):
        raise ValueError("means, stds and thresholds must be finite")
    if (sigma <= 0).any():
        raise ValueError("score standard deviations must be > 0")
    if (np.diff(theta) <= 0).any():
        raise ValueError(f"thresholds must be strictly increasing, got {theta.tolist()}")
    return mu, sigma, theta


def probabilistic_matrix(means: Any, stds: Any, thresholds: Any) -> Array:
    """(C, M = len(thresholds) + 1): P_cm, eq. 9; every row sums to 1."""
    from scipy.special import ndtr

    mu, sigma, theta = _checked(means, stds, thresholds)
    edges = np.concatenate([[-np.inf], theta, [np.inf]])
    cdf = ndtr((edges[None, :] - mu[:, None]) / sigma[:, None])  # (C, M + 1)
    return np.diff(cdf, axis=1)


def direct_matrix(means: Any, stds: Any, thresholds: Any, rule: DirectRule) -> Array:
    """(C, M) one-hot: each category to one model — the interval holding μ_c (a μ_c on
    a threshold goes to the lower model, as the intervals are (θ_{m−1}, θ_m]), or the
    largest P_cm (the smaller model on a tie)."""
    mu, sigma, theta = _checked(means, stds, thresholds)
    if rule is DirectRule.MEAN_INTERVAL:
        chosen = np.searchsorted(theta, mu, side="left")
    else:
        chosen = np.argmax(probabilistic_matrix(mu, sigma, theta), axis=1)
    out = np.zeros((mu.size, theta.size + 1))
    out[np.arange(mu.size), chosen] = 1.0
    return out


def random_matrix(categories: int, models: int) -> Array:
    """(C, M) uniform: 1/M everywhere."""
    return np.full((categories, models), 1.0 / models)


def assignment_matrix(
    method: AssignmentMethod,
    means: Any,
    stds: Any,
    thresholds: Any,
    rule: DirectRule = DirectRule.MEAN_INTERVAL,
) -> Array:
    """The (C, M) assignment probabilities of `method`."""
    if method is AssignmentMethod.PROBABILISTIC:
        return probabilistic_matrix(means, stds, thresholds)
    if method is AssignmentMethod.DIRECT:
        return direct_matrix(means, stds, thresholds, rule)
    mu, _, theta = _checked(means, stds, thresholds)
    return random_matrix(mu.size, theta.size + 1)


def matrix_from_config(cfg: AllocationConfig, method: AssignmentMethod) -> Array:
    """`method`'s matrix for the config's categories and thresholds; refuses while a
    category's score distribution is not measured (μ_c, σ_c null)."""
    missing = [c.name for c in cfg.categories if not c.measured]
    if missing and method is not AssignmentMethod.RANDOM:
        raise ValueError(
            f"categories {', '.join(missing)} have no measured score_mean/score_std: "
            "measure them on the reference model first (docs/allocation.md)"
        )
    means = [c.score_mean if c.measured else 0.0 for c in cfg.categories]
    stds = [c.score_std if c.measured else 1.0 for c in cfg.categories]
    return assignment_matrix(method, means, stds, cfg.score_thresholds, cfg.direct_rule)


def sample_categories(weights: Sequence[float], count: int, rng: np.random.Generator) -> Array:
    """`count` request categories (indices) drawn with the relative `weights`."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or (w < 0).any() or not w.sum() > 0:
        raise ValueError("weights must be ≥ 0 with a positive sum")
    return rng.choice(w.size, size=count, p=w / w.sum())


def sample_assignment(categories: Any, matrix: Any, rng: np.random.Generator) -> Array:
    """The model index of each request: a draw from its category's row of `matrix`
    (inverse CDF, one uniform per request, in request order)."""
    cats = np.asarray(categories, dtype=np.int64).ravel()
    probs = np.asarray(matrix, dtype=np.float64)
    if probs.ndim != 2 or (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0):
        raise ValueError("matrix must be (C, M) with rows of probabilities summing to 1")
    if cats.size and (cats.min() < 0 or cats.max() >= probs.shape[0]):
        raise ValueError(f"category indices must lie in [0, {probs.shape[0]})")
    cumulative = np.cumsum(probs, axis=1)[cats]
    u = rng.random(cats.size)
    chosen = (u[:, None] >= cumulative).sum(axis=1)
    return np.minimum(chosen, probs.shape[1] - 1)  # u just below a rounded total of 1


def task_counts(assigned: Any, models: int) -> tuple[int, ...]:
    """N_m: how many requests each model got."""
    counts = np.bincount(np.asarray(assigned, dtype=np.int64).ravel(), minlength=models)
    return tuple(int(n) for n in counts)
