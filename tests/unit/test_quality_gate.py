"""The quality gate's verdict (testbed/quality/gate.py) on measured-like numbers: it
passes a curve that rises and saturates with ranked sizes, and fails each way a
score can be noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from testbed.config import ZooScale
from testbed.config.quality import QualityGateConfig
from testbed.quality.gate import PASSED_METRIC, auroc, judge, paired_gap, quality_gate_passed
from testbed.zoo.catalog import Catalog, ModelEntry, ModelFamily, TensorDType, TensorSpec

STEPS = [1, 2, 4, 8, 16, 32]
N = 400


def _curves(levels: dict[str, float], shape=lambda k: 1 - np.exp(-k / 2.0), noise=3.0, seed=0):
    rng = np.random.default_rng(seed)
    per_request = rng.normal(0, noise, N)  # the request's difficulty, shared (paired)
    scores = {
        m: {k: top * shape(k) + per_request + rng.normal(0, 0.5, N) for k in STEPS}
        for m, top in levels.items()
    }
    frechet = {m: {k: 10.0 / k for k in STEPS} for m in levels}
    return scores, frechet


def _real(separated: bool = True, seed: int = 1):
    rng = np.random.default_rng(seed)
    matched = rng.normal(50 if separated else 10, 10, 300)
    return matched, rng.normal(10, 10, 300)


def _judge(scores, frechet, real=None, cfg=None):
    matched, shuffled = real or _real()
    return judge(scores, frechet, matched, shuffled, 1.0, cfg or QualityGateConfig(steps=STEPS))


def test_a_rising_saturating_ranked_curve_passes():
    report = _judge(*_curves({"s": 20.0, "m": 30.0, "l": 40.0}))
    assert report.passed and report.failures == [] and report.samples == N
    assert [p.steps for p in report.curves["m"]] == STEPS
    assert report.separation_auroc > 0.95 and set(report.rank_gaps) == {"8", "16", "32"}
    assert report.metrics()[PASSED_METRIC] == 1.0


def test_a_flat_curve_fails_the_rise():
    report = _judge(*_curves({"s": 20.0, "m": 30.0, "l": 40.0}, shape=lambda k: 1.0))
    assert not report.passed
    assert sum(f.startswith("rise:") for f in report.failures) == 3


def test_a_curve_still_climbing_fails_saturation():
    report = _judge(*_curves({"s": 20.0, "m": 30.0, "l": 40.0}, shape=lambda k: k / 32))
    assert any(f.startswith("saturation:") and "from 16 to 32" in f for f in report.failures)


def test_a_curve_that_falls_back_fails_saturation():
    def peak(k):  # up to 4 steps, then half of it lost again
        return min(k, 4) / 4 - 0.5 * max(0, np.log2(k / 4)) / 3

    report = _judge(*_curves({"s": 20.0, "m": 30.0, "l": 40.0}, shape=peak))
    assert any("falls" in f for f in report.failures)


def test_sizes_out_of_order_or_within_noise_fail_the_ranking():
    report = _judge(*_curves({"s": 20.0, "m": 40.0, "l": 30.0}))
    assert any(f.startswith("ranking:") and "l − m" in f for f in report.failures)
    report = _judge(*_curves({"s": 20.0, "m": 30.0, "l": 30.01}))
    assert any(f.startswith("ranking:") for f in report.failures)
    assert report.metrics()[PASSED_METRIC] == 0.0


def test_real_pairs_that_score_like_shuffled_ones_fail_the_separation():
    report = _judge(*_curves({"s": 20.0, "m": 30.0, "l": 40.0}), real=_real(separated=False))
    assert [f for f in report.failures if f.startswith("separation:")]


def test_auroc_counts_wins_and_half_ties():
    rng = np.random.default_rng(3)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    brute = np.mean([1.0 if p > q else 0.5 if p == q else 0.0
                     for p, q in itertools.product(pos, neg)])  # fmt: skip
    assert auroc(pos, neg) == pytest.approx(brute)


def test_the_paired_gap_has_the_standard_error_of_the_differences():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    gap, se = paired_gap(a, a + np.array([1.0, 2.0, 1.0, 2.0]))
    assert gap == 1.5 and se == pytest.approx(np.std([1, 2, 1, 2], ddof=1) / 2)


def _evaluator(metrics: dict[str, float]) -> ModelEntry:
    spec = TensorSpec("image", TensorDType.FLOAT32, ["batch", 1, 8, 8])
    return ModelEntry(id="digits-eval", family=ModelFamily.EVALUATOR, version="1",
                      file="digits-eval.onnx", size_bytes=1, sha256="0" * 64,
                      inputs=[spec], outputs=[spec], default_steps=1, flops_per_invocation=1,
                      trained=True, scale=ZooScale.TINY, metrics=metrics)  # fmt: skip


def test_the_catalog_says_whether_the_gate_passed():
    assert quality_gate_passed(Catalog(ZooScale.TINY, [_evaluator({PASSED_METRIC: 1.0})]))
    assert not quality_gate_passed(Catalog(ZooScale.TINY, [_evaluator({PASSED_METRIC: 0.0})]))
    assert not quality_gate_passed(Catalog(ZooScale.TINY, [_evaluator({})]))
    assert not quality_gate_passed(Catalog(ZooScale.TINY, []))
    text = Catalog(ZooScale.TINY, [_evaluator({PASSED_METRIC: 1.0})]).to_json()
    assert quality_gate_passed(Catalog.from_json(text))
