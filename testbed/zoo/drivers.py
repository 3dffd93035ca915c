"""How a model is driven: inputs built from a task's payload, and each family's sampler.

A driver turns "run `batch` samples" into model invocations through a `call` function
(one ONNX Runtime `run`), so this module stays free of ONNX Runtime and is tested on
its own. The payload is the task's real data: its bytes, read as uint8 and scaled to
[-1, 1], fill each sample's data-driven inputs cyclically; the noise of the samplers is
seeded from the payload, so different data gives different outputs.

The zoo's input and output names are fixed here; `coordinator.zoo.export` writes
models that follow them and the runtime relies on them.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from testbed.zoo.catalog import ModelEntry, ModelFamily, ModelOrigin, TensorDType
from testbed.zoo.schedule import CLIP_X0, DdimPlan, ddim_plan

# Signatures of the zoo's models (batch dimension first everywhere).
DIFFUSION_INPUTS = ("x", "t", "cond")
"""Denoiser inputs: noisy trajectory (B, channels, length), time τ/T (B,), context (B, K)."""
DIFFUSION_OUTPUTS = ("eps",)
"""Denoiser output: the predicted noise, shaped like `x`."""
CGAN_INPUTS = ("z", "cond")
"""Generator inputs: latent noise (B, Z), target quality (B, Q)."""
CGAN_OUTPUTS = ("sample",)
"""Generator output: a process set-point schedule (B, actuators, horizon) in [-1, 1]."""
AUTOENCODER_INPUTS = ("x",)
"""Scorer input: a sensor window (B, channels, length)."""
AUTOENCODER_OUTPUTS = ("recon", "score")
"""Scorer outputs: the reconstruction (like `x`) and the anomaly score (B,) (mean sq. error)."""

FALLBACK_PAYLOAD = bytes(range(256))
"""Used in place of an empty payload, so a run without data is still deterministic."""

Call = Callable[[dict[str, np.ndarray]], list[np.ndarray]]
"""One model invocation: input name → array, returns the outputs in signature order."""


class Payload:
    """A task's data as a cyclic stream of float32 values in [-1, 1].

    `window(first_sample, n, per_sample)` is the contiguous block of `n · per_sample`
    values that samples `first_sample … first_sample+n−1` read, each sample starting
    `per_sample` values after the previous one (wrapping around the data). Only the
    values a run of `units` samples reads are converted, once; windows are views of
    that buffer, so an invocation copies nothing. The samplers' noise is seeded from a
    CRC-32 of those bytes, so the cost of a run grows with its units, not its payload.
    """

    def __init__(self, data: bytes, units: int, per_sample: int, max_batch: int) -> None:
        raw = np.frombuffer(data or FALLBACK_PAYLOAD, dtype=np.uint8)
        self.size = int(raw.size)
        needed = units * per_sample
        # windows never wrap if the data covers the whole run; else tile one batch over
        self.raw = (
            raw[:needed]
            if needed <= self.size
            else np.resize(raw, self.size + max_batch * per_sample)
        )
        self.values = self.raw.astype(np.float32) * np.float32(2 / 255) - np.float32(1)

    @property
    def seed(self) -> int:
        """CRC-32 of the bytes the run reads (for the samplers that draw noise)."""
        return zlib.crc32(self.raw.data)

    def window(self, first_sample: int, n: int, per_sample: int) -> np.ndarray:
        """Float32 values for `n` samples of `per_sample` values each (a view)."""
        return self._slice(self.values, first_sample, n, per_sample)

    def raw_window(self, first_sample: int, n: int, per_sample: int) -> np.ndarray:
        """The same block as uint8 bytes (for integer inputs)."""
        return self._slice(self.raw, first_sample, n, per_sample)

    def _slice(self, buf: np.ndarray, first_sample: int, n: int, per_sample: int) -> np.ndarray:
        start = (first_sample * per_sample) % self.size
        return buf[start : start + n * per_sample]


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


class Driver:
    """Runs batches of samples of one loaded model; built once per model at load.

    A run calls `begin` with its payload and digest, then `run_batch` per batch.
    """

    uses_noise = False
    """Whether the sampler draws noise (seeded from the payload at `begin`)."""

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        self.entry = entry
        self.call = call
        self.payload = Payload(b"", 0, 1, 1)
        self.digest: _Hash = hashlib.sha256()
        self.rng = np.random.Generator(np.random.PCG64(0))

    def begin(self, payload: Payload, digest: _Hash) -> None:
        """Start a run on `payload`, hashing every output into `digest`."""
        self.payload, self.digest = payload, digest
        if self.uses_noise:
            _reseed(self.rng, payload.seed)

    def run_batch(self, first_sample: int, batch: int, steps: int) -> int:
        """Generate samples `first_sample … first_sample+batch−1` with `steps` passes
        each (diffusion) and hash their outputs; return the number of invocations."""
        raise NotImplementedError


def _reseed(rng: np.random.Generator, seed: int) -> None:
    """Re-seed a PCG64 generator in place (≈2 µs, against ≈15 µs for a new one)."""
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (seed * 0x9E3779B97F4A7C15 + 1) % (1 << 128), "inc": (seed << 1) | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }


class DiffusionSampler(Driver):
    """Reverse diffusion with DDIM: `steps` denoiser calls per batch.

    x_T is Gaussian noise from a generator seeded by the payload; the context `cond`
    of each sample is read from the payload. The generated trajectories are hashed.
    """

    uses_noise = True

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        super().__init__(entry, call)
        self.x_shape = entry.input("x").sample_shape
        self.cond_size = _numel(entry.input("cond").sample_shape)
        if entry.train_timesteps < 1:
            raise ValueError(f"diffusion model {entry.id!r} has no train_timesteps")
        self.t_buf = np.empty(0, dtype=np.float32)
        self.x0_buf = np.empty((0, *self.x_shape), dtype=np.float32)
        self.plans: dict[int, DdimPlan] = {}

    def plan(self, steps: int) -> DdimPlan:
        """The DDIM constants of `steps` steps (computed once per step count)."""
        if steps not in self.plans:
            self.plans[steps] = ddim_plan(self.entry.train_timesteps, steps)
        return self.plans[steps]

    def run_batch(self, first_sample: int, batch: int, steps: int) -> int:
        plan = self.plan(steps)
        if len(self.t_buf) < batch:
            self.t_buf = np.empty(batch, dtype=np.float32)
            self.x0_buf = np.empty((batch, *self.x_shape), dtype=np.float32)
        x = self.rng.standard_normal((batch, *self.x_shape), dtype=np.float32)
        cond = self.payload.window(first_sample, batch, self.cond_size).reshape(batch, -1)
        t, x0 = self.t_buf[:batch], self.x0_buf[:batch]
        feeds = {"x": x, "t": t, "cond": cond}
        for i in range(steps):
            t.fill(plan.t_input[i])
            eps = self.call(feeds)[0]
            # x0 = clip((x − √(1−a)·ε)/√a);  x ← r·x + c·x0  (see DdimPlan)
            np.multiply(eps, plan.sqrt_one_minus_a[i], out=x0)
            np.subtract(x, x0, out=x0)
            x0 *= plan.inv_sqrt_a[i]
            np.clip(x0, -CLIP_X0, CLIP_X0, out=x0)
            x *= plan.keep[i]
            x0 *= plan.x0_weight[i]
            x += x0
        self.digest.update(x)
        return steps


class GeneratorSampler(Driver):
    """Conditional GAN sampling: z from a payload-seeded generator, `cond` from the payload."""

    uses_noise = True

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        super().__init__(entry, call)
        self.z_size = _numel(entry.input("z").sample_shape)
        self.cond_size = _numel(entry.input("cond").sample_shape)

    def run_batch(self, first_sample: int, batch: int, steps: int) -> int:
        z = self.rng.standard_normal((batch, self.z_size), dtype=np.float32)
        cond = self.payload.window(first_sample, batch, self.cond_size).reshape(batch, -1)
        (sample,) = self.call({"z": z, "cond": cond})
        self.digest.update(sample)
        return 1


class AnomalyScorer(Driver):
    """Anomaly scoring: each sample's sensor window is read from the payload."""

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        super().__init__(entry, call)
        self.x_shape = entry.input("x").sample_shape
        self.x_size = _numel(self.x_shape)

    def run_batch(self, first_sample: int, batch: int, steps: int) -> int:
        x = self.payload.window(first_sample, batch, self.x_size).reshape(batch, *self.x_shape)
        recon, score = self.call({"x": x})
        self.digest.update(recon)
        self.digest.update(score)
        return 1


class GenericDriver(Driver):
    """Any operator-registered model: every input is filled from the payload.

    Float inputs get payload values, integer inputs payload bytes, boolean inputs
    False. A diffusion-family model is called `steps` times per batch with the same
    inputs (the real cost of its sampler, not a real sampler); other families once.
    """

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        super().__init__(entry, call)
        self.inputs = [(s.name, s.dtype, s.sample_shape) for s in entry.inputs]
        self.repeat = entry.family is ModelFamily.DIFFUSION

    def run_batch(self, first_sample: int, batch: int, steps: int) -> int:
        feeds = {}
        for name, dtype, shape in self.inputs:
            n = _numel(shape)
            if dtype is TensorDType.BOOL:
                feeds[name] = np.zeros((batch, *shape), dtype=np.bool_)
            elif dtype in (TensorDType.FLOAT32, TensorDType.FLOAT16):
                block = self.payload.window(first_sample, batch, n)
                feeds[name] = block.astype(dtype.value, copy=False).reshape(batch, *shape)
            else:
                block = self.payload.raw_window(first_sample, batch, n)
                feeds[name] = block.astype(dtype.value).reshape(batch, *shape)
        calls = steps if self.repeat else 1
        outputs: list[np.ndarray] = []
        for _ in range(calls):
            outputs = self.call(feeds)
        for out in outputs:
            self.digest.update(np.ascontiguousarray(out))
        return calls


def make_driver(entry: ModelEntry, call: Call) -> Driver:
    """The driver for `entry`: the family's sampler for zoo models, else the generic one.

    Raises `ValueError` if the entry's signature does not suit its driver.
    """
    if entry.origin is ModelOrigin.OPERATOR:
        return GenericDriver(entry, call)
    drivers: dict[ModelFamily, type[Driver]] = {
        ModelFamily.DIFFUSION: DiffusionSampler,
        ModelFamily.CGAN: GeneratorSampler,
        ModelFamily.AUTOENCODER: AnomalyScorer,
    }
    try:
        return drivers[entry.family](entry, call)
    except KeyError as exc:  # a missing input
        raise ValueError(str(exc.args[0])) from None


def values_per_sample(entry: ModelEntry) -> int:
    """Payload values one sample reads at most (its largest input).

    Raises `ValueError` if an input has a symbolic dimension besides the batch.
    """
    return max((_numel(s.sample_shape) for s in entry.inputs), default=1)


class _Hash(Protocol):
    def update(self, data: Any, /) -> None: ...
