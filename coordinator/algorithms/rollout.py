"""Episode statistics and evaluation on any `VecEnv` (twin or live), shared by every
algorithm.

Definitions used in metrics.csv and summary.json (over the steps since the last row):

- episode_reward / eval_reward: the mean reward (18) per task — an agent's episode
  return divided by the tasks it served (with arrival probability 1, by the episode's
  slots); the unit of `testbed up`'s `reward_mean`, comparable across episode lengths;
- latency_s, energy_j: means over the tasks served (T and E of (13), (14));
- completion: tasks completed within their deadline / tasks generated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from coordinator.envs.vector import StepOut, VecEnv

Policy = Callable[[np.ndarray], np.ndarray]
"""Observations (E, N, obs_dim) → action vectors (E, N, action_dim) in [0, 1]."""


@dataclass(frozen=True)
class EpisodeStats:
    episodes: int
    episode_reward: float
    latency_s: float
    energy_j: float
    completion: float
    tasks: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


class EpisodeTracker:
    """Accumulates rewards and task outcomes step by step; `drain()` returns the
    statistics of the episodes that ended since the last drain."""

    def __init__(self) -> None:
        self._episodes = 0
        self._reward = 0.0
        self._tasks = 0
        self._completed = 0
        self._latency = 0.0
        self._energy = 0.0

    def record(self, out: StepOut) -> None:
        has = out.has_task
        self._reward += float(out.reward[has].sum())
        self._tasks += int(has.sum())
        self._completed += int((out.completed & has).sum())
        self._latency += float(out.latency_s[has].sum())
        self._energy += float(out.energy_j[has].sum())
        self._episodes += int(out.done.sum())

    @property
    def episodes(self) -> int:
        return self._episodes

    def drain(self) -> EpisodeStats:
        n = self._tasks
        stats = EpisodeStats(
            episodes=self._episodes,
            episode_reward=self._reward / n if n else math.nan,
            latency_s=self._latency / n if n else math.nan,
            energy_j=self._energy / n if n else math.nan,
            completion=self._completed / n if n else math.nan,
            tasks=n,
        )
        self._episodes = self._tasks = self._completed = 0
        self._reward = 0.0
        self._latency = self._energy = 0.0
        return stats


class Hooks:
    """What a training loop reports (no-ops here; the train command writes the run
    folder with coordinator/algorithms/run_writer.py)."""

    def row(self, metrics: dict[str, float]) -> None:
        """One metrics.csv row (at every episode end and evaluation)."""

    def checkpoint(self, step: int, state: dict[str, Any], actors: Callable[[], list[Any]]) -> None:
        """Everything needed to resume after `step` steps; `actors()` gives each agent's
        deployable actor module."""

    def progress(self, step: int, note: str) -> None:
        """One step done; `note` carries the running reward."""

    def should_stop(self) -> bool:
        """Checked after every step: True ends training there (e.g. converged)."""
        return False


def evaluate(env: VecEnv, policy: Policy, episodes: int, seed: int) -> EpisodeStats:
    """Run `policy` (no exploration) from a fresh reset with `seed` until `episodes`
    episodes have ended (over all E environments); their statistics."""
    obs = env.reset(seed=seed)
    tracker = EpisodeTracker()
    while tracker.episodes < episodes:
        out = env.step(policy(obs))
        tracker.record(out)
        obs = out.obs
    return tracker.drain()


class ModelBlindEnv:
    """A model-aware `VecEnv` seen as MADDPG-NoModel sees it: observations without the
    model features, the download flag forced to 1 (the edge fetches a missing model).
    For backends that build full observations (the live bench); the twin has
    `model_aware=False` of its own."""

    def __init__(self, env: VecEnv) -> None:
        import dataclasses

        self.env = env
        self.spec = dataclasses.replace(env.spec, model_aware=False, download_action=False)
        full = {name: i for i, name in enumerate(env.spec.feature_names())}
        self._keep = np.array([full[name] for name in self.spec.feature_names()])
        self.num_envs, self.num_agents = env.num_envs, env.num_agents
        self.agent_ids, self.episode_slots = env.agent_ids, env.episode_slots

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.env.reset(seed)[..., self._keep]

    def step(self, actions: np.ndarray) -> StepOut:
        actions = actions.copy()
        actions[..., self.spec.num_edges + 2] = 1.0
        out = self.env.step(actions)
        out.obs, out.final_obs = out.obs[..., self._keep], out.final_obs[..., self._keep]
        return out

    def close(self) -> None:
        self.env.close()
