"""The zoo's generative models as torch modules, one class per family.

All three are residual MLPs over the flattened signal (pre-LayerNorm blocks, SiLU),
sized by a `ModelSpec` (width, depth): small enough that tiny models run in
microseconds, and their cost is exactly countable (`flops_per_sample`). Their inputs
and outputs follow the names in `testbed.zoo.drivers`.

- `TrajectoryDenoiser` (diffusion): predicts the noise ε in a noisy multichannel sensor
  trajectory, given the diffusion time and the device's operating context (FiLM).
- `RecipeGenerator` (cgan): maps latent noise and a target product quality to a
  process set-point schedule (actuators × horizon) in [-1, 1].
- `WindowAutoencoder` (autoencoder): reconstructs a sensor window through a narrow
  bottleneck and outputs the per-window anomaly score (mean squared error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from testbed.zoo.catalog import ModelFamily

# Data shapes (coordinator/zoo/data.py generates data of these shapes).
SENSOR_CHANNELS = 4
"""Vibration RMS, bearing temperature, motor current, acoustic emission."""
WINDOW_LENGTH = 64
"""Time steps of a sensor window or trajectory."""
CONTEXT_SIZE = 4
"""Operating context of a trajectory: load, ambient temperature, wear rate, onset."""
LATENT_SIZE = 32
"""Latent noise z of the generator."""
QUALITY_SIZE = 4
"""Target product quality: yield, purity, energy use, throughput."""
ACTUATORS = 6
"""Set-points of a process recipe (e.g. temperature, pressure, feed, speed ...)."""
HORIZON = 16
"""Time steps of a process recipe."""
BOTTLENECK = 32
"""Code size of the autoencoder."""
TIME_FEATURES = 32
"""Sinusoidal features of the diffusion time."""
TIME_SCALE = 1000.0
"""The time input τ/T ∈ [0, 1] is scaled by this before the sinusoids."""
EXPANSION = 2
"""Hidden width of a block's MLP, as a multiple of the model width."""


@dataclass(frozen=True)
class ModelSpec:
    """The size of one model."""

    family: ModelFamily
    width: int
    """Width of the residual stream."""
    depth: int
    """Residual blocks (the autoencoder has `depth` in the encoder and in the decoder)."""


class ResidualBlock(nn.Module):
    """h + W2·SiLU(W1·mod(LN(h))), mod = FiLM from an embedding if `film_width`."""

    def __init__(self, width: int, film_width: int = 0) -> None:
        super().__init__()
        self.width = width
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, EXPANSION * width)
        self.fc2 = nn.Linear(EXPANSION * width, width)
        self.film: nn.Linear | None = nn.Linear(film_width, 2 * width) if film_width else None

    def forward(self, h: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        y = self.norm(h)
        if self.film is not None and emb is not None:
            film = self.film(emb)  # sliced by constants, not chunk(): keeps shapes static
            y = y * (1 + film[:, : self.width]) + film[:, self.width :]
        return h + self.fc2(F.silu(self.fc1(y)))


class TrajectoryDenoiser(nn.Module):
    """ε-prediction network of the diffusion model: (x, t, cond) → eps."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        w = spec.width
        signal = SENSOR_CHANNELS * WINDOW_LENGTH
        half = TIME_FEATURES // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.freqs: torch.Tensor
        self.register_buffer("freqs", freqs * TIME_SCALE, persistent=False)
        self.time_mlp = nn.Sequential(nn.Linear(TIME_FEATURES, w), nn.SiLU(), nn.Linear(w, w))
        self.cond_proj = nn.Linear(CONTEXT_SIZE, w)
        self.inp = nn.Linear(signal, w)
        self.blocks = nn.ModuleList(ResidualBlock(w, film_width=w) for _ in range(spec.depth))
        self.out_norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, signal)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None, :]
        temb = self.time_mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))
        emb = F.silu(temb + self.cond_proj(cond))
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(self.out_norm(h)).view(-1, SENSOR_CHANNELS, WINDOW_LENGTH)


class RecipeGenerator(nn.Module):
    """Generator of the conditional GAN: (z, cond) → sample in [-1, 1]."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        w = spec.width
        self.inp = nn.Linear(LATENT_SIZE + QUALITY_SIZE, w)
        self.blocks = nn.ModuleList(ResidualBlock(w) for _ in range(spec.depth))
        self.out_norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, ACTUATORS * HORIZON)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([z, cond], dim=1))
        for block in self.blocks:
            h = block(h)
        return torch.tanh(self.out(self.out_norm(h))).view(-1, ACTUATORS, HORIZON)


class WindowAutoencoder(nn.Module):
    """Anomaly scorer: x → (recon, score), score = mean over the window of (recon − x)²."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        w = spec.width
        signal = SENSOR_CHANNELS * WINDOW_LENGTH
        self.enc_in = nn.Linear(signal, w)
        self.encoder = nn.ModuleList(ResidualBlock(w) for _ in range(spec.depth))
        self.enc_norm = nn.LayerNorm(w)
        self.enc_out = nn.Linear(w, BOTTLENECK)
        self.dec_in = nn.Linear(BOTTLENECK, w)
        self.decoder = nn.ModuleList(ResidualBlock(w) for _ in range(spec.depth))
        self.dec_norm = nn.LayerNorm(w)
        self.dec_out = nn.Linear(w, signal)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc_in(x.flatten(1))
        for block in self.encoder:
            h = block(h)
        h = self.dec_in(self.enc_out(self.enc_norm(h)))
        for block in self.decoder:
            h = block(h)
        recon = self.dec_out(self.dec_norm(h)).view(-1, SENSOR_CHANNELS, WINDOW_LENGTH)
        score = (recon - x).pow(2).mean(dim=(1, 2))
        return recon, score


_CLASSES: dict[ModelFamily, type[nn.Module]] = {
    ModelFamily.DIFFUSION: TrajectoryDenoiser,
    ModelFamily.CGAN: RecipeGenerator,
    ModelFamily.AUTOENCODER: WindowAutoencoder,
}


def create(spec: ModelSpec) -> nn.Module:
    """A freshly initialised model (torch's default init, from the current RNG state)."""
    return _CLASSES[spec.family](spec)


def param_count(spec: ModelSpec) -> int:
    """Weights of a model of `spec` (counted on the meta device: nothing is allocated)."""
    with torch.device("meta"):
        model = create(spec)
    return sum(p.numel() for p in model.parameters())


def flops_per_sample(model: nn.Module) -> int:
    """FLOPs of one forward pass for one sample: 2 per multiply-add of every Linear.

    Every Linear of these models runs once per sample, so this is exact for the
    matrix products; element-wise work (bias, norms, activations, the score) is left
    out: about 2 % of the total at the tiny scale, under 1 % from the demo scale on.
    """
    return sum(
        2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear)
    )


def width_for(family: ModelFamily, depth: int, target_bytes: int, multiple: int = 8) -> int:
    """The largest width (a multiple of `multiple`) whose float32 weights fit `target_bytes`."""
    lo, hi = multiple, multiple
    while param_count(ModelSpec(family, hi, depth)) * 4 <= target_bytes:
        lo, hi = hi, hi * 2
    if lo == hi:
        raise ValueError(f"{target_bytes} bytes is too small for any {family.value} model")
    while hi - lo > multiple:  # invariant: lo fits, hi does not
        mid = (lo + hi) // 2 // multiple * multiple
        if param_count(ModelSpec(family, mid, depth)) * 4 <= target_bytes:
            lo = mid
        else:
            hi = mid
    return lo
