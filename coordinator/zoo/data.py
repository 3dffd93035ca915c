"""Synthetic IIoT data the zoo trains on, generated in code (numpy, seeded).

Three data sets, one per task family (docs/papers.md §A), all scaled to [-1, 1]:

- `degradation_trajectories`: multichannel sensor trajectories of a rotating machine
  (vibration RMS, bearing temperature, motor current, acoustic emission) under a load,
  an ambient temperature and a wear process that starts at an onset and grows
  exponentially; the context vector holds those four factors (device health prediction).
- `process_recipes`: smooth set-point schedules of a batch process and the product
  quality a fixed nonlinear plant gives for them (process optimisation: the generator
  learns recipes for a target quality).
- `sensor_windows`: windows of normal operation and of five kinds of fault (spike,
  drift, stuck sensor, resonance, dropout) with labels (safety monitoring).
"""

from __future__ import annotations

import enum

import numpy as np

from coordinator.zoo.models import (
    ACTUATORS,
    CONTEXT_SIZE,
    HORIZON,
    QUALITY_SIZE,
    SENSOR_CHANNELS,
    WINDOW_LENGTH,
)

PLANT_SEED = 20_240_601
"""Seed of the fixed plant's weights: part of the data's definition, not of a build."""
NOISE_STD = 0.03
"""Measurement noise of every sensor channel (in the [-1, 1] scale)."""


class Fault(enum.IntEnum):
    """Kinds of anomalous sensor window."""

    NONE = 0
    SPIKE = 1
    DRIFT = 2
    STUCK = 3
    RESONANCE = 4
    DROPOUT = 5


def _machine_signals(
    rng: np.random.Generator, load: np.ndarray, ambient: np.ndarray, wear: np.ndarray
) -> np.ndarray:
    """Sensor channels (n, 4, L) in [-1, 1] from per-sample load, ambient (n,) in [0, 1]
    and a wear curve (n, L) in [0, 1]."""
    n = load.shape[0]
    s = np.linspace(0.0, 1.0, WINDOW_LENGTH)[None, :]
    rpm_cycles = rng.uniform(6.0, 10.0, (n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (n, 1))
    rotation = np.sin(2 * np.pi * rpm_cycles * s + phase)
    load, ambient = load[:, None], ambient[:, None]
    vibration = 0.15 + 0.3 * load + 0.9 * wear + (0.08 + 0.2 * wear) * rotation
    # the bearing heats up with a lag: exponential smoothing of load and wear
    heat = 0.25 * ambient + 0.25 * load + 0.6 * wear
    temperature = np.empty_like(heat)
    temperature[:, 0] = heat[:, 0]
    for i in range(1, WINDOW_LENGTH):
        temperature[:, i] = 0.8 * temperature[:, i - 1] + 0.2 * heat[:, i]
    current = 0.2 + 0.5 * load + 0.3 * wear + 0.05 * np.sin(4 * np.pi * rpm_cycles * s + phase)
    acoustic = 0.1 + 0.8 * wear**2 + 0.05 * np.abs(rotation) * load
    raw = np.stack([vibration, temperature, current, acoustic], axis=1)
    raw += NOISE_STD * rng.standard_normal(raw.shape)
    return np.clip(2 * raw / 1.4 - 1, -1.0, 1.0)


def degradation_trajectories(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor trajectories (n, 4, L) and their context (n, 4), float32 in [-1, 1].

    Context: load, ambient temperature, wear rate, wear onset (each uniform in [0, 1]
    before scaling). Wear is 1 − exp(−k·max(0, s − onset)) with k = 0.5 + 4·rate.
    """
    load, ambient, rate, onset = rng.uniform(0.0, 1.0, (4, n))
    s = np.linspace(0.0, 1.0, WINDOW_LENGTH)[None, :]
    k = (0.5 + 4.0 * rate)[:, None]
    wear = 1 - np.exp(-k * np.maximum(0.0, s - onset[:, None]))
    x = _machine_signals(rng, load, ambient, wear)
    context = np.stack([load, ambient, rate, onset], axis=1) * 2 - 1
    assert context.shape[1] == CONTEXT_SIZE
    return x.astype(np.float32), context.astype(np.float32)


class Plant:
    """A fixed nonlinear batch process: recipe (n, A, H) → quality (n, 4) in (-1, 1).

    Quality depends on each set-point's mean level, trend and variability through a
    two-layer network with fixed weights (seeded by `PLANT_SEED`).
    """

    def __init__(self) -> None:
        rng = np.random.default_rng(PLANT_SEED)
        features = 3 * ACTUATORS
        self.w1 = rng.standard_normal((features, 32)) / np.sqrt(features)
        self.b1 = rng.uniform(-0.5, 0.5, 32)
        self.w2 = rng.standard_normal((32, QUALITY_SIZE)) / np.sqrt(32)

    def quality(self, recipe: np.ndarray) -> np.ndarray:
        level = recipe.mean(axis=2)
        trend = (recipe[:, :, -1] - recipe[:, :, 0]) / 2
        spread = recipe.std(axis=2) * 2
        hidden = np.tanh(np.concatenate([level, trend, spread], axis=1) @ self.w1 + self.b1)
        return np.tanh(1.5 * hidden @ self.w2)


def process_recipes(
    rng: np.random.Generator, n: int, plant: Plant | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Recipes (n, A, H) and the quality they achieve (n, 4), float32 in [-1, 1].

    A recipe is a smooth curve per actuator: a level plus three low-frequency cosines,
    squashed by tanh; the quality carries 2 % measurement noise.
    """
    plant = plant or Plant()
    s = np.linspace(0.0, 1.0, HORIZON)
    basis = np.stack([np.ones_like(s)] + [np.cos(np.pi * f * s) for f in (1, 2, 3)])
    coeffs = rng.standard_normal((n, ACTUATORS, basis.shape[0])) * np.array([0.7, 0.5, 0.3, 0.2])
    recipe = np.tanh(coeffs @ basis)
    quality = plant.quality(recipe) + 0.02 * rng.standard_normal((n, QUALITY_SIZE))
    return recipe.astype(np.float32), np.clip(quality, -1, 1).astype(np.float32)


def sensor_windows(
    rng: np.random.Generator, n: int, anomaly_fraction: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Sensor windows (n, 4, L) float32 in [-1, 1] and fault labels (n,) (`Fault` values).

    Normal windows come from healthy machines (wear ≤ 0.1); a share `anomaly_fraction`
    gets one fault of a kind drawn uniformly, in a random channel.
    """
    load, ambient = rng.uniform(0.0, 1.0, (2, n))
    wear = np.broadcast_to(rng.uniform(0.0, 0.1, (n, 1)), (n, WINDOW_LENGTH))
    x = _machine_signals(rng, load, ambient, wear)
    faults = np.where(
        rng.random(n) < anomaly_fraction, rng.integers(1, len(Fault), n), Fault.NONE
    ).astype(np.int64)
    for i in np.flatnonzero(faults):
        channel = rng.integers(0, SENSOR_CHANNELS)
        start = rng.integers(0, WINDOW_LENGTH // 2)
        span = slice(start, WINDOW_LENGTH)
        match Fault(faults[i]):
            case Fault.SPIKE:
                at = rng.integers(0, WINDOW_LENGTH, 3)
                x[i, channel, at] = rng.choice([-1.0, 1.0], 3)
            case Fault.DRIFT:
                x[i, channel, span] += np.linspace(
                    0.0, rng.uniform(0.5, 1.0), WINDOW_LENGTH - start
                )
            case Fault.STUCK:
                x[i, channel, span] = x[i, channel, start]
            case Fault.RESONANCE:
                s = np.arange(WINDOW_LENGTH - start)
                x[i, channel, span] += 0.4 * np.sin(2 * np.pi * s / rng.uniform(2.5, 4.0))
            case Fault.DROPOUT:
                x[i, channel, span] = -1.0
    return np.clip(x, -1.0, 1.0).astype(np.float32), faults
