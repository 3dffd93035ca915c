"""The discrete learners' shared loop (coordinator/algorithms/discrete_loop.py) and
replay (discrete_replay.py), on a tiny in-test `DiscreteVecEnv` with two agents."""

from __future__ import annotations

import numpy as np
import pytest

from coordinator.algorithms.discrete_loop import (
    LoopSettings,
    evaluate,
    input_dim,
    learner_inputs,
    train_loop,
)
from coordinator.algorithms.discrete_replay import DecisionBatch, DecisionReplay
from coordinator.envs.discrete import DiscreteStep

SKIPPED_REWARD = -999.0
EPISODE_STEPS = 4


class TwoAgentEnv:
    """E envs × 2 agents; obs = (step, agent, 0); agent 1 decides only on even steps
    (its odd-step reward is SKIPPED_REWARD, which a learner must never see); reward =
    the action + 1; an episode is 4 steps, a time limit (never terminated)."""

    num_agents, obs_dim, num_actions = 2, 3, 3

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.agent_ids = ["bs0", "bs1"]
        self.t = 0

    def _obs(self, t: int) -> np.ndarray:
        obs = np.zeros((self.num_envs, 2, 3), np.float32)
        obs[:, :, 0] = t
        obs[:, 1, 1] = 1.0
        return obs

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.t = 0
        return self._obs(0)

    def step(self, actions: np.ndarray) -> DiscreteStep:
        decides = np.ones((self.num_envs, 2), bool)
        decides[:, 1] = self.t % 2 == 0
        reward = np.where(decides, actions + 1.0, SKIPPED_REWARD).astype(np.float32)
        self.t += 1
        done = np.full(self.num_envs, self.t == EPISODE_STEPS)
        final = self._obs(self.t)
        if self.t == EPISODE_STEPS:
            self.t = 0
        return DiscreteStep(self._obs(self.t), reward, done, np.zeros(self.num_envs, bool),
                            final, decides)  # fmt: skip

    def close(self) -> None:
        pass


class RecordingLearner:
    """Always action 1; keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[DecisionBatch] = []
        self.steps_seen: list[int] = []

    def act(self, states: np.ndarray, *, explore: bool) -> np.ndarray:
        return np.ones(len(states), np.int64)

    def update(self, batch: DecisionBatch) -> dict[str, float]:
        self.batches.append(batch)
        return {}

    def on_env_step(self, env_step: int, total_env_steps: int) -> None:
        self.steps_seen.append(env_step)


def test_inputs_carry_the_agent_one_hot_only_with_several_agents() -> None:
    obs = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    rows = learner_inputs(obs)
    assert rows.shape == (6, 7)
    np.testing.assert_array_equal(rows[:, :4], obs.reshape(6, 4))
    np.testing.assert_array_equal(rows[:, 4:], np.tile(np.eye(3), (2, 1)))
    single = learner_inputs(obs[:, :1])
    np.testing.assert_array_equal(single, obs[:, 0])
    assert input_dim(TwoAgentEnv(1)) == 5


def test_loop_learns_only_from_decisions_and_sums_decided_rewards() -> None:
    env, learner = TwoAgentEnv(num_envs=3), RecordingLearner()
    settings = LoopSettings(env_steps=24, warmup_steps=0, batch_size=64, buffer_size=1000,
                            updates_per_step=1.0, seed=0)  # fmt: skip
    stats = train_loop(learner, env, settings)
    assert stats.env_steps == 24  # 8 iterations of 3 envs
    assert stats.updates == 24 and len(learner.batches) == 24
    assert learner.steps_seen == [3 * (i + 1) for i in range(8)]
    rewards = np.concatenate([b.rewards for b in learner.batches])
    assert SKIPPED_REWARD not in rewards
    assert set(np.unique(rewards)) == {2.0}
    # Agent 1 (one-hot column 4) decided at t = 0 and 2 only.
    states = np.concatenate([b.states for b in learner.batches])
    assert set(np.unique(states[states[:, 4] == 1.0, 0])) == {0.0, 2.0}
    # Each 4-step episode: agent 0 decides 4×, agent 1 2×, each reward 2.
    assert stats.episode_returns == [12.0] * 6
    assert stats.episode_end_steps == [12] * 3 + [24] * 3


def test_next_state_at_an_episode_end_is_the_final_observation() -> None:
    env, learner = TwoAgentEnv(num_envs=1), RecordingLearner()
    settings = LoopSettings(env_steps=8, warmup_steps=0, batch_size=256, buffer_size=100,
                            updates_per_step=1.0, seed=0)  # fmt: skip
    train_loop(learner, env, settings)
    batch = learner.batches[-1]
    last = batch.states[:, 0] == EPISODE_STEPS - 1
    assert last.any()
    assert set(batch.next_states[last, 0]) == {float(EPISODE_STEPS)}  # not the reset 0
    assert not batch.terminal.any()  # a time limit bootstraps


def test_warmup_acts_at_random_and_defers_updates() -> None:
    env, learner = TwoAgentEnv(num_envs=1), RecordingLearner()
    settings = LoopSettings(env_steps=10, warmup_steps=6, batch_size=8, buffer_size=100,
                            updates_per_step=0.5, seed=0)  # fmt: skip
    stats = train_loop(learner, env, settings)
    assert stats.updates == 2  # from step 6 on (5 steps) at half an update each
    rewards = np.concatenate([b.rewards for b in learner.batches])
    assert set(np.unique(rewards)) <= {1.0, 2.0, 3.0}


def test_evaluate_returns_greedy_episode_returns() -> None:
    returns = evaluate(RecordingLearner(), TwoAgentEnv(num_envs=2), episodes=3, seed=0)
    assert returns == [12.0, 12.0, 12.0]


def test_replay_ring_overwrites_the_oldest() -> None:
    replay = DecisionReplay(capacity=4, in_dim=1)
    for start in (0, 3):
        ids = np.arange(start, start + 3, dtype=np.float32)
        replay.add(ids[:, None], ids.astype(np.int64), ids, ids[:, None] + 1, np.zeros(3))
    assert len(replay) == 4
    assert sorted(replay.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0]
    batch = replay.sample(50, np.random.default_rng(0))
    np.testing.assert_array_equal(batch.next_states[:, 0], batch.rewards + 1)
    with pytest.raises(ValueError, match="at least 1"):
        DecisionReplay(0, 1)
