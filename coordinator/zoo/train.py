"""Brief training of the zoo's models on the synthetic IIoT data (coordinator/zoo/data.py).

Each family has its usual objective: ε-prediction (DDPM) for the denoiser, the
non-saturating GAN loss with an MLP discriminator for the generator, reconstruction
error on normal windows for the autoencoder. Every random draw (data, timesteps,
noise) comes from the numpy generator passed in, weights from torch's seeded RNG, so a
build is reproducible. Each returns figures for the catalog's `metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coordinator.zoo import data
from coordinator.zoo.models import ACTUATORS, HORIZON, LATENT_SIZE, QUALITY_SIZE
from testbed.zoo.catalog import ModelFamily
from testbed.zoo.schedule import alpha_bar, time_input


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of the zoo's brief training."""

    steps: int = 200
    """Optimiser steps (0: leave the weights as initialised)."""
    batch_size: int = 64
    """Samples per step, fresh from the generator each step."""
    lr: float = 1e-3
    """Adam learning rate of the denoiser and the autoencoder."""
    gan_lr: float = 2e-4
    """Adam learning rate of the generator and the discriminator (β1 = 0.5)."""
    grad_clip: float = 1.0
    """Largest gradient norm of a step."""
    train_timesteps: int = 1000
    """Timesteps T of the diffusion noise schedule."""
    eval_samples: int = 512
    """Held-out samples of the evaluation figures."""


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, model: nn.Module, clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


def _loss_figures(losses: list[float]) -> dict[str, float]:
    """Mean loss over the first and the last tenth of training."""
    k = max(1, len(losses) // 10)
    return {"loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:]))}


def train_denoiser(
    model: nn.Module, rng: np.random.Generator, settings: TrainSettings
) -> dict[str, float]:
    """DDPM ε-prediction on degradation trajectories given their context."""
    abar = alpha_bar(settings.train_timesteps)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, foreach=True)
    losses = []
    for _ in range(settings.steps):
        x0, context = data.degradation_trajectories(rng, settings.batch_size)
        tau = rng.integers(0, settings.train_timesteps, settings.batch_size)
        noise = rng.standard_normal(x0.shape).astype(np.float32)
        a = abar[tau][:, None, None]
        x_t = (np.sqrt(a) * x0 + np.sqrt(1 - a) * noise).astype(np.float32)
        t = time_input(tau, settings.train_timesteps)
        loss = F.mse_loss(model(_tensor(x_t), _tensor(t), _tensor(context)), _tensor(noise))
        _step(opt, loss, model, settings.grad_clip)
        losses.append(loss.item())
    return _loss_figures(losses)


class _Critic(nn.Module):
    """The GAN's discriminator (used in training only, never exported)."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(ACTUATORS * HORIZON + QUALITY_SIZE, width),
            nn.LeakyReLU(0.2),
            nn.Linear(width, width),
            nn.LeakyReLU(0.2),
            nn.Linear(width, 1),
        )

    def forward(self, recipe: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([recipe.flatten(1), quality], dim=1)).squeeze(1)


def train_generator(
    model: nn.Module, rng: np.random.Generator, settings: TrainSettings
) -> dict[str, float]:
    """Conditional GAN on (recipe, quality) pairs: recipes for a target quality.

    Figures: the losses, and `quality_mae` — the mean absolute error between target
    qualities and what the plant gives for the generated recipes — next to
    `quality_mae_baseline`, the same for real recipes paired with random targets.
    """
    plant = data.Plant()
    critic = _Critic()
    betas = (0.5, 0.999)
    opt_g = torch.optim.Adam(model.parameters(), lr=settings.gan_lr, betas=betas, foreach=True)
    opt_d = torch.optim.Adam(critic.parameters(), lr=settings.gan_lr, betas=betas, foreach=True)
    g_losses, d_losses = [], []
    n = settings.batch_size
    for _ in range(settings.steps):
        recipe, quality = (_tensor(a) for a in data.process_recipes(rng, n, plant))
        z = _tensor(rng.standard_normal((n, LATENT_SIZE)).astype(np.float32))
        fake = model(z, quality)
        real_logits, fake_logits = critic(recipe, quality), critic(fake.detach(), quality)
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        _step(opt_d, d_loss, critic, settings.grad_clip)
        g_loss = F.softplus(-critic(fake, quality)).mean()
        _step(opt_g, g_loss, model, settings.grad_clip)
        g_losses.append(g_loss.item())
        d_losses.append(d_loss.item())
    k = max(1, settings.steps // 10)
    figures = {
        "g_loss_last": float(np.mean(g_losses[-k:])),
        "d_loss_last": float(np.mean(d_losses[-k:])),
    }

    real_recipes, targets = data.process_recipes(rng, settings.eval_samples, plant)
    z_eval = rng.standard_normal((settings.eval_samples, LATENT_SIZE)).astype(np.float32)
    with torch.no_grad():
        generated = model(_tensor(z_eval), _tensor(targets)).numpy()
    figures["quality_mae"] = float(np.abs(plant.quality(generated) - targets).mean())
    shuffled = targets[rng.permutation(settings.eval_samples)]
    figures["quality_mae_baseline"] = float(np.abs(plant.quality(real_recipes) - shuffled).mean())
    return figures


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the boolean labels `positive` (ties: ½)."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def train_autoencoder(
    model: nn.Module, rng: np.random.Generator, settings: TrainSettings
) -> dict[str, float]:
    """Reconstruction of normal windows; then AUROC on held-out normal and faulty ones.

    Figures: the losses, `auroc`, and `score_threshold` — the 99th percentile of the
    score of held-out normal windows (a window above it is flagged).
    """
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, foreach=True)
    losses = []
    for _ in range(settings.steps):
        x, _ = data.sensor_windows(rng, settings.batch_size)
        _, score = model(_tensor(x))
        loss = score.mean()
        _step(opt, loss, model, settings.grad_clip)
        losses.append(loss.item())
    figures = _loss_figures(losses)
    x, faults = data.sensor_windows(rng, settings.eval_samples, anomaly_fraction=0.5)
    with torch.no_grad():
        _, score = model(_tensor(x))
    scores = score.numpy()
    anomalous = faults != data.Fault.NONE
    figures["auroc"] = auroc(scores, anomalous)
    figures["score_threshold"] = float(np.percentile(scores[~anomalous], 99))
    return figures


Trainer = Callable[[nn.Module, np.random.Generator, TrainSettings], dict[str, float]]

TRAINERS: dict[ModelFamily, Trainer] = {
    ModelFamily.DIFFUSION: train_denoiser,
    ModelFamily.CGAN: train_generator,
    ModelFamily.AUTOENCODER: train_autoencoder,
}
"""The training function of each family."""
