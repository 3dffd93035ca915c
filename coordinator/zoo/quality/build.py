"""`build_quality_zoo`: three digit generators and the evaluator, built, gated, catalogued.

Part of `testbed zoo build` (coordinator/zoo/build.py appends these entries after the
IIoT models). The table `QUALITY_ZOO` gives each model's width, depth and training
steps per scale; every model trains on the real training digits
(coordinator/zoo/quality/data.py) from its own seed, `crc32("<seed>:<id>")`, like the
rest of the zoo, so a build is byte-for-byte reproducible. After export the gate is
measured on the ONNX files (coordinator/zoo/quality/measure.py); its verdict goes into
the evaluator's catalog entry and `quality-gate.json` (testbed/quality/gate.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from coordinator.zoo import models as zoo_models
from coordinator.zoo.onnx_info import signature
from coordinator.zoo.quality.data import DigitSet, load_digit_split
from coordinator.zoo.quality.export import export_quality_model
from coordinator.zoo.quality.measure import measure_gate
from coordinator.zoo.quality.models import DigitDenoiser, QualityEvaluator
from coordinator.zoo.quality.train import QualityTrainSettings, train_denoiser, train_evaluator
from testbed.config import ZooScale
from testbed.config.quality import QualityConfig
from testbed.quality.evaluator import BUILTIN_EVALUATOR_ID
from testbed.quality.gate import GATE_FILE, GateReport
from testbed.schema import dump_dataclass
from testbed.zoo.catalog import ModelEntry, ModelFamily, write_atomic

QUALITY_VERSION = "1"
DEFAULT_STEPS = 20
"""A generator's denoising steps unless a request asks for others."""
TRAIN_TIMESTEPS = 1000
QUALITY_THREADS = 1
"""torch threads while training these small models: one is faster than two for them,
and the count is fixed because a matmul's summation order depends on it."""


@dataclass(frozen=True)
class QualityModel:
    """One model of the quality zoo: per scale (width, depth, training steps)."""

    id: str
    evaluator: bool
    description: str
    sizes: dict[ZooScale, tuple[int, int, int]]


_GEN = "digit diffusion model (quality-aware assignment, docs/quality.md): denoiser of"
_DEMO_S, _DEMO_M, _DEMO_L = (64, 1, 2000), (128, 2, 2000), (256, 3, 2000)
QUALITY_ZOO: tuple[QualityModel, ...] = (
    QualityModel("digits-s", False, f"small {_GEN} 8×8 digits given a request condition",
                 {ZooScale.TINY: (32, 1, 600), ZooScale.DEMO: _DEMO_S,
                  ZooScale.PAPER: _DEMO_S}),
    QualityModel("digits-m", False, f"medium {_GEN} 8×8 digits given a request condition",
                 {ZooScale.TINY: (96, 2, 600), ZooScale.DEMO: _DEMO_M,
                  ZooScale.PAPER: _DEMO_M}),
    QualityModel("digits-l", False, f"large {_GEN} 8×8 digits given a request condition",
                 {ZooScale.TINY: (192, 2, 600), ZooScale.DEMO: _DEMO_L,
                  ZooScale.PAPER: _DEMO_L}),
    QualityModel(BUILTIN_EVALUATOR_ID, True,
                 "quality evaluator: 100·max(cos, 0) of learned image and condition "
                 "embeddings, trained on real (condition, digit) pairs only",
                 {ZooScale.TINY: (64, 1, 400), ZooScale.DEMO: (128, 2, 2000),
                  ZooScale.PAPER: (128, 2, 2000)}),
)  # fmt: skip
"""Smallest generator first (the assignment's model order), the evaluator last."""


def _seed(seed: int, model_id: str) -> int:
    """As coordinator/zoo/build.py `model_seed` (not imported: that module imports this)."""
    return zlib.crc32(f"{seed}:{model_id}".encode())


def _train(
    row: QualityModel, scale: ZooScale, seed: int, cfg: QualityConfig, train_data: object
) -> tuple[nn.Module, int, dict[str, float]]:
    width, depth, steps = row.sizes[scale]
    rng_seed = _seed(seed, row.id)
    torch.manual_seed(rng_seed)
    rng = np.random.default_rng(rng_seed)
    settings = QualityTrainSettings(steps=steps, train_timesteps=TRAIN_TIMESTEPS)
    module: nn.Module
    if row.evaluator:
        module = QualityEvaluator(width, depth)
        metrics = train_evaluator(module, train_data, cfg.categories, rng, settings)  # type: ignore[arg-type]
    else:
        module = DigitDenoiser(width, depth)
        metrics = train_denoiser(module, train_data, cfg.categories, rng, settings)  # type: ignore[arg-type]
    return module, steps, metrics


def _entry(
    row: QualityModel, module: nn.Module, scale: ZooScale, seed: int, steps: int,
    metrics: dict[str, float], blob: bytes,
) -> ModelEntry:  # fmt: skip
    inputs, outputs = signature(onnx.load_from_string(blob))
    return ModelEntry(
        id=row.id,
        family=ModelFamily.EVALUATOR if row.evaluator else ModelFamily.DIFFUSION,
        version=QUALITY_VERSION,
        file=f"{row.id}.onnx",
        size_bytes=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        inputs=inputs,
        outputs=outputs,
        default_steps=1 if row.evaluator else DEFAULT_STEPS,
        flops_per_invocation=zoo_models.flops_per_sample(module),
        trained=steps > 0,
        scale=scale,
        description=row.description,
        params=sum(p.numel() for p in module.parameters()),
        train_timesteps=0 if row.evaluator else TRAIN_TIMESTEPS,
        seed=seed,
        train_steps=steps,
        metrics={k: round(v, 6) for k, v in metrics.items()},
    )


def build_quality_zoo(
    scale: ZooScale,
    out_dir: Path,
    seed: int = 0,
    cfg: QualityConfig | None = None,
    progress: Callable[[str], None] = print,
    samples: int | None = None,
) -> tuple[list[ModelEntry], GateReport]:
    """Train, export and gate the quality models into `out_dir`; returns their entries
    (the evaluator's metrics hold the gate's verdict) and the gate's report, also
    written to `out_dir/quality-gate.json`. `samples` overrides `quality.gate.samples`.
    Call inside `deterministic_torch()`: these small models train on one thread."""
    cfg = cfg or QualityConfig()
    train_data, held_out = load_digit_split()
    threads = torch.get_num_threads()
    torch.set_num_threads(QUALITY_THREADS)  # fixed, like the zoo's: it decides the bytes
    try:
        return _build(scale, out_dir, seed, cfg, progress, train_data, held_out, samples)
    finally:
        torch.set_num_threads(threads)


def _build(
    scale: ZooScale, out_dir: Path, seed: int, cfg: QualityConfig,
    progress: Callable[[str], None], train_data: DigitSet, held_out: DigitSet,
    samples: int | None,
) -> tuple[list[ModelEntry], GateReport]:  # fmt: skip
    entries: list[ModelEntry] = []
    for row in QUALITY_ZOO:
        t0 = time.perf_counter()
        module, steps, metrics = _train(row, scale, seed, cfg, train_data)
        meta = {"id": row.id, "family": "evaluator" if row.evaluator else "diffusion",
                "version": QUALITY_VERSION, "scale": scale.value, "seed": str(seed)}  # fmt: skip
        blob = export_quality_model(module, row.evaluator, meta, row.description)
        write_atomic(out_dir / f"{row.id}.onnx", blob)
        entries.append(_entry(row, module, scale, seed, steps, metrics, blob))
        progress(f"  {row.id:<17} {len(blob) / 1e6:6.2f} MB  trained {steps} steps  "
                 f"loss {metrics['loss_first']:.3f} → {metrics['loss_last']:.3f}  "
                 f"{time.perf_counter() - t0:6.1f} s")  # fmt: skip
    t0 = time.perf_counter()
    generators = [(e, out_dir / e.file) for e in entries if e.family is ModelFamily.DIFFUSION]
    report = measure_gate(generators, out_dir / entries[-1].file, held_out, cfg, samples)
    text = json.dumps(dump_dataclass(report), indent=2, ensure_ascii=False) + "\n"
    write_atomic(out_dir / GATE_FILE, text.encode("utf-8"))
    evaluator = entries[-1]
    entries[-1] = dataclasses.replace(evaluator, metrics={**evaluator.metrics, **report.metrics()})
    verdict = "passed" if report.passed else "FAILED: " + "; ".join(report.failures)
    progress(f"  quality gate {verdict} ({time.perf_counter() - t0:.1f} s) → {GATE_FILE}")
    return entries, report
