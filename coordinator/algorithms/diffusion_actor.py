"""The policies of the discrete learners of docs/papers.md §B: a conditional diffusion
model over the action logits (DSAC's actor) and its one-step ablation, a plain MLP.

Diffusion actor (the public D2SAC/AGOD design restated in docs/papers.md §B): start
from x_T ~ N(0, I) over the |A| logits and run T reverse steps of a variance-preserving
(VP) schedule; at step t an MLP ε_θ([x_t, emb(t), s]) predicts the noise, from which

    x̂_0 = √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε_θ                       (the clean logits)
    x_{t−1} = c1_t·x̂_0 + c2_t·x_t + σ_t·z_t,   σ_1 = 0               (DDPM posterior)

and the policy is softmax(x_0). Every operation is differentiable, so the actor loss's
gradient flows through the whole chain (reparameterised by the noise). The schedule is
D2SAC's discretised VP SDE: α_t = exp(−β_min/T − (β_max − β_min)(2t − 1)/(2T²)).

The randomness is an input: `forward(state, noise)` with noise (B, T, |A|), noise[:, 0]
= x_T and noise[:, k] = z added after reverse step k (the last step adds none, its slot
is ignored). `sample_noise` draws it in torch; on a board the scheduler draws it in
numpy and feeds the exported ONNX graph (coordinator/algorithms/discrete_export.py: the
chain unrolled, the noise an input), so torch and ONNX agree given the same noise.

x̂_0 is clipped to ±`x0_clip` at every step (the DDPM reference clips to the data's
range; the logits have none, so the bound is a config key, this project's choice: 10,
wide enough for a near-deterministic softmax, narrow enough to stop a runaway chain).

One step equals an MLP: with T = 1 the chain is x_0 = √(1/ᾱ_1)·x_1 − √(1/ᾱ_1 − 1)·ε_θ
(c1_1 = 1, c2_1 = 0), so with noise x_1 = 0 and ε_θ's weights on x_t and emb(t) zero
it is the MLP −√(1/ᾱ_1 − 1)·ε_θ(s) (tests/unit/test_diffusion_actor.py checks it with
weights copied from an `MlpActor`). The ablation of every diffusion result is that
MLP actor (`MlpActor`), trained by the same learner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DiffusionSpec:
    """The diffusion actor's shape and schedule (documented defaults: docs/papers.md §B)."""

    steps: int = 5
    """Reverse-diffusion steps T."""
    beta_min: float = 0.1
    """β_min of the VP schedule."""
    beta_max: float = 10.0
    """β_max of the VP schedule."""
    hidden: int = 256
    """Width of the denoiser's two hidden layers."""
    time_dim: int = 16
    """Width of the sinusoidal step embedding."""
    x0_clip: float = 10.0
    """|x̂_0| bound at every step (this project's choice; 0: no clip)."""


def vp_betas(steps: int, beta_min: float, beta_max: float) -> torch.Tensor:
    """β_1..β_T of the discretised variance-preserving SDE (float64, shape (T,))."""
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    alpha = torch.exp(-beta_min / steps - 0.5 * (beta_max - beta_min) * (2 * t - 1) / steps**2)
    return 1.0 - alpha


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The transformer position embedding of step numbers t (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """inputs → hidden → hidden → outputs, Mish between (D2SAC's denoiser and ours)."""
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.Mish(), nn.Linear(hidden, hidden), nn.Mish(),
        nn.Linear(hidden, outputs),
    )  # fmt: skip


class MlpActor(nn.Module):
    """The one-step ablation: softmax(MLP(state)). `noise` is accepted and ignored, so
    both actors are called alike."""

    steps = 0

    def __init__(self, state_dim: int, num_actions: int, hidden: int = 256) -> None:
        super().__init__()
        self.state_dim, self.num_actions = state_dim, num_actions
        self.net = mlp(state_dim, hidden, num_actions)

    def logits(self, state: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(state)  # type: ignore[no-any-return]

    def forward(self, state: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return torch.softmax(self.logits(state), dim=-1)

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(batch, 0, self.num_actions)


class DiffusionActor(nn.Module):
    """softmax(x_0) of a T-step conditional reverse diffusion over the logits."""

    recip_sqrt_abar: torch.Tensor
    sqrt_recip_abar_m1: torch.Tensor
    coef_x0: torch.Tensor
    coef_xt: torch.Tensor
    sigma: torch.Tensor
    time_embedding: torch.Tensor

    def __init__(self, state_dim: int, num_actions: int, spec: DiffusionSpec) -> None:
        super().__init__()
        if spec.steps < 1:
            raise ValueError(f"a diffusion actor needs at least 1 step, got {spec.steps}")
        self.state_dim, self.num_actions, self.spec = state_dim, num_actions, spec
        self.steps = spec.steps
        self.denoiser = mlp(num_actions + spec.time_dim + state_dim, spec.hidden, num_actions)
        betas = vp_betas(spec.steps, spec.beta_min, spec.beta_max)
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        variance = betas * (1.0 - abar_prev) / (1.0 - abar)
        # Buffers indexed by t − 1 (float32, as the graph runs); the step embeddings are
        # constants too, so the exported graph has no sin/cos.
        for name, value in {
            "recip_sqrt_abar": torch.sqrt(1.0 / abar),
            "sqrt_recip_abar_m1": torch.sqrt(1.0 / abar - 1.0),
            "coef_x0": betas * torch.sqrt(abar_prev) / (1.0 - abar),
            "coef_xt": (1.0 - abar_prev) * torch.sqrt(alphas) / (1.0 - abar),
            "sigma": torch.sqrt(variance.clamp(min=1e-20)),
        }.items():
            self.register_buffer(name, value.float())
        steps = torch.arange(spec.steps)
        self.register_buffer("time_embedding", sinusoidal_embedding(steps, spec.time_dim))

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_T and the per-step noise, (batch, T, |A|) standard normal."""
        return torch.randn(batch, self.steps, self.num_actions, generator=generator)

    def logits(self, state: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_0 given the state (B, state_dim) and the noise (B, T, |A|) (drawn if None)."""
        if noise is None:
            noise = self.sample_noise(state.shape[0]).to(state.device)
        x = noise[:, 0]
        clip = self.spec.x0_clip
        for k in range(self.steps):  # reverse step k goes from t = T − k to t − 1
            i = self.steps - 1 - k  # buffer index t − 1
            emb = self.time_embedding[i].expand(state.shape[0], -1)
            eps = self.denoiser(torch.cat([x, emb, state], dim=-1))
            x0 = self.recip_sqrt_abar[i] * x - self.sqrt_recip_abar_m1[i] * eps
            if clip > 0:
                x0 = x0.clamp(-clip, clip)
            x = self.coef_x0[i] * x0 + self.coef_xt[i] * x
            if i > 0:
                x = x + self.sigma[i] * noise[:, k + 1]
        return x

    def forward(self, state: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return torch.softmax(self.logits(state, noise), dim=-1)


Actor = DiffusionActor | MlpActor


def build_actor(state_dim: int, num_actions: int, spec: DiffusionSpec, *, diffusion: bool) -> Actor:
    """The diffusion actor, or its one-step MLP ablation of the same width."""
    if diffusion:
        return DiffusionActor(state_dim, num_actions, spec)
    return MlpActor(state_dim, num_actions, spec.hidden)
