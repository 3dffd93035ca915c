"""The quality zoo built for real (coordinator/zoo/quality/): three digit generators and
the evaluator trained on scikit-learn's real digits, exported to ONNX, and the quality
gate measured on the files with the edge's own DDIM sampler. No mocks.

The tiny build takes ≈ 20 s on 2 cores; the demo build (marked slow) a few minutes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from coordinator.zoo.build import deterministic_torch  # noqa: E402
from coordinator.zoo.quality.build import (  # noqa: E402
    QUALITY_THREADS,
    QUALITY_ZOO,
    _train,
    build_quality_zoo,
)
from coordinator.zoo.quality.data import load_digit_split  # noqa: E402
from coordinator.zoo.quality.export import export_quality_model  # noqa: E402
from coordinator.zoo.quality.measure import gate_requests, measure_gate  # noqa: E402
from coordinator.zoo.quality.models import DigitDenoiser  # noqa: E402
from testbed.config import RuntimeKind, ZooScale  # noqa: E402
from testbed.config.quality import QualityConfig  # noqa: E402
from testbed.quality.conditions import to_payload  # noqa: E402
from testbed.quality.evaluator import (  # noqa: E402
    BuiltinEvaluator,
    EvaluatorInputError,
    open_evaluator,
)
from testbed.quality.gate import GATE_FILE, quality_gate_passed  # noqa: E402
from testbed.runtime import ModelRuntime  # noqa: E402
from testbed.zoo.catalog import Catalog, ModelFamily  # noqa: E402

IDS = ["digits-s", "digits-m", "digits-l", "digits-eval"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("quality-tiny")
    with deterministic_torch():
        entries, report = build_quality_zoo(ZooScale.TINY, out, 0, progress=lambda _l: None)
    return out, entries, report


def test_the_tiny_quality_zoo_passes_its_gate(built):
    out, entries, report = built
    assert [e.id for e in entries] == IDS
    assert [e.family for e in entries] == [ModelFamily.DIFFUSION] * 3 + [ModelFamily.EVALUATOR]
    assert report.passed, report.failures
    assert report.separation_auroc >= 0.8 and report.matched_mean > report.shuffled_mean + 10
    for model in IDS[:3]:  # more steps: closer to the real images, and a higher score
        first, last = report.curves[model][0], report.curves[model][-1]
        assert last.score_mean > first.score_mean and last.frechet < first.frechet
    catalog = Catalog(ZooScale.TINY, entries, root=out)
    assert quality_gate_passed(catalog)
    evaluator = open_evaluator(QualityConfig(), catalog)
    assert isinstance(evaluator, BuiltinEvaluator) and evaluator.method == "builtin:digits-eval@1"
    on_disk = json.loads((out / GATE_FILE).read_text())
    assert on_disk["passed"] is True and set(on_disk["curves"]) == set(IDS[:3])
    sizes = [e.params for e in entries[:3]]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


def test_an_edge_runs_a_generator_with_conditions_as_its_payload(built):
    out, entries, _ = built
    medium = entries[1]
    _, held_out = load_digit_split()
    cond, _ = gate_requests(held_out, QualityConfig(), 4)
    model = ModelRuntime(RuntimeKind.CPU, intra_op_threads=1).load(out / medium.file, medium)
    try:
        result = model.run(units=4, steps=3, data=to_payload(cond), max_batch=4)
    finally:
        model.close()
    assert result.units_done == 4 and result.invocations == 3


def test_the_builtin_evaluator_refuses_mismatched_inputs(built):
    out, entries, _ = built
    evaluator = BuiltinEvaluator(out / entries[-1].file)
    _, held_out = load_digit_split()
    cond, _ = gate_requests(held_out, QualityConfig(), 5)
    images = held_out.images[:5]
    assert evaluator.score(images, cond).shape == (5,)
    with pytest.raises(EvaluatorInputError, match="5 images but 4"):
        evaluator.score(images, cond[:4])
    with pytest.raises(EvaluatorInputError, match="shape"):
        evaluator.score(images.reshape(5, 64), cond)
    with pytest.raises(EvaluatorInputError, match=r"\[-1, 1\]"):
        evaluator.score(images * 3, cond)
    with pytest.raises(EvaluatorInputError, match="conditions of shape"):
        evaluator.score(images, cond[:, :10])
    with pytest.raises(EvaluatorInputError, match="not a built-in evaluator"):
        BuiltinEvaluator(out / entries[0].file)


def test_the_gate_fails_generators_that_never_learned(built, tmp_path: Path):
    out, entries, _ = built
    generators = []
    with deterministic_torch(1):
        for i, entry in enumerate(entries[:3]):
            torch.manual_seed(i)
            blob = export_quality_model(DigitDenoiser(16 * (i + 1), 1), False, {}, "")
            (tmp_path / entry.file).write_bytes(blob)
            generators.append((entry, tmp_path / entry.file))
    _, held_out = load_digit_split()
    report = measure_gate(generators, out / entries[-1].file, held_out, QualityConfig(), 128)
    assert not report.passed and report.failures
    assert report.separation_auroc >= 0.8  # the evaluator is still the trained one


def test_a_quality_model_is_byte_for_byte_reproducible():
    train, _ = load_digit_split()
    blobs = []
    for _ in range(2):
        with deterministic_torch(QUALITY_THREADS):
            for row in (QUALITY_ZOO[0], QUALITY_ZOO[-1]):
                short = dataclasses.replace(row, sizes={ZooScale.TINY: (16, 1, 30)})
                module, _, _ = _train(short, ZooScale.TINY, 0, QualityConfig(), train)
                blobs.append(export_quality_model(module, row.evaluator, {"id": row.id}, ""))
    assert blobs[:2] == blobs[2:] and blobs[0] != blobs[1]


@pytest.mark.slow
def test_the_demo_quality_zoo_passes_its_gate(tmp_path: Path):
    with deterministic_torch():
        entries, report = build_quality_zoo(ZooScale.DEMO, tmp_path, 0, progress=lambda _l: None)
    assert report.passed, report.failures
    assert quality_gate_passed(Catalog(ZooScale.DEMO, entries))
    np.testing.assert_array_less(
        [report.curves[m][-1].score_mean for m in IDS[:2]],
        [report.curves[m][-1].score_mean for m in IDS[1:3]],
    )
