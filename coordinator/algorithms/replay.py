"""A numpy ring buffer of joint transitions (all N agents of one environment slot).

One row holds what every agent saw, did and got in one slot of one environment:
observations (N, obs_dim), actions (N, action_dim), rewards (N,), next observations
(N, obs_dim) and whether the episode ended. When full, the oldest row is overwritten.
Its state is plain tensors, so a checkpoint holding it loads with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Batch:
    """A sampled minibatch (numpy, leading dimension B)."""

    obs: np.ndarray  # (B, N, obs_dim) float32
    actions: np.ndarray  # (B, N, action_dim) float32
    rewards: np.ndarray  # (B, N) float32
    next_obs: np.ndarray  # (B, N, obs_dim) float32
    done: np.ndarray  # (B,) float32: 1.0 where the episode ended


class ReplayBuffer:
    """Fixed capacity; `add` takes E rows at once (one per environment)."""

    def __init__(self, capacity: int, num_agents: int, obs_dim: int, action_dim: int) -> None:
        if capacity < 1:
            raise ValueError("replay capacity must be at least 1")
        self.capacity = capacity
        self.obs = np.zeros((capacity, num_agents, obs_dim), np.float32)
        self.actions = np.zeros((capacity, num_agents, action_dim), np.float32)
        self.rewards = np.zeros((capacity, num_agents), np.float32)
        self.next_obs = np.zeros((capacity, num_agents, obs_dim), np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.pos = 0  # the row the next transition goes to
        self.size = 0  # rows filled

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """Append E transitions: obs (E, N, D), actions (E, N, A), rewards (E, N),
        next_obs (E, N, D), done (E,)."""
        n = len(obs)
        if n > self.capacity:  # only the newest `capacity` rows can survive anyway
            keep = slice(n - self.capacity, n)
            obs, actions, rewards = obs[keep], actions[keep], rewards[keep]
            next_obs, done, n = next_obs[keep], done[keep], self.capacity
        rows = (self.pos + np.arange(n)) % self.capacity
        self.obs[rows] = obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.next_obs[rows] = next_obs
        self.done[rows] = done
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """`batch_size` rows drawn uniformly with replacement from the filled part."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        return Batch(
            self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.done[idx]
        )

    def state_dict(self) -> dict[str, Any]:
        """The filled rows as torch tensors, with the write position (for checkpoints)."""
        import torch

        n = self.size
        return {
            "capacity": self.capacity,
            "pos": self.pos,
            "size": n,
            **{
                k: torch.from_numpy(getattr(self, k)[:n].copy())
                for k in ("obs", "actions", "rewards", "next_obs", "done")
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"checkpoint replay capacity {state['capacity']} != configured {self.capacity}"
            )
        n = int(state["size"])
        for k in ("obs", "actions", "rewards", "next_obs", "done"):
            getattr(self, k)[:n] = state[k].numpy()
        self.pos, self.size = int(state["pos"]), n
