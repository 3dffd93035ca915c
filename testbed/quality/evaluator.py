"""Evaluator plug-ins: what scores a generated sample against its request (no torch).

Two kinds (`quality.evaluator`, testbed/config/quality.py):

- `BuiltinEvaluator`: the zoo's `digits-eval` ONNX file (docs/quality.md). Its
  requests are condition vectors (testbed/quality/conditions.py); it returns a score
  on a 0–100 axis (100·max(cos, 0) of its image and condition embeddings) and the
  image tower's features (the space of the Fréchet distance).
- `OperatorClipEvaluator`: an operator's CLIP exported to ONNX (image and text towers
  in one graph, as exporters write it: `pixel_values`, `input_ids`, `attention_mask`
  in; `image_embeds`, `text_embeds` out — names configurable). Its requests are token
  ids the operator's tokenizer made; the score is CLIPScore, 100·w·max(cos, 0).

Both refuse inputs that do not fit (`EvaluatorInputError`) rather than score them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from testbed.config.quality import EvaluatorKind, OperatorClipConfig, QualityConfig
from testbed.quality.conditions import CONDITION_SIZE, IMAGE_SHAPE, condition_problem
from testbed.zoo.catalog import Catalog, UnknownModel

BUILTIN_EVALUATOR_ID = "digits-eval"
"""Catalog id of the zoo's evaluator."""
BUILTIN_INPUTS = ("image", "cond")
BUILTIN_OUTPUTS = ("score", "features")


class EvaluatorInputError(ValueError):
    """Images or requests an evaluator cannot score (wrong shape, count, values)."""


class Evaluator(Protocol):
    """Scores samples against requests; `method` names it in task records."""

    method: str

    def score(self, images: np.ndarray, requests: np.ndarray) -> np.ndarray:
        """(n,) scores on the evaluator's 0–100 axis, one per (image, request) pair."""
        ...

    def features(self, images: np.ndarray) -> np.ndarray:
        """(n, F) image features: the space of the Fréchet distance."""
        ...


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _images(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 1 + len(shape) or tuple(arr.shape[1:]) != shape:
        raise EvaluatorInputError(f"expected images of shape (n, {', '.join(map(str, shape))}), "
                                  f"got {arr.shape}")  # fmt: skip
    if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise EvaluatorInputError("expected finite floating-point images")
    return arr.astype(np.float32, copy=False)


class BuiltinEvaluator:
    """The zoo's evaluator: 8 × 8 images in [-1, 1] and condition vectors."""

    def __init__(self, path: str | Path, threads: int = 1, method: str = "") -> None:
        self.path = Path(path)
        self._session = _session(self.path, threads)
        names = tuple(i.name for i in self._session.get_inputs())
        outputs = tuple(o.name for o in self._session.get_outputs())
        if names != BUILTIN_INPUTS or outputs != BUILTIN_OUTPUTS:
            raise EvaluatorInputError(
                f"{self.path.name} is not a built-in evaluator: inputs {names}, outputs {outputs}"
            )
        self.method = method or f"builtin:{self.path.stem}"

    def _check(self, images: np.ndarray, cond: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        imgs = _images(images, IMAGE_SHAPE)
        if np.abs(imgs).max(initial=0.0) > 1.0 + 1e-3:
            raise EvaluatorInputError("expected images in [-1, 1]")
        cond = np.asarray(cond, dtype=np.float32)
        if problem := condition_problem(cond):
            raise EvaluatorInputError(problem)
        if len(cond) != len(imgs):
            raise EvaluatorInputError(f"{len(imgs)} images but {len(cond)} conditions")
        return imgs, cond

    def _run(self, images: np.ndarray, cond: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        score, features = self._session.run(list(BUILTIN_OUTPUTS), {"image": images, "cond": cond})
        return score, features

    def score(self, images: np.ndarray, requests: np.ndarray) -> np.ndarray:
        imgs, cond = self._check(images, requests)
        return self._run(imgs, cond)[0].astype(np.float64)

    def features(self, images: np.ndarray) -> np.ndarray:
        imgs = _images(images, IMAGE_SHAPE)
        cond = np.full((len(imgs), CONDITION_SIZE), -1.0, dtype=np.float32)
        cond[:, 0] = 1.0  # the features do not depend on the condition
        return self._run(imgs, cond)[1].astype(np.float64)


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = rows.reshape(len(rows), -1).astype(np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


class OperatorClipEvaluator:
    """An operator's CLIP ONNX file: images as its image input wants them, token ids."""

    def __init__(self, cfg: OperatorClipConfig, threads: int = 1) -> None:
        self.cfg = cfg
        self.path = Path(cfg.file)
        if not self.path.is_file():
            raise EvaluatorInputError(f"no CLIP file at {self.path}")
        self._session = _session(self.path, threads)
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        wanted = [cfg.image_input, cfg.text_input] + ([cfg.mask_input] if cfg.mask_input else [])
        missing = [n for n in wanted if n not in inputs]
        missing += [n for n in (cfg.image_output, cfg.text_output) if n not in outputs]
        if missing:
            raise EvaluatorInputError(
                f"{self.path.name} lacks {', '.join(missing)} (has inputs {sorted(inputs)}, "
                f"outputs {sorted(outputs)}): set quality.operator_clip's names"
            )
        dims = inputs[cfg.image_input].shape[1:]
        self.image_shape = tuple(d if isinstance(d, int) else -1 for d in dims)
        self.method = f"operator_clip:{self.path.name}"

    def _image_feeds(self, images: np.ndarray) -> np.ndarray:
        arr = np.asarray(images)
        shape = tuple(arr.shape[1:])
        fits = len(shape) == len(self.image_shape) and all(
            want in (-1, got) for want, got in zip(self.image_shape, shape, strict=True)
        )
        if not fits:
            raise EvaluatorInputError(
                f"expected images of shape (n, {self.image_shape}) (-1: any), got {arr.shape}"
            )
        return _images(arr, shape)

    def _embed(self, images: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        imgs = self._image_feeds(images)
        ids = np.asarray(tokens)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise EvaluatorInputError(f"expected token ids (n, L) of integers, got {ids.shape} "
                                      f"{ids.dtype}")  # fmt: skip
        if len(ids) != len(imgs):
            raise EvaluatorInputError(f"{len(imgs)} images but {len(ids)} token rows")
        feeds = {self.cfg.image_input: imgs, self.cfg.text_input: ids.astype(np.int64)}
        if self.cfg.mask_input:
            feeds[self.cfg.mask_input] = (ids != 0).astype(np.int64)
        image_emb, text_emb = self._session.run([self.cfg.image_output, self.cfg.text_output],
                                                feeds)  # fmt: skip
        return _unit(image_emb), _unit(text_emb)

    def score(self, images: np.ndarray, requests: np.ndarray) -> np.ndarray:
        image_emb, text_emb = self._embed(images, requests)
        cos = (image_emb * text_emb).sum(axis=1)
        return 100.0 * self.cfg.weight * np.maximum(cos, 0.0)

    def features(self, images: np.ndarray) -> np.ndarray:
        imgs = self._image_feeds(images)
        tokens = np.ones((len(imgs), 1), dtype=np.int64)
        return self._embed(imgs, tokens)[0]


def open_evaluator(cfg: QualityConfig, catalog: Catalog, threads: int = 1) -> Evaluator:
    """The evaluator `quality.evaluator` selects: the operator's CLIP file, or the
    built-in one of `catalog` (a catalog loaded from its folder). Raises
    `EvaluatorInputError` if the chosen one is missing or unfit."""
    if cfg.evaluator is EvaluatorKind.OPERATOR_CLIP:
        return OperatorClipEvaluator(cfg.operator_clip, threads)
    try:
        entry = catalog.get(BUILTIN_EVALUATOR_ID)
        path = catalog.path(BUILTIN_EVALUATOR_ID)
    except (UnknownModel, ValueError) as exc:  # CatalogError is a ValueError
        raise EvaluatorInputError(
            f"no built-in evaluator: {exc} (build the zoo without --no-quality)"
        ) from None
    return BuiltinEvaluator(path, threads, method=f"builtin:{entry.key}")


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (n, F) and b (m, F):
    |μa − μb|² + tr(Σa + Σb − 2(ΣaΣb)^½). Needs n, m ≥ 2."""
    from scipy import linalg

    if len(a) < 2 or len(b) < 2 or a.shape[1] != b.shape[1]:
        raise EvaluatorInputError(f"expected two feature sets (≥ 2, F), got {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(root):
        root = root.real
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))
    return max(value, 0.0)
