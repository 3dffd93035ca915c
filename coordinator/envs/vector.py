"""The vectorised environment interface the trainers use (the twin implements it).

E environments step in lock-step, each with the same N agents. Arrays are numpy:
observations float32 (E, N, obs_dim) in the layout of testbed/observation.py, actions
float32 (E, N, action_dim) in [0, 1] (target probabilities, ratio, download
probability — docs/observation.md). Episodes have a fixed length; an environment
whose episode ends is reset on the spot: `StepOut.obs` is then the first observation
of the new episode and `StepOut.final_obs` holds the last one of the old.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from testbed.observation import ObservationSpec


@dataclass
class StepOut:
    obs: np.ndarray  # (E, N, obs_dim) float32: the next observation
    reward: np.ndarray  # (E, N) float32: reward (18) of the task each agent served
    done: np.ndarray  # (E,) bool: the episode ended with this step (then auto-reset)
    final_obs: np.ndarray  # (E, N, obs_dim): last observation of an ended episode, else = obs
    has_task: np.ndarray  # (E, N) bool: the agent served a task in this step
    latency_s: np.ndarray  # (E, N) float32: T of the served task (0 without a task)
    energy_j: np.ndarray  # (E, N) float32: E of the served task
    completed: np.ndarray  # (E, N) bool: within its deadline and not failed
    info: dict[str, np.ndarray] = field(default_factory=dict)  # further per-task arrays


class VecEnv(Protocol):
    """What a trainer needs from an environment."""

    spec: ObservationSpec
    num_envs: int
    num_agents: int
    agent_ids: list[str]
    episode_slots: int

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start every environment afresh; returns observations (E, N, obs_dim)."""
        ...

    def step(self, actions: np.ndarray) -> StepOut:
        """Serve every agent's task with `actions` (E, N, action_dim)."""
        ...

    def close(self) -> None: ...
