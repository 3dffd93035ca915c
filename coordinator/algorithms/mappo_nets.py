"""MAPPO's networks, normalisers and exported actor (coordinator/algorithms/mappo.py
trains them; docs/algorithms.md, section "MAPPO")."""

from __future__ import annotations

import copy

import torch
from torch import nn

from testbed.observation import TASK_EXTRA, ObservationSpec

INPUT_CLIP = 5.0
"""Standardised inputs are clipped to ±this (also in the exported actors)."""
MIN_FEATURE_STD = 1e-2
"""A feature whose running std is below this is centred but not rescaled: constant in
training (a queue the twin always sees empty) it must not blow up where it varies (live)."""
LOG_STD_RANGE = (-4.0, 1.0)
"""Bounds of the ratio's log σ (in logit space)."""

# ---------------------------------------------------------------------------- normalisers


class RunningNorm:
    """Running mean and variance of `width` features over every row seen (Chan et al.'s
    parallel update, float64)."""

    def __init__(self, width: int) -> None:
        self.mean = torch.zeros(width, dtype=torch.float64)
        self.var = torch.ones(width, dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)

    def update(self, x: torch.Tensor) -> None:
        rows = x.reshape(-1, self.mean.numel()).double()
        b = rows.shape[0]
        mean, var = rows.mean(0), rows.var(0, unbiased=False)
        delta, total = mean - self.mean, self.count + b
        spread = self.var * self.count + var * b + delta.square() * self.count * b / total
        self.var = spread / total
        self.mean = self.mean + delta * b / total
        self.count = total

    def feature_scale(self) -> torch.Tensor:
        """The std, or 1 where below MIN_FEATURE_STD (float32)."""
        std = self.var.sqrt()
        return torch.where(std < MIN_FEATURE_STD, torch.ones_like(std), std).float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised inputs, clipped to ±INPUT_CLIP."""
        z = (x - self.mean.float()) / self.feature_scale()
        return z.clamp(-INPUT_CLIP, INPUT_CLIP)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Values: (x − mean)/std (width 1)."""
        return (x - self.mean.float()) / self.var.sqrt().clamp_min(1e-6).float()

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.var.sqrt().clamp_min(1e-6).float() + self.mean.float()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean, self.var = state["mean"].clone(), state["var"].clone()
        self.count = state["count"].clone()


# ---------------------------------------------------------------------------- networks


def mlp(inputs: int, hidden: int, outputs: int, out_gain: float) -> nn.Sequential:
    """inputs → hidden → hidden → outputs, ReLU, orthogonal initialisation (Yu et al.)."""
    net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                        nn.ReLU(), nn.Linear(hidden, outputs))  # fmt: skip
    for layer, gain in zip((net[0], net[2], net[4]), (2**0.5, 2**0.5, out_gain), strict=True):
        assert isinstance(layer, nn.Linear)
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
    return net


class Policy(nn.Module):
    """The shared actor: (standardised o_i, id_i) → target logits (M + 1), the ratio's μ
    in logit space, the download logit; plus the ratio's log σ."""

    def __init__(self, inputs: int, hidden: int, action_dim: int, log_std: float) -> None:
        super().__init__()
        self.net = mlp(inputs, hidden, action_dim, 0.01)
        self.ratio_log_std = nn.Parameter(torch.tensor(log_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


def mode_action(logits: torch.Tensor, num_edges: int) -> torch.Tensor:
    """The deterministic policy as build_actor's action vector: softmax target
    probabilities, σ(μ) and σ(download logit)."""
    m = num_edges
    target = torch.softmax(logits[..., : m + 1], -1)
    return torch.cat([target, torch.sigmoid(logits[..., m + 1 :])], -1)


def task_columns(spec: ObservationSpec) -> list[int]:
    """Columns of an observation that describe the agent's task (they differ between
    agents within a slot): type one-hot, size, density, deadline."""
    names = spec.feature_names()
    wanted = [f"type={t}" for t in spec.task_types] + list(TASK_EXTRA)
    return [names.index(name) for name in wanted]


# ---------------------------------------------------------------------------- export


class DeployableActor(nn.Module):
    """Agent i's deterministic policy with the deployable actor's input and output
    (coordinator/actors.py): observation (B, D) → (B, M + 3); the input standardisation
    and the agent's id are constants inside."""

    mean: torch.Tensor
    scale: torch.Tensor
    agent_id: torch.Tensor

    def __init__(self, policy: Policy, norm: RunningNorm, agent_id: torch.Tensor,
                 num_edges: int) -> None:  # fmt: skip
        super().__init__()
        self.net = copy.deepcopy(policy.net)
        self.register_buffer("mean", norm.mean.float().clone())
        self.register_buffer("scale", norm.feature_scale().clone())
        self.register_buffer("agent_id", agent_id.reshape(1, -1).clone())
        self.num_edges = num_edges

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = ((obs - self.mean) / self.scale).clamp(-INPUT_CLIP, INPUT_CLIP)
        x = torch.cat([x, self.agent_id.expand(obs.shape[0], -1)], 1)
        return mode_action(self.net(x), self.num_edges)
