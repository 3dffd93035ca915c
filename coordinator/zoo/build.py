"""`build_zoo`: the six models of the zoo, built, trained, exported and catalogued.

The zoo's contents are the table `ZOO`: per model its family and, per scale, the file
size it aims at and its depth; the width is the largest that fits that size. Models
are built in table order, which is the order of the catalog ("models 3→6" experiments
take the first K). A build is deterministic: every model's weights and training data
come from a seed derived from the build seed and the model id, torch runs on a fixed
number of threads with deterministic algorithms, and the catalog holds nothing that
depends on time or paths — the same seed, scale and package versions on the same
machine give byte-identical files (docs/zoo.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from coordinator.zoo import models
from coordinator.zoo.export import export_onnx
from coordinator.zoo.onnx_info import signature
from coordinator.zoo.train import TRAINERS, TrainSettings
from testbed.config import ZooScale
from testbed.zoo.catalog import Catalog, ModelEntry, ModelFamily, write_atomic

ZOO_VERSION = "1"
"""Version of every model this code builds; bump it when a model changes."""
DEFAULT_DIFFUSION_STEPS = 20
"""Denoising steps of a diffusion sample unless a task asks for others."""
BUILD_THREADS = 2
"""torch threads of a build: fixed, as the summation order of a matmul may depend on it."""
UNTRAINED_SCALES = frozenset({ZooScale.PAPER})
"""Scales whose models keep their initial weights unless training is asked for."""


class ZooBuildError(Exception):
    """A build that cannot proceed (e.g. an output folder that is not writable)."""


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: its family, what it is for, and its size per scale."""

    id: str
    family: ModelFamily
    description: str
    sizes: dict[ZooScale, tuple[float, int]] = field(
        metadata={"doc": "Per scale: target file size in MB (10^6 bytes), depth."}
    )

    @property
    def default_steps(self) -> int:
        return DEFAULT_DIFFUSION_STEPS if self.family is ModelFamily.DIFFUSION else 1

    def spec(self, scale: ZooScale) -> models.ModelSpec:
        """Width and depth at `scale` (the widest model within the target size)."""
        target_mb, depth = self.sizes[scale]
        width = models.width_for(self.family, depth, int(target_mb * 1e6))
        return models.ModelSpec(self.family, width, depth)


_TRAJ = "sensor-trajectory diffusion model (device health prediction): denoiser of"
_RECIPE = "conditional GAN generator (process optimisation): set-point schedules for"
_SCORE = "autoencoder anomaly scorer (safety monitoring): reconstruction error of"

ZOO: tuple[ZooModel, ...] = (
    ZooModel(
        "diffusion-s",
        ModelFamily.DIFFUSION,
        f"{_TRAJ} 4-channel × 64-step trajectories given an operating context",
        {ZooScale.TINY: (0.6, 2), ZooScale.DEMO: (6.0, 3), ZooScale.PAPER: (95.0, 4)},
    ),
    ZooModel(
        "cgan-s",
        ModelFamily.CGAN,
        f"{_RECIPE} 6 actuators × 16 steps from a target quality",
        {ZooScale.TINY: (0.9, 2), ZooScale.DEMO: (9.0, 3), ZooScale.PAPER: (120.0, 4)},
    ),
    ZooModel(
        "ae-s",
        ModelFamily.AUTOENCODER,
        f"{_SCORE} 4-channel × 64-step sensor windows",
        {ZooScale.TINY: (1.2, 1), ZooScale.DEMO: (12.0, 2), ZooScale.PAPER: (150.0, 3)},
    ),
    ZooModel(
        "diffusion-l",
        ModelFamily.DIFFUSION,
        f"larger {_TRAJ} 4-channel × 64-step trajectories given an operating context",
        {ZooScale.TINY: (2.4, 3), ZooScale.DEMO: (16.0, 4), ZooScale.PAPER: (180.0, 6)},
    ),
    ZooModel(
        "cgan-l",
        ModelFamily.CGAN,
        f"larger {_RECIPE} 6 actuators × 16 steps from a target quality",
        {ZooScale.TINY: (3.0, 3), ZooScale.DEMO: (22.0, 4), ZooScale.PAPER: (215.0, 6)},
    ),
    ZooModel(
        "ae-l",
        ModelFamily.AUTOENCODER,
        f"larger {_SCORE} 4-channel × 64-step sensor windows",
        {ZooScale.TINY: (3.8, 2), ZooScale.DEMO: (28.0, 3), ZooScale.PAPER: (245.0, 4)},
    ),
)


def model_seed(seed: int, model_id: str) -> int:
    """The seed of one model's weights and data, from the build seed and the id."""
    return zlib.crc32(f"{seed}:{model_id}".encode())


@contextlib.contextmanager
def deterministic_torch(threads: int = BUILD_THREADS) -> Iterator[None]:
    """Fixed thread count and deterministic algorithms; restores both afterwards."""
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


@dataclass
class BuiltModel:
    """A model built and (maybe) trained, not yet exported."""

    row: ZooModel
    spec: models.ModelSpec
    module: nn.Module
    train_steps: int
    metrics: dict[str, float]


def build_model(row: ZooModel, scale: ZooScale, seed: int, train_steps: int) -> BuiltModel:
    """Initialise `row`'s model at `scale` from the seed and train it `train_steps` steps.

    Call inside `deterministic_torch()` for reproducible weights.
    """
    spec = row.spec(scale)
    rng_seed = model_seed(seed, row.id)
    torch.manual_seed(rng_seed)
    module = models.create(spec)
    metrics: dict[str, float] = {}
    if train_steps > 0:
        settings = TrainSettings(steps=train_steps)
        module.train()
        metrics = TRAINERS[row.family](module, np.random.default_rng(rng_seed), settings)
    module.eval()
    return BuiltModel(row, spec, module, train_steps, metrics)


def built_with() -> dict[str, str]:
    """Versions of the packages that decide the bytes of a build."""
    names = ("torch", "onnx", "numpy")
    return {name: importlib.metadata.version(name) for name in names}


def _entry(built: BuiltModel, scale: ZooScale, seed: int, file: str, blob: bytes) -> ModelEntry:
    inputs, outputs = signature(onnx.load_from_string(blob))
    row = built.row
    return ModelEntry(
        id=row.id,
        family=row.family,
        version=ZOO_VERSION,
        file=file,
        size_bytes=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        inputs=inputs,
        outputs=outputs,
        default_steps=row.default_steps,
        flops_per_invocation=models.flops_per_sample(built.module),
        trained=built.train_steps > 0,
        scale=scale,
        description=row.description,
        params=sum(p.numel() for p in built.module.parameters()),
        train_timesteps=TrainSettings().train_timesteps
        if row.family is ModelFamily.DIFFUSION
        else 0,
        seed=seed,
        train_steps=built.train_steps,
        metrics={k: round(v, 6) for k, v in built.metrics.items()},
    )


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ZooBuildError(f"cannot write the zoo to {out_dir}: {exc.strerror or exc}") from None


def build_zoo(
    scale: ZooScale,
    out_dir: Path,
    seed: int = 0,
    train_steps: int | None = 200,
    progress: Callable[[str], None] = print,
    quality: bool = False,
) -> Catalog:
    """Build every model of `ZOO` at `scale` into `out_dir` and write its `catalog.json`.

    `train_steps` trains each model that many steps; None means the scale's default:
    200 steps, none at the paper scale (its models keep their seeded initial weights).
    `quality` appends the quality zoo (three digit generators and the evaluator, always
    trained, and the quality gate: coordinator/zoo/quality/build.py, docs/quality.md).
    Raises `ZooBuildError` if `out_dir` cannot be written.
    """
    out_dir = Path(out_dir)
    _check_writable(out_dir)
    if train_steps is None:
        train_steps = 0 if scale in UNTRAINED_SCALES else TrainSettings().steps
    entries = []
    start = time.perf_counter()
    progress(f"building the {scale.value} zoo ({len(ZOO)} models, seed {seed}) in {out_dir}")
    with deterministic_torch():
        for row in ZOO:
            t0 = time.perf_counter()
            built = build_model(row, scale, seed, train_steps)
            metadata = {
                "id": row.id,
                "family": row.family.value,
                "version": ZOO_VERSION,
                "scale": scale.value,
                "seed": str(seed),
            }
            blob = export_onnx(built.module, row.family, metadata, row.description)
            file = f"{row.id}.onnx"
            write_atomic(out_dir / file, blob)
            entry = _entry(built, scale, seed, file, blob)
            entries.append(entry)
            trained = f"trained {train_steps} steps" if entry.trained else "untrained"
            progress(
                f"  {row.id:<12} {entry.size_mb:8.2f} MB  {entry.params / 1e6:7.2f} M params  "
                f"{entry.flops_per_invocation / 1e6:8.2f} MFLOP/inv  sha256 {entry.sha256[:12]}  "
                f"{trained:<17} {time.perf_counter() - t0:6.1f} s"
            )
        if quality:
            from coordinator.zoo.quality.build import build_quality_zoo

            entries += build_quality_zoo(scale, out_dir, seed, progress=progress)[0]
    catalog = Catalog(scale, entries, built_with())
    path = catalog.save(out_dir)
    total_mb = sum(e.size_mb for e in entries)
    progress(
        f"built {len(entries)} models ({total_mb:.1f} MB) in "
        f"{time.perf_counter() - start:.1f} s → {path}"
    )
    return catalog
