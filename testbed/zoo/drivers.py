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

import math
import threading
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


class RunState:
    """What one run owns: its payload, its digest and its noise generator.

    Kept apart from the drivers so that one loaded model can serve runs from several
    threads at once (an edge with `parallel_slots` > 1).
    """

    __slots__ = ("digest", "payload", "rng")

    def __init__(self, payload: Payload, digest: _Hash, rng: np.random.Generator) -> None:
        self.payload = payload
        self.digest = digest
        self.rng = rng


_thread = threading.local()


def noise_generator(seed: int) -> np.random.Generator:
    """This thread's PCG64 generator, re-seeded in place with `seed`.

    Re-seeding through the state takes ≈2 µs, creating a generator ≈15 µs: a run of a
    small model would pay that on every task.
    """
    rng = getattr(_thread, "rng", None)
    if rng is None:
        rng = _thread.rng = np.random.Generator(np.random.PCG64(0))
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (seed * 0x9E3779B97F4A7C15 + 1) % (1 << 128), "inc": (seed << 1) | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return rng


class Driver:
    """Turns batches of samples into invocations of one model; built once at load,
    holds nothing of a run (that is `RunState`)."""

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        self.entry = entry
        self.call = call

    def run_batch(self, run: RunState, first_sample: int, batch: int, steps: int) -> int:
        """Generate samples `first_sample … first_sample+batch−1` with `steps` passes
        each (diffusion), hash their outputs into `run.digest`; return the invocations."""
        raise NotImplementedError


class DiffusionSampler(Driver):
    """Reverse diffusion with DDIM: `steps` denoiser calls per batch.

    x_T is Gaussian noise from the run's generator; the context `cond` of each sample
    is read from the payload. The generated trajectories are hashed.
    """

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        super().__init__(entry, call)
        self.x_shape = entry.input("x").sample_shape
        self.cond_size = _numel(entry.input("cond").sample_shape)
        if entry.train_timesteps < 1:
            raise ValueError(f"diffusion model {entry.id!r} has no train_timesteps")
        self.plans: dict[int, DdimPlan] = {}

    def plan(self, steps: int) -> DdimPlan:
        """The DDIM constants of `steps` steps (computed once per step count)."""
        plan = self.plans.get(steps)
        if plan is None:
            plan = self.plans[steps] = ddim_plan(self.entry.train_timesteps, steps)
        return plan

    def run_batch(self, run: RunState, first_sample: int, batch: int, steps: int) -> int:
        plan = self.plan(steps)
        x = run.rng.standard_normal((batch, *self.x_shape), dtype=np.float32)
        cond = run.payload.window(first_sample, batch, self.cond_size).reshape(batch, -1)
        t = np.empty(batch, dtype=np.float32)
        x0 = np.empty_like(x)
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
        run.digest.update(x)
        return steps


class GeneratorSampler(Driver):
    """Conditional GAN sampling: z from the run's generator, `cond` from the payload."""

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        super().__init__(entry, call)
        self.z_size = _numel(entry.input("z").sample_shape)
        self.cond_size = _numel(entry.input("cond").sample_shape)

    def run_batch(self, run: RunState, first_sample: int, batch: int, steps: int) -> int:
        z = run.rng.standard_normal((batch, self.z_size), dtype=np.float32)
        cond = run.payload.window(first_sample, batch, self.cond_size).reshape(batch, -1)
        (sample,) = self.call({"z": z, "cond": cond})
        run.digest.update(sample)
        return 1


class AnomalyScorer(Driver):
    """Anomaly scoring: each sample's sensor window is read from the payload."""

    def __init__(self, entry: ModelEntry, call: Call) -> None:
        super().__init__(entry, call)
        self.x_shape = entry.input("x").sample_shape
        self.x_size = _numel(self.x_shape)

    def run_batch(self, run: RunState, first_sample: int, batch: int, steps: int) -> int:
        x = run.payload.window(first_sample, batch, self.x_size).reshape(batch, *self.x_shape)
        recon, score = self.call({"x": x})
        run.digest.update(recon)
        run.digest.update(score)
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

    def run_batch(self, run: RunState, first_sample: int, batch: int, steps: int) -> int:
        feeds = {}
        for name, dtype, shape in self.inputs:
            n = _numel(shape)
            if dtype is TensorDType.BOOL:
                feeds[name] = np.zeros((batch, *shape), dtype=np.bool_)
            elif dtype in (TensorDType.FLOAT32, TensorDType.FLOAT16):
                block = run.payload.window(first_sample, batch, n)
                feeds[name] = block.astype(dtype.value, copy=False).reshape(batch, *shape)
            else:
                block = run.payload.raw_window(first_sample, batch, n)
                feeds[name] = block.astype(dtype.value).reshape(batch, *shape)
        calls = steps if self.repeat else 1
        outputs: list[np.ndarray] = []
        for _ in range(calls):
            outputs = self.call(feeds)
        for out in outputs:
            run.digest.update(np.ascontiguousarray(out))
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
