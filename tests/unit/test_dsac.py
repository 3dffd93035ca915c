"""DSAC and discrete SAC (coordinator/algorithms/dsac.py) on CartPole: the soft value,
a few training steps of each actor, α tuned or fixed, and a learning check that can
fail (DSAC's greedy return clearly above a random policy's ≈ 22)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from coordinator.algorithms import dsac  # noqa: E402
from coordinator.algorithms.diffusion_actor import DiffusionActor, MlpActor  # noqa: E402
from coordinator.algorithms.discrete_loop import evaluate  # noqa: E402
from coordinator.cartpole import CartPoleVecEnv  # noqa: E402

TINY = {"hidden": 16, "batch_size": 16, "buffer_size": 500, "env_steps": 60, "warmup_steps": 20,
        "diffusion_steps": 3}  # fmt: skip


def test_soft_value_by_hand() -> None:
    log_pi = torch.log(torch.tensor([[0.5, 0.5], [1.0, 1e-30]]))
    q1 = torch.tensor([[1.0, 3.0], [4.0, 0.0]])
    q2 = torch.tensor([[2.0, 2.0], [5.0, 0.0]])
    value = dsac.soft_value(log_pi, q1, q2, 0.1)
    # 0.5·(1 + 0.1·ln 2) + 0.5·(2 + 0.1·ln 2); the second row: π = (1, 0) → min Q = 4
    assert value.tolist() == pytest.approx([1.5 + 0.1 * math.log(2), 4.0], abs=1e-5)


@pytest.mark.parametrize("diffusion", [True, False])
def test_a_few_steps_on_cartpole_train_either_actor(diffusion: bool) -> None:
    args = dsac.DsacArgs(diffusion=diffusion, **TINY)
    learner, stats = dsac.train(args, CartPoleVecEnv(num_envs=2))
    assert isinstance(learner.actor, DiffusionActor if diffusion else MlpActor)
    assert stats.env_steps == 60  # 30 iterations of 2 envs
    assert stats.updates == 42  # 2 per iteration from env step 20 on: 21 iterations
    assert all(math.isfinite(v) for v in stats.last_losses.values())
    assert set(stats.last_losses) == {"critic_loss", "actor_loss", "entropy", "alpha"}
    assert stats.episode_returns  # CartPole episodes end within 60 random-ish steps


def test_alpha_is_tuned_or_held() -> None:
    tuned, _ = dsac.train(dsac.DsacArgs(**TINY), CartPoleVecEnv())
    fixed, _ = dsac.train(dsac.DsacArgs(auto_alpha=False, alpha=0.05, **TINY), CartPoleVecEnv())
    assert tuned.alpha != pytest.approx(0.05, abs=1e-7)
    assert fixed.alpha == pytest.approx(0.05, abs=1e-7)


def test_terminal_decisions_do_not_bootstrap() -> None:
    """With γ = 1 and a critic target of r only, Q(s, a) → r for a terminal decision."""
    learner = dsac.Dsac(dsac.DsacArgs(hidden=16, lr_critic=1e-2, gamma=1.0), 4, 2)
    from coordinator.algorithms.discrete_replay import DecisionBatch

    states = np.ones((8, 4), np.float32)
    batch = DecisionBatch(states, np.zeros(8, np.int64), np.full(8, 3.0, np.float32),
                          states, np.ones(8, np.float32))  # fmt: skip
    for _ in range(300):
        learner.update(batch)
    with torch.no_grad():
        q1, q2 = learner.critic(torch.from_numpy(states[:1]))
    assert float(q1[0, 0]) == pytest.approx(3.0, abs=0.1)
    assert float(q2[0, 0]) == pytest.approx(3.0, abs=0.1)


def test_greedy_policy_is_the_argmax() -> None:
    learner = dsac.Dsac(dsac.DsacArgs(hidden=16, diffusion=False), 4, 2)
    states = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    with torch.no_grad():
        probs = learner.actor(torch.from_numpy(states)).numpy()
    np.testing.assert_array_equal(learner.act(states, explore=False), probs.argmax(-1))


@pytest.mark.slow
def test_dsac_beats_random_on_cartpole_after_a_short_budget() -> None:
    """Fixed seed; a random policy averages ≈ 22 on CartPole-v1."""
    args = dsac.DsacArgs(gamma=0.99, hidden=64, batch_size=64, buffer_size=10_000,
                         warmup_steps=300, env_steps=2_500, lr_actor=3e-4, seed=1)  # fmt: skip
    learner, stats = dsac.train(args, CartPoleVecEnv())
    greedy = evaluate(learner, CartPoleVecEnv(), episodes=5, seed=123)
    assert np.mean(greedy) > 60.0, (greedy, stats.episode_returns[-10:])
