"""Running standardisation of observations for the critics' inputs (docs/algorithms.md,
"The critic's input").

Statistics are per agent and per observation column, merged batch by batch with the
parallel form of Welford's algorithm (Chan et al.) over every observation that enters
the replay buffer, in float64. `normalise` returns (x − mean) / std, with std floored
at `STD_FLOOR` — a column constant so far (a position, a clock in the twin) maps to 0,
not to a division by zero — and clipped to ±`CLIP` so that a rare binary feature
cannot dominate the first layer. The state is plain tensors, so a checkpoint holding it
loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

STD_FLOOR = 1e-2
"""Smallest standard deviation divided by (observation columns are O(1))."""
CLIP = 10.0
"""Standardised values are clipped to [−CLIP, CLIP]."""


class RunningNorm:
    """Mean and variance of observations (…, N, D) per agent and column."""

    def __init__(self, num_agents: int, dim: int) -> None:
        self.count = 0
        self.mean = np.zeros((num_agents, dim))
        self.m2 = np.zeros((num_agents, dim))  # sum of squared deviations
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, x: np.ndarray) -> None:
        """Merge a batch x (B, N, D) into the statistics."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, *self.mean.shape)
        n_b = len(x)
        if n_b == 0:
            return
        mean_b = x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.count * n_b / total)
        self.count = total
        self._cache = None

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.count if self.count else np.ones_like(self.m2)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) as float32 tensors (N, D), std floored at STD_FLOOR."""
        if self._cache is None:
            std = np.maximum(np.sqrt(self.var), STD_FLOOR)
            self._cache = (
                torch.as_tensor(self.mean, dtype=torch.float32),
                torch.as_tensor(std, dtype=torch.float32),
            )
        return self._cache

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise x (…, N, D) with the current statistics."""
        mean, std = self.tensors()
        return ((x - mean) / std).clamp(-CLIP, CLIP)

    def state_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": torch.from_numpy(self.mean.copy()),
            "m2": torch.from_numpy(self.m2.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["mean"].shape) != self.mean.shape:
            raise ValueError(
                f"normaliser of shape {tuple(state['mean'].shape)} for {self.mean.shape}"
            )
        self.count = int(state["count"])
        self.mean = state["mean"].numpy().astype(np.float64)
        self.m2 = state["m2"].numpy().astype(np.float64)
        self._cache = None
