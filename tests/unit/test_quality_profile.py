"""The §C profile's pure parts (coordinator/quality_profile.py, coordinator/quality_spec.py):
the Gaussian fit of a category's scores, the equal-load thresholds, the spec's checks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from coordinator.quality_profile import fit_gaussian, load_thresholds
from coordinator.quality_spec import QualityExperimentSpec, load_spec
from testbed.allocation import probabilistic_matrix
from testbed.schema import SchemaError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("mean", "std"), [(21.0, 4.0), (-3.0, 0.5), (60.0, 12.0)])
def test_the_gaussian_fit_recovers_a_known_mean_and_spread(mean: float, std: float) -> None:
    scores = np.random.default_rng(7).normal(mean, std, 20_000)
    fit = fit_gaussian(scores)
    assert fit.n == 20_000
    assert fit.mean == pytest.approx(mean, abs=4 * std / np.sqrt(20_000))
    assert fit.std == pytest.approx(std, rel=0.02)
    assert fit.ks_statistic < 0.015  # normal data: a small KS distance
    assert fit.zero_fraction == pytest.approx(float(np.mean(scores <= 0)))


def test_the_gaussian_fit_says_when_scores_are_not_normal() -> None:
    clipped = np.maximum(np.random.default_rng(1).normal(2.0, 5.0, 5_000), 0.0)
    fit = fit_gaussian(clipped)
    assert fit.ks_statistic > 0.1 and fit.zero_fraction > 0.3
    with pytest.raises(ValueError, match="2 finite"):
        fit_gaussian([1.0])


def test_load_thresholds_split_one_normal_at_its_terciles() -> None:
    theta = load_thresholds([10.0], [2.0], [1.0], [1, 1, 1])
    assert theta == pytest.approx([10.0 - 2.0 * 0.430727, 10.0 + 2.0 * 0.430727], abs=1e-5)


def test_load_thresholds_give_each_model_an_equal_share_of_the_stream() -> None:
    means, stds, weights = [12.0, 25.0, 18.0, 30.0], [3.0, 6.0, 2.0, 8.0], [1.0, 2.0, 1.0, 1.0]
    for loads in ([1, 1], [1, 1, 1], [1, 1, 1, 1], [0.1, 0.45, 0.45], [2, 1, 1]):
        theta = load_thresholds(means, stds, weights, loads)
        assert all(a < b for a, b in itertools.pairwise(theta))
        matrix = probabilistic_matrix(means, stds, theta)
        load = np.asarray(weights) @ matrix / sum(weights)
        assert load == pytest.approx(np.asarray(loads) / sum(loads), abs=1e-9)


def test_the_committed_spec_loads_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    spec = load_spec(REPO / "experiments" / "quality_demo.yaml")
    assert len(spec.seeds) >= 5
    assert spec.generator_ids == ["digits-s", "digits-m", "digits-l"]
    assert isinstance(spec, QualityExperimentSpec)
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {small: digits-s}\nallocation:\n  categories: [{name: basic}]\n")
    with pytest.raises(SchemaError) as err:
        load_spec(bad)
    assert "zoo id for large, medium" in str(err.value)
    assert "the quality categories" in str(err.value)
