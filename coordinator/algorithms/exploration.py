"""Exploration and gradient clipping of MADDPG-MATO (docs/algorithms.md, "Exploration").

Exploration samples from the policy instead of adding noise to its probabilities:
Gaussian noise on softmax probabilities stops producing any offload once the actor
leans to one target (noise of σ cannot lift a 0.01 probability above a 0.97 one).

- target: drawn from the actor's categorical mixed with a uniform floor,
  (1 − ε)·softmax + ε/(M + 1), so every target keeps a chance of at least ε/(M + 1);
- download flag: drawn as Bernoulli((1 − ε)·σ(l) + ε/2);
- offload ratio: the actor's ratio plus N(0, σ²), clipped to [0, 1].

The result is an action vector the environment executes as it is (a one-hot target,
the ratio, d ∈ {0, 1}). ε and σ decay linearly over training.
"""

from __future__ import annotations

import numpy as np
import torch

from testbed.observation import ObservationSpec


def explore(
    spec: ObservationSpec, probs: np.ndarray, eps: float, ratio_std: float,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Exploratory action vectors from the actors' outputs `probs` (…, M + 3)."""
    m = spec.num_edges
    target_p = probs[..., : m + 1].astype(np.float64)
    target_p = target_p / target_p.sum(-1, keepdims=True)
    target_p = (1.0 - eps) * target_p + eps / (m + 1)
    u = rng.random((*probs.shape[:-1], 1))
    target = np.minimum((np.cumsum(target_p, -1) < u).sum(-1), m)
    out = np.zeros(probs.shape, np.float32)
    np.put_along_axis(out, target[..., None], 1.0, axis=-1)
    ratio = probs[..., m + 1] + rng.normal(0.0, ratio_std, probs.shape[:-1])
    out[..., m + 1] = np.clip(ratio, 0.0, 1.0)
    download_p = (1.0 - eps) * probs[..., m + 2] + eps / 2
    out[..., m + 2] = rng.random(probs.shape[:-1]) < download_p
    return out


def clip_grad_per_agent(params: dict[str, torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale each agent's gradient (leading dimension of stacked parameters) so that its
    norm over all of that agent's tensors is at most `max_norm`, as
    `torch.nn.utils.clip_grad_norm_` does for one network; returns the norms before."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    norms = torch.stack([g.reshape(g.shape[0], -1).square().sum(1) for g in grads]).sum(0)
    norms = norms.sqrt()
    if max_norm > 0:
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
    return norms
