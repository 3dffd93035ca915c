"""Evaluator plug-ins (testbed/quality/evaluator.py): an operator's CLIP ONNX file,
stood in for by a small graph of the same signature written here, and the Fréchet
distance. The zoo's own evaluator is tested on a built zoo
(tests/integration/test_quality_zoo.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from testbed.config import ZooScale  # noqa: E402
from testbed.config.quality import EvaluatorKind, OperatorClipConfig, QualityConfig  # noqa: E402
from testbed.quality.evaluator import (  # noqa: E402
    EvaluatorInputError,
    OperatorClipEvaluator,
    frechet_distance,
    open_evaluator,
)
from testbed.zoo.catalog import Catalog  # noqa: E402

VOCAB, EMB, SIDE = 50, 8, 4


def _clip_file(folder: Path, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """image_embeds = flatten(pixels)·W, text_embeds = mean of token embeddings."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3 * SIDE * SIDE, EMB)).astype(np.float32)
    table = rng.standard_normal((VOCAB, EMB)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["pixel_values"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["image_embeds"]),
        helper.make_node("Gather", ["table", "input_ids"], ["tokens"], axis=0),
        helper.make_node("ReduceMean", ["tokens"], ["text_embeds"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "clip-standin",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["b", 3, SIDE, SIDE]),
         helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "l"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "l"])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["b", EMB]),
         helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["b", EMB])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(table, "table")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / "clip.onnx"
    path.write_bytes(model.SerializeToString())
    return path, w, table


def test_operator_clip_gives_clipscore_of_its_embeddings(tmp_path: Path):
    path, w, table = _clip_file(tmp_path)
    evaluator = OperatorClipEvaluator(OperatorClipConfig(file=str(path)))
    rng = np.random.default_rng(1)
    images = rng.standard_normal((6, 3, SIDE, SIDE)).astype(np.float32)
    tokens = rng.integers(1, VOCAB, (6, 5))
    img = images.reshape(6, -1) @ w
    txt = table[tokens].mean(axis=1)
    cos = (img * txt).sum(1) / np.linalg.norm(img, axis=1) / np.linalg.norm(txt, axis=1)
    expected = 100 * 2.5 * np.maximum(cos, 0)
    assert np.allclose(evaluator.score(images, tokens), expected, atol=1e-3)
    assert (cos < 0).any() and (expected >= 0).all()  # a negative cosine scores 0
    assert evaluator.method == "operator_clip:clip.onnx"
    assert evaluator.features(images).shape == (6, EMB)


def test_operator_clip_refuses_what_does_not_fit(tmp_path: Path):
    path, _, _ = _clip_file(tmp_path)
    evaluator = OperatorClipEvaluator(OperatorClipConfig(file=str(path)))
    images = np.zeros((2, 3, SIDE, SIDE), dtype=np.float32)
    tokens = np.ones((2, 5), dtype=np.int64)
    with pytest.raises(EvaluatorInputError, match="shape"):
        evaluator.score(np.zeros((2, 1, SIDE, SIDE), dtype=np.float32), tokens)
    with pytest.raises(EvaluatorInputError, match="2 images but 3"):
        evaluator.score(images, np.ones((3, 5), dtype=np.int64))
    with pytest.raises(EvaluatorInputError, match="integers"):
        evaluator.score(images, tokens.astype(np.float32))
    with pytest.raises(EvaluatorInputError, match="finite"):
        evaluator.score(np.full_like(images, np.nan), tokens)
    with pytest.raises(EvaluatorInputError, match=r"lacks x \("):
        OperatorClipEvaluator(OperatorClipConfig(file=str(path), text_output="x"))
    with pytest.raises(EvaluatorInputError, match="no CLIP file"):
        OperatorClipEvaluator(OperatorClipConfig(file=str(tmp_path / "none.onnx")))


def test_the_config_selects_the_evaluator(tmp_path: Path):
    path, _, _ = _clip_file(tmp_path)
    cfg = QualityConfig(evaluator=EvaluatorKind.OPERATOR_CLIP,
                        operator_clip=OperatorClipConfig(file=str(path)))  # fmt: skip
    empty = Catalog(ZooScale.TINY, [], root=tmp_path)
    assert isinstance(open_evaluator(cfg, empty), OperatorClipEvaluator)
    with pytest.raises(EvaluatorInputError, match="no built-in evaluator"):
        open_evaluator(QualityConfig(), empty)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([3.0, 0.0, 4.0])
    assert frechet_distance(a, shifted) == pytest.approx(25.0, rel=1e-6)
    wide = a * 2.0  # Σ = 4I against I: tr(I + 4I − 2·2I) = tr(I) = 3
    assert frechet_distance(a, wide) == pytest.approx(3.0, rel=0.05)
    with pytest.raises(EvaluatorInputError):
        frechet_distance(a[:1], a)
