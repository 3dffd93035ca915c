"""The diffusion noise schedule and the DDIM sampler's per-step coefficients (numpy).

One source for both sides: the coordinator trains the zoo's denoisers with
`alpha_bar`, the runtime samples with `ddim_plan`. The schedule is the cosine schedule
of Nichol & Dhariwal (2021); the sampler is deterministic DDIM (η = 0) with the
predicted clean sample clipped to [-1, 1], as the zoo's training data lies in there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

COSINE_OFFSET = 0.008
"""The small offset `s` of the cosine schedule (keeps β near t = 0 from vanishing)."""
MAX_BETA = 0.999
"""Largest β, so that ᾱ never reaches 0 at the last timestep."""
CLIP_X0 = 1.0
"""The predicted clean sample is clipped to ±this (the training data's range)."""


def alpha_bar(train_timesteps: int) -> np.ndarray:
    """ᾱ_τ = Π_{s≤τ} (1 − β_s) for τ = 0..T−1 (float64, decreasing from ≈1 to ≈0)."""
    if train_timesteps < 1:
        raise ValueError(f"train_timesteps must be ≥ 1, got {train_timesteps}")
    steps = np.arange(train_timesteps + 1, dtype=np.float64) / train_timesteps
    f = np.cos((steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    betas = np.minimum(1 - f[1:] / f[:-1], MAX_BETA)
    return np.cumprod(1 - betas)


def time_input(timestep: int | np.ndarray, train_timesteps: int) -> np.ndarray:
    """The denoiser's `t` input for integer timestep(s) τ: τ / T as float32."""
    return np.asarray(np.asarray(timestep, dtype=np.float64) / train_timesteps, dtype=np.float32)


@dataclass(frozen=True)
class DdimPlan:
    """Per-step constants of a DDIM run of `steps` denoiser calls.

    For step i with ᾱ = a and the next ᾱ = a' (1 after the last step):
    x0 = clip((x − √(1−a)·ε) / √a) and x ← r·x + c·x0, where r = √(1−a') / √(1−a)
    and c = √a' − r·√a. This is η = 0 DDIM with ε recomputed from the clipped x0,
    which keeps untrained (random) denoisers numerically bounded.
    """

    timesteps: np.ndarray
    """Integer timesteps τ_i, descending from T−1 to 0."""
    t_input: np.ndarray
    """The denoiser's `t` input per step (float32)."""
    sqrt_one_minus_a: np.ndarray
    """√(1−ᾱ_τi) per step."""
    inv_sqrt_a: np.ndarray
    """1 / √ᾱ_τi per step."""
    keep: np.ndarray
    """r per step: the weight of the current x."""
    x0_weight: np.ndarray
    """c per step: the weight of the clipped clean-sample estimate."""


def ddim_plan(train_timesteps: int, steps: int) -> DdimPlan:
    """The constants of a `steps`-step DDIM run over a T = `train_timesteps` schedule.

    Steps are evenly spaced over [T−1, 0]; more steps than T repeat timesteps (the
    cost is still paid, the sample does not change on a repeat).
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    abar = alpha_bar(train_timesteps)
    timesteps = np.round(np.linspace(train_timesteps - 1, 0, steps)).astype(np.int64)
    a = abar[timesteps]
    a_next = np.append(abar[timesteps[1:]], 1.0)
    sqrt_1ma = np.sqrt(1 - a)
    keep = np.sqrt(1 - a_next) / sqrt_1ma
    return DdimPlan(
        timesteps=timesteps,
        t_input=time_input(timesteps, train_timesteps),
        sqrt_one_minus_a=sqrt_1ma.astype(np.float32),
        inv_sqrt_a=(1 / np.sqrt(a)).astype(np.float32),
        keep=keep.astype(np.float32),
        x0_weight=(np.sqrt(a_next) - keep * np.sqrt(a)).astype(np.float32),
    )
