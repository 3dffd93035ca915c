"""The team reward of the MADDPG learners (`train.team_reward`, docs/algorithms.md,
"Team reward")."""

from __future__ import annotations

import numpy as np


def shared_reward(reward: np.ndarray, has_task: np.ndarray, alpha: float) -> np.ndarray:
    """The rewards (E, N) an agent trains on: (1 − α)·r_i + α·(the mean of the slot's
    rewards over its agents with a task), for the agents with a task (the others keep
    theirs, 0). The slot's total is unchanged; α = 1 is a team reward, which prices
    what one device's choice costs the others (docs/algorithms.md, "Team reward")."""
    if alpha == 0.0:
        return reward
    count = has_task.sum(axis=1, keepdims=True)
    mean = np.where(has_task, reward, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1)
    return np.where(has_task, (1.0 - alpha) * reward + alpha * mean, reward).astype(reward.dtype)
