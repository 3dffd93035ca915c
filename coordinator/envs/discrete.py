"""The vectorised interface between discrete-action learners and their environments:
the task schedulers of docs/papers.md §B (one agent per base station, each choosing an
edge server or a set of them for its current task) and Gymnasium's CartPole (one agent).

E environments step in lock-step, each with the same N agents. Observations are float32
(E, N, obs_dim); actions are int64 (E, N), each in [0, num_actions). An agent without a
decision to make in a step (no task) has `has_decision` False: its action is ignored and
its reward is 0, and a learner leaves that transition out. Episodes have a fixed length
(a time limit, not a terminal state) unless `terminated` says otherwise (CartPole's pole
falls); an environment whose episode ends is reset on the spot: `DiscreteStep.obs` is
then the first observation of the new episode and `final_obs` holds the last of the old.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class DiscreteStep:
    obs: np.ndarray  # (E, N, obs_dim) float32: the next observation
    reward: np.ndarray  # (E, N) float32: the reward of the decision each agent made
    done: np.ndarray  # (E,) bool: the episode ended with this step (then auto-reset)
    terminated: np.ndarray  # (E,) bool: ended in a terminal state (no bootstrap); ⊆ done
    final_obs: np.ndarray  # (E, N, obs_dim): last observation of an ended episode, else = obs
    has_decision: np.ndarray  # (E, N) bool: the agent decided something in this step
    info: dict[str, np.ndarray] = field(default_factory=dict)  # further per-decision arrays


class DiscreteVecEnv(Protocol):
    """What a discrete-action trainer needs from an environment."""

    num_envs: int
    num_agents: int
    obs_dim: int
    num_actions: int
    agent_ids: list[str]

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start every environment afresh; returns observations (E, N, obs_dim)."""
        ...

    def step(self, actions: np.ndarray) -> DiscreteStep:
        """Apply every agent's action (E, N) int64."""
        ...

    def close(self) -> None: ...
