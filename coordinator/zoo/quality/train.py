"""Training of the quality zoo on real digits (coordinator/zoo/quality/data.py).

The denoisers learn ε-prediction (DDPM, the zoo's cosine schedule) on real images
paired with a request condition of a random category, so that they learn to fill in
what a request leaves open. The evaluator learns, on real images only, whether a
condition is true of an image: a sigmoid loss over every (image, condition) pair of a
batch (SigLIP-style), with the truth computed from the images' measured properties
(testbed/quality/conditions.py `is_true_of`) — a shuffled condition that happens to be
true is a positive, not a false negative. Every draw comes from the numpy generator
passed in, weights from torch's seeded RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coordinator.zoo.quality.data import DigitSet, conditions_for, request_batch
from coordinator.zoo.quality.models import DigitDenoiser, QualityEvaluator
from testbed.config.quality import QualityCategory
from testbed.quality.conditions import is_true_of
from testbed.zoo.schedule import alpha_bar, time_input


@dataclass(frozen=True)
class QualityTrainSettings:
    """Hyper-parameters of the quality zoo's training (this project's choice)."""

    steps: int
    """Optimiser steps."""
    batch_size: int = 128
    lr: float = 2e-3
    """Adam learning rate, cosine-decayed to 5 % over the steps."""
    grad_clip: float = 1.0
    train_timesteps: int = 1000


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _optimiser(
    model: nn.Module, settings: QualityTrainSettings
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, foreach=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(1, settings.steps), eta_min=settings.lr * 0.05
    )
    return opt, sched


def _figures(losses: list[float]) -> dict[str, float]:
    k = max(1, len(losses) // 10)
    return {"loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:]))}


def train_denoiser(
    model: DigitDenoiser,
    data: DigitSet,
    categories: list[QualityCategory],
    rng: np.random.Generator,
    settings: QualityTrainSettings,
) -> dict[str, float]:
    """DDPM ε-prediction on real digits given request conditions of random categories."""
    abar = alpha_bar(settings.train_timesteps)
    opt, sched = _optimiser(model, settings)
    losses = []
    model.train()
    for _ in range(settings.steps):
        x0, cond, _ = request_batch(data, categories, settings.batch_size, rng)
        tau = rng.integers(0, settings.train_timesteps, settings.batch_size)
        noise = rng.standard_normal(x0.shape).astype(np.float32)
        a = abar[tau][:, None, None, None]
        x_t = (np.sqrt(a) * x0 + np.sqrt(1 - a) * noise).astype(np.float32)
        t = time_input(tau, settings.train_timesteps)
        loss = F.mse_loss(model(_tensor(x_t), _tensor(t), _tensor(cond)), _tensor(noise))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return _figures(losses)


def train_evaluator(
    model: QualityEvaluator,
    data: DigitSet,
    categories: list[QualityCategory],
    rng: np.random.Generator,
    settings: QualityTrainSettings,
) -> dict[str, float]:
    """Sigmoid loss over all (image, condition) pairs of a batch of real pairs."""
    opt, sched = _optimiser(model, settings)
    losses = []
    model.train()
    for _ in range(settings.steps):
        index = rng.integers(0, len(data), settings.batch_size)
        batch = data.take(index)
        cond, _ = conditions_for(batch.props, categories, rng)
        truth = _tensor(is_true_of(cond, batch.props).astype(np.float32))
        img, txt, _ = model.embeddings(_tensor(batch.images), _tensor(cond))
        logits = model.logit_scale.exp() * (txt @ img.T) + model.logit_bias
        loss = F.binary_cross_entropy_with_logits(logits, truth)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return _figures(losses)
