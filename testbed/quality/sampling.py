"""Generating digit samples the way an edge does, and keeping them to score (no torch).

`generate` runs the zoo's own DDIM sampler (testbed/zoo/drivers.py `DiffusionSampler`,
the code an edge runs) on a batch of request conditions, and returns the samples
instead of only hashing them: the conditions travel as a task's payload bytes
(testbed/quality/conditions.py `to_payload`), the noise comes from the sampler's
seeded generator, so the same seed gives every model the same starting noise and
differences between models are paired.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from testbed.quality.conditions import CONDITION_SIZE, condition_problem, to_payload
from testbed.zoo.catalog import ModelEntry
from testbed.zoo.drivers import Call, DiffusionSampler, Payload, RunState, noise_generator


class _KeepSamples:
    """Stands in for a run's digest: keeps what the sampler would hash."""

    def __init__(self) -> None:
        self.samples: list[np.ndarray] = []

    def update(self, data: Any, /) -> None:
        self.samples.append(np.array(data, copy=True))


def generate(entry: ModelEntry, call: Call, cond: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """Samples (n, *x shape) of the diffusion model `entry` for conditions `cond`
    (n, CONDITION_SIZE), `steps` DDIM steps, starting noise from `seed`.

    Raises `ValueError` for malformed conditions or a model whose `cond` input does
    not take them.
    """
    cond = np.asarray(cond, dtype=np.float32)
    if problem := condition_problem(cond):
        raise ValueError(problem)
    sampler = DiffusionSampler(entry, call)
    if sampler.cond_size != CONDITION_SIZE:
        raise ValueError(
            f"model {entry.id!r} takes conditions of {sampler.cond_size} values, "
            f"not {CONDITION_SIZE}"
        )
    n = len(cond)
    payload = Payload(to_payload(cond), units=n, per_sample=CONDITION_SIZE, max_batch=n)
    keep = _KeepSamples()
    sampler.run_batch(RunState(payload, keep, noise_generator(seed)), 0, n, steps)  # type: ignore[arg-type]
    return keep.samples[0]
