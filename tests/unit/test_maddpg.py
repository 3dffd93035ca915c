"""MADDPG-MATO and its variants, piece by piece, on a tiny in-test environment."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from coordinator.algorithms import ALGORITHMS, TRAINED, get  # noqa: E402
from coordinator.algorithms.maddpg import (  # noqa: E402
    Maddpg,
    MaddpgArgs,
    critic_columns,
    critic_forward,
    executed,
    train,
)
from coordinator.algorithms.replay import ReplayBuffer  # noqa: E402
from coordinator.algorithms.rollout import Hooks, ModelBlindEnv, evaluate  # noqa: E402
from coordinator.algorithms.team_reward import shared_reward  # noqa: E402
from testbed.config import load_config  # noqa: E402
from testbed.observation import ObservationSpec  # noqa: E402
from tests.toy_vec_env import ToyVecEnv, toy_spec  # noqa: E402

TINY = {"hidden": 16, "batch_size": 32, "buffer_size": 200, "steps": 12, "warmup_steps": 4,
        "eval_every": 6, "checkpoint_every": 6, "eval_episodes": 2, "threads": 1}  # fmt: skip


def _rows(buf: ReplayBuffer, start: int, n: int) -> None:
    """Add n transitions whose reward of agent 0 is its sequence number."""
    ids = np.arange(start, start + n, dtype=np.float32)
    obs = np.broadcast_to(ids[:, None, None], (n, 2, 3)).copy()
    buf.add(obs, np.zeros((n, 2, 4), np.float32), np.stack([ids, -ids], 1), obs + 1,
            np.zeros(n, bool))  # fmt: skip


# ---------------------------------------------------------------------------- replay


def test_replay_is_a_ring_that_overwrites_the_oldest() -> None:
    buf = ReplayBuffer(5, num_agents=2, obs_dim=3, action_dim=4)
    _rows(buf, 0, 3)
    assert (len(buf), buf.pos) == (3, 3)
    _rows(buf, 3, 4)  # 7 rows into 5: rows 0 and 1 are gone
    assert (len(buf), buf.pos) == (5, 2)
    assert sorted(buf.rewards[:, 0].tolist()) == [2, 3, 4, 5, 6]
    _rows(buf, 7, 12)  # more than the capacity at once: the newest 5 survive
    assert sorted(buf.rewards[:, 0].tolist()) == [14, 15, 16, 17, 18]
    batch = buf.sample(64, np.random.default_rng(0))
    assert batch.obs.shape == (64, 2, 3) and batch.actions.shape == (64, 2, 4)
    assert set(batch.rewards[:, 0].tolist()) <= {14, 15, 16, 17, 18}
    assert np.all(batch.next_obs == batch.obs + 1)  # rows stay whole
    assert np.all(batch.rewards[:, 1] == -batch.rewards[:, 0])


def test_replay_samples_only_filled_rows_and_survives_a_checkpoint() -> None:
    buf = ReplayBuffer(100, num_agents=2, obs_dim=3, action_dim=4)
    with pytest.raises(ValueError):
        buf.sample(4, np.random.default_rng(0))
    _rows(buf, 1, 10)
    assert set(buf.sample(500, np.random.default_rng(0)).rewards[:, 0].tolist()) == set(
        range(1, 11)
    )
    blob = io.BytesIO()
    torch.save(buf.state_dict(), blob)
    blob.seek(0)
    again = ReplayBuffer(100, num_agents=2, obs_dim=3, action_dim=4)
    again.load_state_dict(torch.load(blob, weights_only=True))
    assert (len(again), again.pos) == (10, 10)
    assert np.array_equal(again.obs[:10], buf.obs[:10])


# ---------------------------------------------------------------------------- actions


def test_executed_actions_are_the_decoded_decision() -> None:
    spec = toy_spec()  # 2 edges: (none, e0, e1, x, d)
    raw = np.array([[0.1, 0.7, 0.2, 0.4, 0.9], [0.8, 0.1, 0.1, 0.4, 0.9]], np.float32)
    out = executed(spec, raw)
    assert np.allclose(out, [[0, 1, 0, 0.4, 1], [1, 0, 0, 0, 1]])
    blind = executed(toy_spec(model_aware=False), raw * [1, 1, 1, 1, 0])
    assert blind[:, -1].tolist() == [1, 1]  # NoModel: the edge always fetches


def _agent(**kw: object) -> tuple[Maddpg, ToyVecEnv]:
    env = ToyVecEnv(4, 3, model_aware=bool(kw.get("model_aware", True)))
    return Maddpg(MaddpgArgs(**{**TINY, **kw}), env.spec, env.num_agents), env  # type: ignore[arg-type]


@pytest.mark.parametrize("model_aware", [True, False])
def test_relaxed_actions_are_valid_and_carry_gradients(model_aware: bool) -> None:
    agent, env = _agent(model_aware=model_aware)
    m = env.spec.num_edges
    logits = torch.randn(3, 256, env.spec.action_dim, requires_grad=True)
    relaxed = agent._relaxed(logits)
    assert relaxed.shape[-1] == len(critic_columns(env.spec)) == m + 2 + model_aware
    assert torch.all((relaxed >= 0) & (relaxed <= 1 + 1e-6))

    def binary(x: torch.Tensor) -> bool:  # straight-through: hard values up to rounding
        return bool(torch.all(torch.minimum(x.abs(), (1 - x).abs()) < 1e-6))

    target = relaxed[..., : m + 1]
    assert binary(target) and torch.allclose(target.sum(-1), torch.ones(3, 256))
    if model_aware:
        assert binary(relaxed[..., -1])
    weights = torch.randn(relaxed.shape[-1])
    (relaxed * weights).sum().backward()
    assert logits.grad is not None
    # every head gets a gradient: targets, ratio and (model-aware) the download logit
    used = m + 2 + model_aware
    assert torch.all(logits.grad[..., :used].abs().sum((0, 1)) > 0)
    hard = agent._hard(logits.detach())
    assert torch.all((hard >= 0) & (hard <= 1))
    assert torch.all(hard[..., : m + 1].argmax(-1) == logits[..., : m + 1].argmax(-1))


def test_a_team_reward_shares_the_slot_s_mean_and_keeps_its_total() -> None:
    reward = np.array([[-1.0, -3.0, 0.0], [-2.0, 0.0, 0.0]], dtype=np.float32)
    has = np.array([[True, True, False], [True, False, False]])
    assert shared_reward(reward, has, 0.0) is reward  # the paper's: each device's own
    np.testing.assert_allclose(shared_reward(reward, has, 1.0), [[-2, -2, 0], [-2, 0, 0]])
    half = shared_reward(reward, has, 0.5)  # (1 − α)·r_i + α·mean over devices with a task
    np.testing.assert_allclose(half, [[-1.5, -2.5, 0], [-2, 0, 0]])
    np.testing.assert_allclose(half.sum(axis=1), reward.sum(axis=1))
    assert half.dtype == np.float32


def test_soft_update_moves_targets_by_tau() -> None:
    agent, _env = _agent(tau=0.25)
    before = {k: v.clone() for k, v in agent.critic_target.params.items()}
    with torch.no_grad():
        for v in agent.critic.params.values():
            v.add_(1.0)
    agent.critic_target.soft_update(agent.critic, 0.25)
    for k, v in agent.critic_target.params.items():
        expected = 0.75 * before[k] + 0.25 * agent.critic.params[k]
        assert torch.allclose(v, expected, atol=1e-6)


# ---------------------------------------------------------------------------- networks


@pytest.mark.parametrize("centralised", [True, False])
def test_critic_input_sizes(centralised: bool) -> None:
    agent, env = _agent(centralised_critic=centralised, critic_input="paper")
    d, a, n = env.spec.obs_dim, len(critic_columns(env.spec)), env.num_agents
    w1 = agent.critic.params["l1.weight"]
    assert w1.shape == (n, TINY["hidden"], n * (d + a) if centralised else d + a)
    assert agent.actor.params["actor.body.0.weight"].shape == (n, TINY["hidden"], d)


LAYOUTS = [
    {"centralised_critic": c, "critic_input": m, "share_parameters": s}
    for c in (True, False) for m in ("compact", "paper", "mean_field") for s in (False, True)
]  # fmt: skip


@pytest.mark.parametrize("flags", LAYOUTS, ids=lambda f: "-".join(map(str, f.values())))
def test_own_action_shortcut_equals_a_full_critic_pass(flags: dict[str, object]) -> None:
    """The actor loss's first layer: z1 + W1[:, a_i]·(new − a_i) = a full pass with a_i
    replaced in agent i's critic input, for every critic layout."""
    agent, env = _agent(**flags)
    n, b, d = env.num_agents, 5, env.spec.obs_dim
    a = len(agent.cols)
    obs, act, new = torch.rand(b, n, d), torch.rand(b, n, a), torch.rand(n, b, a)
    agent.norm.update(np.random.default_rng(0).uniform(size=(50, n, d)))
    p, same = agent.critic.params, agent.layout.same_for_all
    _, z1 = critic_forward(p, agent._critic_in(obs, act), shared=same)
    fast = z1 + torch.bmm(new - act.transpose(0, 1), agent._own_action_weights(p["l1.weight"]).mT)
    for i in range(n):
        replaced = act.clone()
        replaced[:, i] = new[i]
        _, full = critic_forward(p, agent._critic_in(obs, replaced), shared=same)
        assert torch.allclose(fast[i], full[i], atol=1e-5)


def test_nomodel_spec_drops_model_features_and_the_download_action() -> None:
    cfg = load_config(None, env={})
    aware = ObservationSpec.from_config(cfg)
    blind = ObservationSpec.from_config(cfg, model_aware=False)
    m, models = aware.num_edges, len(aware.models)
    assert aware.obs_dim - blind.obs_dim == m * (1 + models)
    assert blind.action_dim == aware.action_dim == m + 3  # the actor's layout stays
    assert len(critic_columns(aware)) == m + 3 and len(critic_columns(blind)) == m + 2
    env = ModelBlindEnv(ToyVecEnv(2, 3))
    assert env.spec.obs_dim == toy_spec(model_aware=False).obs_dim
    assert env.reset(seed=1).shape == (2, 3, env.spec.obs_dim)


# ---------------------------------------------------------------------------- loop


class _Record(Hooks):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.states: dict[int, dict[str, object]] = {}

    def row(self, metrics: dict[str, float]) -> None:
        self.rows.append(metrics)

    def checkpoint(self, step: int, state: dict[str, object], actors: object) -> None:
        self.states[step] = state


@pytest.mark.parametrize("name", TRAINED)
def test_every_trained_algorithm_runs_a_few_steps(name: str) -> None:
    algo = get(name)
    env = ToyVecEnv(4, 3, model_aware=algo.model_aware)
    evals = ToyVecEnv(2, 3, model_aware=algo.model_aware, seed=9)
    hooks = _Record()
    args = MaddpgArgs(**{**TINY, **algo.flags})  # type: ignore[arg-type]
    agent, last = train(args, env, eval_env=evals, hooks=hooks)
    assert last is not None and np.isfinite(last.episode_reward)
    assert [r["step"] for r in hooks.rows if not np.isnan(r["eval_reward"])] == [6, 12]
    assert all(np.isfinite(r["critic_loss"]) for r in hooks.rows if r["step"] > 4)
    assert sorted(hooks.states) == [6, 12]
    actions = agent.act(env.reset(seed=0))
    assert actions.shape == (4, 3, env.spec.action_dim) and np.all((actions >= 0) & (actions <= 1))


def test_a_checkpoint_restores_networks_optimisers_and_replay() -> None:
    straight = _Record()
    train(MaddpgArgs(**TINY), ToyVecEnv(4, 3), hooks=straight)  # type: ignore[arg-type]
    blob = io.BytesIO()
    torch.save(straight.states[6], blob)  # what RunWriter writes, read back as it reads
    blob.seek(0)
    state = torch.load(blob, weights_only=True)
    # resumed at its own last step: nothing runs, everything is the checkpoint's
    restored, _ = train(MaddpgArgs(**{**TINY, "steps": 6}), ToyVecEnv(4, 3), resume=state)  # type: ignore[arg-type]
    again = restored.state_dict()
    for name in ("actor", "critic", "actor_target", "critic_target"):
        for k, v in again[name].items():
            assert torch.equal(v, state["agent"][name][k]), (name, k)
    adam = again["critic_opt"]["state"][0]
    assert torch.equal(adam["exp_avg"], state["agent"]["critic_opt"]["state"][0]["exp_avg"])
    # and resumed towards 12 steps it carries on from step 7
    rows = _Record()
    train(MaddpgArgs(**TINY), ToyVecEnv(4, 3), hooks=rows, resume=state)  # type: ignore[arg-type]
    assert rows.rows[0]["step"] > 6 and sorted(rows.states) == [12]


def test_the_registry_says_what_each_algorithm_is() -> None:
    assert set(ALGORITHMS) >= {"mato", "nomodel", "saddpg", "random", "greedy"}
    assert set(TRAINED) >= {"mato", "nomodel", "saddpg"}
    assert get("mato").flags == {"centralised_critic": True, "model_aware": True}
    assert get("nomodel").flags == {"centralised_critic": True, "model_aware": False}
    assert get("saddpg").flags == {"centralised_critic": False, "model_aware": True}
    with pytest.raises(KeyError, match="choose from"):
        get("ppo")
    with pytest.raises(ValueError):
        get("random").train(load_config(None, env={}), ToyVecEnv())


def test_evaluation_counts_tasks_and_episodes() -> None:
    env = ToyVecEnv(3, 2, episode_slots=4)
    stats = evaluate(env, lambda obs: np.zeros((*obs.shape[:-1], env.spec.action_dim)), 3, 0)
    assert stats.episodes == 3 and stats.tasks == 3 * 2 * 4
    assert 0 <= stats.completion <= 1 and stats.episode_reward < 0
