"""The quality gate's measurements, on the exported ONNX files (testbed/quality/gate.py).

Requests are drawn from the held-out real digits (never trained on): an image, a
category (uniform over `quality.categories`) and the condition that category's request
makes for it. Every generator samples every request at every gate step count with the
zoo's DDIM sampler (testbed/quality/sampling.py — the edge's code), from the same
starting noise; the evaluator scores each sample against its condition and maps the
samples into its feature space for the Fréchet distance to the held-out images. The
real pairs are the held-out images with their own conditions (matched) and with the
conditions rolled by one after a shuffle (shuffled: a condition of another image).
ONNX Runtime runs on one thread so that the figures, which go into the catalog, are
the same on every rebuild.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from coordinator.zoo.quality.data import DigitSet, conditions_for
from testbed.config.quality import QualityConfig
from testbed.quality.evaluator import BuiltinEvaluator, frechet_distance
from testbed.quality.gate import GateReport, judge
from testbed.quality.sampling import generate
from testbed.zoo.catalog import ModelEntry


def _call(path: Path) -> tuple[object, list[str]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, [o.name for o in session.get_outputs()]


def gate_requests(held_out: DigitSet, cfg: QualityConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(conditions (n, CONDITION_SIZE), category indices (n,)) of the gate's requests."""
    rng = np.random.default_rng(cfg.seed)
    index = rng.integers(0, len(held_out), n)
    return conditions_for(held_out.props.take(index), cfg.categories, rng)


def measure_gate(
    generators: list[tuple[ModelEntry, Path]],
    evaluator_path: Path,
    held_out: DigitSet,
    cfg: QualityConfig,
    samples: int | None = None,
) -> GateReport:
    """Measure and judge the gate: `generators` smallest first, with their files."""
    n = samples or cfg.gate.samples
    evaluator = BuiltinEvaluator(evaluator_path)
    cond, _ = gate_requests(held_out, cfg, n)
    real_features = evaluator.features(held_out.images)
    scores: dict[str, dict[int, np.ndarray]] = {}
    frechet: dict[str, dict[int, float]] = {}
    for entry, path in generators:
        session, outputs = _call(path)

        def call(feeds: dict[str, np.ndarray], s=session, o=outputs) -> list[np.ndarray]:
            return s.run(o, feeds)  # type: ignore[attr-defined,no-any-return]

        scores[entry.id], frechet[entry.id] = {}, {}
        for k in cfg.gate.steps:
            images = generate(entry, call, cond, k, seed=cfg.seed)
            scores[entry.id][k] = evaluator.score(images, cond)
            frechet[entry.id][k] = frechet_distance(evaluator.features(images), real_features)
    rng = np.random.default_rng(cfg.seed + 1)
    real_cond, _ = conditions_for(held_out.props, cfg.categories, rng)
    matched = evaluator.score(held_out.images, real_cond)
    shuffled_cond = np.roll(real_cond[rng.permutation(len(real_cond))], 1, axis=0)
    shuffled = evaluator.score(held_out.images, shuffled_cond)
    half = len(real_features) // 2
    order = rng.permutation(len(real_features))
    real_frechet = frechet_distance(real_features[order[:half]], real_features[order[half:]])
    return judge(scores, frechet, matched, shuffled, real_frechet, cfg.gate)
