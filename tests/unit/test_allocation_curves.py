"""The fitted score curve ŝ(k) = a − b·e^(−k/c) and latency g(k, φ) =
(fixed + per_step·k)/φ (testbed/allocation/score_curve.py)."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.allocation.score_curve import (
    LatencyCurve,
    ScoreCurve,
    fit_latency,
    fit_score_curve,
)

K = np.arange(10, 43, 4)


@pytest.mark.parametrize(("a", "b", "c"), [(33.0, 12.0, 8.0), (0.8, 0.5, 15.0), (70.0, 40.0, 4.0)])
def test_score_fit_recovers_noiseless_parameters(a: float, b: float, c: float) -> None:
    truth = ScoreCurve(a, b, c)
    fit = fit_score_curve(K, truth(K))
    assert fit.curve.ceiling_score == pytest.approx(a, rel=1e-5)
    assert fit.curve.gap_score == pytest.approx(b, rel=1e-4)
    assert fit.curve.scale_steps == pytest.approx(c, rel=1e-4)
    assert fit.r_squared > 1 - 1e-9 and fit.rmse_score < 1e-6
    assert fit.points == K.size


def test_score_fit_on_noisy_repeats_is_close_and_reports_quality() -> None:
    rng = np.random.default_rng(0)
    truth = ScoreCurve(33.0, 12.0, 8.0)
    k = np.repeat(K, 50)
    fit = fit_score_curve(k, truth(k) + rng.normal(0, 0.5, k.size))
    assert fit.curve.ceiling_score == pytest.approx(33.0, abs=0.2)
    assert 0.5 < fit.r_squared < 1.0
    assert fit.rmse_score == pytest.approx(0.5, rel=0.1)
    assert all(0 < s < 1 for s in fit.stderr)


def test_a_falling_series_gives_a_flat_curve_not_a_falling_one() -> None:
    fit = fit_score_curve(K, 30.0 - 0.1 * K)
    assert fit.curve.gap_score >= 0
    assert fit.curve(42) >= fit.curve(10)


def test_score_fit_refuses_too_few_step_counts() -> None:
    with pytest.raises(ValueError, match="3 distinct"):
        fit_score_curve([10, 10, 14], [1.0, 1.1, 1.2])
    assert ScoreCurve.constant(29.0)(np.array([1, 50])).tolist() == [29.0, 29.0]


def test_latency_fit_recovers_linear_in_steps_inverse_in_share() -> None:
    truth = LatencyCurve(0.4, 0.07)
    steps, shares = np.meshgrid(K, [0.1, 0.3, 0.6, 1.0])
    seconds = truth(steps, shares)
    fit = fit_latency(steps, shares, seconds)
    assert fit.curve.fixed_s == pytest.approx(0.4, rel=1e-9)
    assert fit.curve.per_step_s == pytest.approx(0.07, rel=1e-9)
    assert fit.r_squared == pytest.approx(1.0) and fit.points == seconds.size
    assert truth(20, 0.5) == pytest.approx(2 * truth(20, 1.0))
    assert truth(30, 1.0) - truth(20, 1.0) == pytest.approx(10 * 0.07)


def test_latency_fit_refuses_bad_points() -> None:
    with pytest.raises(ValueError, match="2 distinct"):
        fit_latency([10, 10], [0.5, 1.0], [1.0, 0.5])
    with pytest.raises(ValueError, match="shares"):
        fit_latency([10, 14], [0.0, 1.0], [1.0, 0.5])
