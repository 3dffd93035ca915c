"""The training loop every discrete learner of docs/papers.md §B shares (dsac.py,
dqn.py): act in a `DiscreteVecEnv` (coordinator/envs/discrete.py), store each decision,
update from replay, and keep the episode returns; and a greedy evaluation.

Parameter sharing: the N agents of an environment share one learner; where N > 1 its
input is the agent's observation followed by the agent-id one-hot (N = 1: the
observation alone). Decisions with `has_decision` False are neither learned from nor
counted. A decision's next input is the agent's next observation (`final_obs` where the
episode ended); it is terminal (no bootstrap) only where the environment says
`terminated`, so a time limit bootstraps.

Returns: an episode's return is the sum of every agent's rewards over the episode (for
CartPole, N = 1, the usual return). Environment steps count one step of one
environment, so E environments advance E steps per loop iteration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from coordinator.algorithms.discrete_replay import DecisionBatch, DecisionReplay
from coordinator.envs.discrete import DiscreteVecEnv


class DiscreteLearner(Protocol):
    """What the loop needs of a learner."""

    def act(self, states: np.ndarray, *, explore: bool) -> np.ndarray:
        """Actions (K,) int64 for inputs (K, in_dim); sampled if `explore`, else greedy."""
        ...

    def update(self, batch: DecisionBatch) -> dict[str, float]:
        """One gradient step; returns its losses (and the like) by name."""
        ...

    def on_env_step(self, env_step: int, total_env_steps: int) -> None:
        """Told the environment steps done so far (schedules such as ε)."""
        ...


@dataclass(frozen=True)
class LoopSettings:
    """The loop's part of a learner's arguments."""

    env_steps: int
    """Environment steps in all (E per iteration with E environments)."""
    warmup_steps: int
    """Environment steps of uniformly random actions before learning starts."""
    batch_size: int
    buffer_size: int
    updates_per_step: float
    """Gradient updates per environment step (fractions accumulate)."""
    seed: int


@dataclass
class TrainStats:
    """What a training run did."""

    episode_returns: list[float] = field(default_factory=list)
    """Every finished training episode's return, in order."""
    episode_end_steps: list[int] = field(default_factory=list)
    """The environment step each of those episodes ended at."""
    env_steps: int = 0
    updates: int = 0
    wall_s: float = 0.0
    last_losses: dict[str, float] = field(default_factory=dict)


def learner_inputs(obs: np.ndarray) -> np.ndarray:
    """(E, N, obs_dim) observations → (E·N, in_dim) learner inputs (agent-id one-hot
    appended where N > 1)."""
    envs, agents, _ = obs.shape
    flat = obs.reshape(envs * agents, -1).astype(np.float32, copy=False)
    if agents == 1:
        return flat
    one_hot = np.tile(np.eye(agents, dtype=np.float32), (envs, 1))
    return np.concatenate([flat, one_hot], axis=1)


def input_dim(env: DiscreteVecEnv) -> int:
    """The learner's input width for `env`."""
    return env.obs_dim + (env.num_agents if env.num_agents > 1 else 0)


def train_loop(learner: DiscreteLearner, env: DiscreteVecEnv, settings: LoopSettings) -> TrainStats:
    """Train `learner` on `env` for `settings.env_steps` environment steps."""
    rng = np.random.default_rng(settings.seed)
    replay = DecisionReplay(settings.buffer_size, input_dim(env))
    stats = TrainStats()
    envs, agents = env.num_envs, env.num_agents
    running = np.zeros(envs, np.float64)
    due_updates = 0.0
    t0 = time.perf_counter()
    obs = env.reset(seed=settings.seed)
    while stats.env_steps < settings.env_steps:
        states = learner_inputs(obs)
        if stats.env_steps < settings.warmup_steps:
            actions = rng.integers(0, env.num_actions, envs * agents)
        else:
            actions = learner.act(states, explore=True)
        step = env.step(actions.reshape(envs, agents).astype(np.int64))
        stats.env_steps += envs
        learner.on_env_step(stats.env_steps, settings.env_steps)
        decided = step.has_decision.reshape(-1)
        terminal = np.repeat(step.terminated.astype(np.float32), agents)
        replay.add(
            states[decided], actions[decided], step.reward.reshape(-1)[decided],
            learner_inputs(step.final_obs)[decided], terminal[decided],
        )  # fmt: skip
        running += (step.reward * step.has_decision).sum(axis=1)
        for e in np.flatnonzero(step.done):
            stats.episode_returns.append(float(running[e]))
            stats.episode_end_steps.append(stats.env_steps)
            running[e] = 0.0
        obs = step.obs
        if stats.env_steps < settings.warmup_steps or len(replay) == 0:
            continue
        due_updates += settings.updates_per_step * envs
        while due_updates >= 1.0:
            due_updates -= 1.0
            stats.last_losses = learner.update(replay.sample(settings.batch_size, rng))
            stats.updates += 1
    stats.wall_s = time.perf_counter() - t0
    return stats


def evaluate(
    learner: DiscreteLearner, env: DiscreteVecEnv, episodes: int, seed: int
) -> list[float]:
    """Returns of `episodes` greedy episodes (the first ones to finish across E envs)."""
    returns: list[float] = []
    running = np.zeros(env.num_envs, np.float64)
    obs = env.reset(seed=seed)
    while len(returns) < episodes:
        actions = learner.act(learner_inputs(obs), explore=False)
        step = env.step(actions.reshape(env.num_envs, env.num_agents).astype(np.int64))
        running += (step.reward * step.has_decision).sum(axis=1)
        for e in np.flatnonzero(step.done):
            returns.append(float(running[e]))
            running[e] = 0.0
        obs = step.obs
    return returns[:episodes]
