"""Probabilistic assignment (docs/papers.md §C eqs. 9–10) and its baselines, and the
seeded sampler of a request stream (testbed/allocation/assignment.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from testbed.allocation.assignment import (
    AssignmentMethod,
    assignment_matrix,
    direct_matrix,
    matrix_from_config,
    probabilistic_matrix,
    sample_assignment,
    sample_categories,
    task_counts,
)
from testbed.config.allocation import AllocationConfig, CategoryConfig, DirectRule

MEANS = [28.0, 31.0, 33.0, 36.0]
STDS = [1.5, 2.0, 1.0, 2.5]
THRESHOLDS = [29.5, 33.8]


def _phi(x: float) -> float:
    """The standard normal CDF from math.erf, independent of the module's scipy."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_probabilities_are_normal_cdf_differences_and_sum_to_one() -> None:
    p = probabilistic_matrix(MEANS, STDS, THRESHOLDS)
    assert p.shape == (4, 3)
    for c, (mu, sigma) in enumerate(zip(MEANS, STDS, strict=True)):
        lo, hi = _phi((29.5 - mu) / sigma), _phi((33.8 - mu) / sigma)
        assert p[c, 0] == pytest.approx(lo, abs=1e-12)
        assert p[c, 1] == pytest.approx(hi - lo, abs=1e-12)
        assert p[c, 2] == pytest.approx(1.0 - hi, abs=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert (p >= 0).all()


def test_more_models_take_every_interval() -> None:
    p = probabilistic_matrix([0.0], [1.0], [-1.0, 0.0, 1.0])
    want = [_phi(-1.0), _phi(0.0) - _phi(-1.0), _phi(1.0) - _phi(0.0), 1 - _phi(1.0)]
    np.testing.assert_allclose(p[0], want, atol=1e-12)


def test_a_low_category_goes_mostly_to_the_small_model() -> None:
    p = probabilistic_matrix(MEANS, STDS, THRESHOLDS)
    assert p[0].argmax() == 0 and p[3].argmax() == 2
    assert p[0, 0] > p[1, 0] > p[3, 0]  # lower μ: more mass below θ1


@pytest.mark.parametrize(
    ("means", "stds", "thresholds"),
    [([30.0], [0.0], THRESHOLDS), ([30.0], [1.0], [33.8, 29.5]), ([30.0, 31.0], [1.0], THRESHOLDS),
     ([math.nan], [1.0], THRESHOLDS)],
)  # fmt: skip
def test_bad_inputs_are_refused(
    means: list[float], stds: list[float], thresholds: list[float]
) -> None:
    with pytest.raises(ValueError):
        probabilistic_matrix(means, stds, thresholds)


def test_direct_assignment_by_mean_interval_and_most_likely() -> None:
    d = direct_matrix(MEANS, STDS, THRESHOLDS, DirectRule.MEAN_INTERVAL)
    assert d.argmax(axis=1).tolist() == [0, 1, 1, 2]
    assert (d.sum(axis=1) == 1).all() and set(np.unique(d)) == {0.0, 1.0}
    on_threshold = direct_matrix([29.5], [1.0], THRESHOLDS, DirectRule.MEAN_INTERVAL)
    assert on_threshold.argmax() == 0  # the intervals are (θ_{m−1}, θ_m]
    # μ in the medium interval but σ wide: most of the mass lies outside it
    wide = direct_matrix([33.5], [5.0], THRESHOLDS, DirectRule.MOST_LIKELY)
    p = probabilistic_matrix([33.5], [5.0], THRESHOLDS)
    assert wide.argmax() == p.argmax() == 2


def test_random_assignment_is_uniform() -> None:
    r = assignment_matrix(AssignmentMethod.RANDOM, MEANS, STDS, THRESHOLDS)
    np.testing.assert_array_equal(r, np.full((4, 3), 1 / 3))


def test_sampler_follows_the_rows_and_is_seeded() -> None:
    p = probabilistic_matrix(MEANS, STDS, THRESHOLDS)
    cats = np.repeat(np.arange(4), 20_000)
    a = sample_assignment(cats, p, np.random.default_rng(7))
    b = sample_assignment(cats, p, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    for c in range(4):
        freq = np.bincount(a[cats == c], minlength=3) / 20_000
        # 4.5 binomial standard errors: fails by chance about once in 10^5
        se = np.sqrt(p[c] * (1 - p[c]) / 20_000)
        assert (np.abs(freq - p[c]) <= 4.5 * se + 1e-12).all(), (c, freq, p[c])


def test_sampler_never_picks_a_zero_probability_model() -> None:
    matrix = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]])
    out = sample_assignment(np.array([0, 1] * 5000), matrix, np.random.default_rng(1))
    assert set(out[::2].tolist()) == {1}
    assert 1 not in set(out[1::2].tolist())


def test_categories_and_counts() -> None:
    cats = sample_categories([1.0, 0.0, 3.0], 4000, np.random.default_rng(0))
    assert 1 not in cats
    assert abs((cats == 2).mean() - 0.75) < 0.03
    assert task_counts([0, 2, 2, 1, 2], 4) == (1, 1, 3, 0)


def test_config_refuses_unmeasured_categories() -> None:
    cfg = AllocationConfig()
    with pytest.raises(ValueError, match=r"basic.*no measured"):
        matrix_from_config(cfg, AssignmentMethod.PROBABILISTIC)
    assert matrix_from_config(cfg, AssignmentMethod.RANDOM).shape == (4, 3)
    pairs = enumerate(zip(MEANS, STDS, strict=True))
    measured = AllocationConfig(
        categories=[CategoryConfig(f"c{i}", 1.0, m, s) for i, (m, s) in pairs]
    )
    np.testing.assert_allclose(
        matrix_from_config(measured, AssignmentMethod.PROBABILISTIC),
        probabilistic_matrix(MEANS, STDS, THRESHOLDS),
    )
