"""DQN (coordinator/algorithms/dqn.py): ε schedule, greedy = argmax Q, the double and
plain targets, a few steps on CartPole, and a learning check that can fail."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from coordinator.algorithms import dqn  # noqa: E402
from coordinator.algorithms.discrete_loop import evaluate  # noqa: E402
from coordinator.algorithms.discrete_replay import DecisionBatch  # noqa: E402
from coordinator.cartpole import CartPoleVecEnv  # noqa: E402


def test_epsilon_decays_linearly_after_warmup_then_holds() -> None:
    learner = dqn.Dqn(dqn.DqnArgs(hidden=8, warmup_steps=100, eps_start=1.0, eps_end=0.1,
                                  eps_decay_fraction=0.5), 4, 2)  # fmt: skip
    seen = {}
    for step in (50, 100, 250, 400, 1000):
        learner.on_env_step(step, total_env_steps=1000)
        seen[step] = learner.epsilon
    # decay over steps 100..500 (half of 1000)
    assert seen[50] == pytest.approx(1.0) and seen[100] == pytest.approx(1.0)
    assert seen[250] == pytest.approx(1.0 - 0.9 * 150 / 400)
    assert seen[400] == pytest.approx(1.0 - 0.9 * 300 / 400)
    assert seen[1000] == pytest.approx(0.1)


def test_greedy_is_argmax_q_and_exploration_is_epsilon() -> None:
    learner = dqn.Dqn(dqn.DqnArgs(hidden=8), 4, 3)
    states = np.random.default_rng(0).normal(size=(2000, 4)).astype(np.float32)
    greedy = learner.act(states, explore=False)
    np.testing.assert_array_equal(greedy, learner.q_values(states).argmax(-1))
    learner.epsilon = 0.3
    explored = learner.act(states, explore=True)
    # random actions differ from greedy 2/3 of the time: 0.3 · 2/3 = 0.2 of all
    assert np.mean(explored != greedy) == pytest.approx(0.2, abs=0.04)


def _q_after_training_towards_the_target(double: bool) -> float:
    """Train Q(s, 0) towards r + γ·(the target network's rating of s'), r = 0, γ = 1, the
    target held (τ = 0); returns Q(s, 0)."""
    torch.manual_seed(0)
    learner = dqn.Dqn(dqn.DqnArgs(hidden=8, double=double, tau=0.0, gamma=1.0, lr=5e-2), 1, 2)
    with torch.no_grad():  # all weights 0: each Q is its last bias, whatever the input
        for net in (learner.q, learner.q_target):
            for p in net.parameters():
                p.zero_()
        learner.q[4].bias.copy_(torch.tensor([0.0, 10.0]))  # online: argmax at s' is 1
        learner.q_target[4].bias.copy_(torch.tensor([5.0, 2.0]))  # target: max 5, Q(·,1)=2
    zeros = np.zeros((1, 1), np.float32)
    batch = DecisionBatch(zeros, np.zeros(1, np.int64), np.zeros(1, np.float32),
                          zeros, np.zeros(1, np.float32))  # fmt: skip
    for _ in range(600):
        learner.update(batch)
    return float(learner.q_values(zeros)[0, 0])


def test_double_dqn_lets_the_online_network_pick() -> None:
    assert _q_after_training_towards_the_target(double=True) == pytest.approx(2.0, abs=0.1)
    assert _q_after_training_towards_the_target(double=False) == pytest.approx(5.0, abs=0.1)


def test_a_few_steps_on_cartpole() -> None:
    args = dqn.DqnArgs(hidden=16, batch_size=16, buffer_size=500, env_steps=60, warmup_steps=20)
    learner, stats = dqn.train(args, CartPoleVecEnv())
    assert stats.env_steps == 60 and stats.updates == 41
    assert all(math.isfinite(v) for v in stats.last_losses.values())
    assert learner.epsilon < args.eps_start


@pytest.mark.slow
def test_dqn_beats_random_on_cartpole_after_a_short_budget() -> None:
    """Fixed seed; a random policy averages ≈ 22 on CartPole-v1."""
    args = dqn.DqnArgs(gamma=0.99, hidden=64, batch_size=64, buffer_size=10_000,
                       warmup_steps=300, env_steps=1_500, seed=0)  # fmt: skip
    learner, stats = dqn.train(args, CartPoleVecEnv())
    greedy = evaluate(learner, CartPoleVecEnv(), episodes=5, seed=123)
    assert np.mean(greedy) > 60.0, (greedy, stats.episode_returns[-10:])
