"""What makes MADDPG-MATO learn (issue 11): the compact, standardised critic input, the
running normaliser and its checkpoint, exploration by sampling, per-agent gradient
clipping, parameter sharing and its export, and a short run that must learn."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from coordinator.algorithms import ALGORITHMS  # noqa: E402
from coordinator.algorithms.critic_input import CriticLayout, varying_columns  # noqa: E402
from coordinator.algorithms.exploration import clip_grad_per_agent, explore  # noqa: E402
from coordinator.algorithms.maddpg import (  # noqa: E402
    Maddpg,
    MaddpgArgs,
    critic_columns,
    deployable_actors,
    train,
)
from coordinator.algorithms.normalizer import CLIP, STD_FLOOR, RunningNorm  # noqa: E402
from coordinator.algorithms.rollout import Hooks, evaluate  # noqa: E402
from testbed.config import load_config  # noqa: E402
from testbed.config.runs import CriticInput  # noqa: E402
from testbed.observation import ObservationSpec  # noqa: E402
from tests.toy_vec_env import ToyVecEnv, toy_spec  # noqa: E402

CALIBRATION = (
    Path(__file__).resolve().parents[2] / "docs/results/calibrations/2026-12-01/3/calibration.json"
)
"""The twin's prices without a built zoo: a committed calibration of the demo bench."""

TINY = {"hidden": 16, "batch_size": 32, "buffer_size": 200, "steps": 12, "warmup_steps": 4,
        "eval_every": 6, "checkpoint_every": 6, "eval_episodes": 2, "threads": 1}  # fmt: skip


# ---------------------------------------------------------------------------- critic input


def test_varying_columns_are_each_agents_task_queue_and_holds_flags() -> None:
    spec = ObservationSpec.from_config(load_config(None, env={}))  # 3 types, 3 edges
    names = [spec.feature_names()[c] for c in varying_columns(spec)]
    m, k = spec.num_edges, len(spec.task_types)
    assert len(names) == k + 3 + 1 + m
    assert "self_queue" in names and "edge0_holds_task_model" in names
    # global (the same for every agent) and fixed features are not repeated
    assert not any(n.startswith("cloud") or "cached=" in n or "cache_free" in n for n in names)
    assert not any(n.endswith(("_rate", "_x", "_y", "_ghz")) for n in names)


def test_compact_input_holds_the_global_state_once_and_is_standardised() -> None:
    spec = ObservationSpec.from_config(load_config(None, env={}))
    n, a, d = 10, len(critic_columns(spec)), spec.obs_dim
    f = len(varying_columns(spec))
    compact = CriticLayout(spec, n, a, mode=CriticInput.COMPACT, centralised=True, share=False)
    paper = CriticLayout(spec, n, a, mode=CriticInput.PAPER, centralised=True, share=False)
    assert paper.width == n * (d + a) == 510  # the default bench's literal input
    assert compact.width == d + (n - 1) * f + n * a == 195
    rng = np.random.default_rng(0)
    obs = rng.uniform(size=(64, n, d)).astype(np.float32)
    obs[..., : d // 2] = 0.3  # half the columns constant, as in the twin
    norm = RunningNorm(n, d)
    norm.update(obs)
    act = torch.rand(64, n, a)
    x = compact.build(torch.from_numpy(obs), act, norm)
    assert x.shape == (n, 64, 195)
    own = x[..., :d]
    assert torch.allclose(own[..., d // 2 :].mean(1), torch.zeros(n, d - d // 2), atol=1e-4)
    assert torch.allclose(own[..., d // 2 :].std(1, unbiased=False), torch.ones(n, d - d // 2),
                          atol=1e-3)  # fmt: skip
    assert torch.all(own[..., : d // 2] == 0)  # constant columns: 0, not ±inf
    # agent 3's critic sees agent 0's varying features first, and every agent's action
    others = x[3, :, d : d + (n - 1) * f].reshape(64, n - 1, f)
    assert torch.allclose(
        others[:, 0], norm.normalise(torch.from_numpy(obs))[:, 0, varying_columns(spec)]
    )
    assert torch.equal(x[3, :, -n * a :], act.flatten(1))
    raw = paper.build(torch.from_numpy(obs), act, norm)
    assert raw.shape == (64, 510) and torch.equal(raw[:, :d], torch.from_numpy(obs)[:, 0])


@pytest.mark.parametrize("n", [5, 20])
def test_mean_field_input_averages_the_others_and_keeps_its_width(n: int) -> None:
    spec = ObservationSpec.from_config(load_config(None, env={}))
    a, d, f = len(critic_columns(spec)), spec.obs_dim, len(varying_columns(spec))
    layout = CriticLayout(spec, n, a, mode=CriticInput.MEAN_FIELD, centralised=True, share=False)
    assert layout.width == d + f + 2 * a == 67  # the same at 5 and 20 devices
    rng = np.random.default_rng(2)
    obs = torch.from_numpy(rng.uniform(size=(8, n, d)).astype(np.float32))
    act = torch.rand(8, n, a)
    norm = RunningNorm(n, d)
    norm.update(obs.numpy())
    x = layout.build(obs, act, norm)
    assert x.shape == (n, 8, layout.width)
    z, i = norm.normalise(obs), 1
    others = [j for j in range(n) if j != i]
    assert torch.allclose(x[i, :, :d], z[:, i])
    assert torch.allclose(x[i, :, d : d + f], z[:, others][..., varying_columns(spec)].mean(1))
    assert torch.equal(x[i, :, d + f : d + f + a], act[:, i])
    assert torch.allclose(x[i, :, d + f + a :], act[:, others].mean(1), atol=1e-6)


def test_shared_critic_input_ends_with_the_agent_id() -> None:
    spec = toy_spec()
    layout = CriticLayout(spec, 3, 5, mode=CriticInput.COMPACT, centralised=False, share=True)
    x = layout.build(
        torch.rand(4, 3, spec.obs_dim), torch.rand(4, 3, 5), RunningNorm(3, spec.obs_dim)
    )
    assert x.shape == (3, 4, spec.obs_dim + 5 + 3)
    assert torch.equal(x[2, :, -3:], torch.tensor([[0.0, 0.0, 1.0]] * 4))


# ---------------------------------------------------------------------------- normaliser


def test_running_norm_equals_the_statistics_of_everything_it_saw() -> None:
    rng = np.random.default_rng(1)
    batches = [rng.normal(3.0, 2.0, (int(rng.integers(1, 50)), 2, 4)) for _ in range(20)]
    norm = RunningNorm(2, 4)
    for b in batches:
        norm.update(b)
    every = np.concatenate(batches)
    assert norm.count == len(every)
    assert np.allclose(norm.mean, every.mean(0)) and np.allclose(norm.var, every.var(0))
    x = torch.tensor([[[1e6, 3.0, 3.0, 3.0]] * 2])
    assert norm.normalise(x).max() == CLIP  # clipped
    const = RunningNorm(1, 1)
    const.update(np.full((10, 1, 1), 0.7))
    assert float(const.tensors()[1]) == pytest.approx(STD_FLOOR)


class _Record(Hooks):
    def __init__(self) -> None:
        self.states: dict[int, dict[str, object]] = {}

    def checkpoint(self, step: int, state: dict[str, object], actors: object) -> None:
        self.states[step] = state


def test_a_checkpoint_saves_and_resumes_the_normaliser() -> None:
    straight = _Record()
    agent, _ = train(MaddpgArgs(**TINY), ToyVecEnv(4, 3), hooks=straight)  # type: ignore[arg-type]
    blob = io.BytesIO()
    torch.save(straight.states[6], blob)
    blob.seek(0)
    state = torch.load(blob, weights_only=True)  # enums stored as plain strings
    assert state["args"]["critic_input"] == "compact"
    norm = state["agent"]["obs_norm"]
    assert int(norm["count"]) == 6 * 4  # 6 steps of 4 environments
    restored, _ = train(MaddpgArgs(**{**TINY, "steps": 6}), ToyVecEnv(4, 3), resume=state)  # type: ignore[arg-type]
    assert restored.norm.count == 24
    assert np.array_equal(restored.norm.mean, norm["mean"].numpy())
    assert agent.norm.count == 12 * 4


# ---------------------------------------------------------------------------- exploration


def test_the_epsilon_floor_still_offloads_when_the_actor_leans_all_local() -> None:
    spec = toy_spec()  # (none, e0, e1, x, d)
    probs = np.tile(np.array([1.0, 0.0, 0.0, 0.5, 0.0], np.float32), (20_000, 1))
    rng = np.random.default_rng(0)
    out = explore(spec, probs, eps=0.3, ratio_std=0.1, rng=rng)
    target = out[:, :3].argmax(-1)
    assert np.all(out[:, :3].sum(-1) == 1)  # an executable one-hot
    assert np.mean(target != 0) == pytest.approx(0.3 * 2 / 3, abs=0.01)
    assert np.mean(target == 1) == pytest.approx(0.1, abs=0.01)
    assert np.mean(out[:, 4]) == pytest.approx(0.15, abs=0.01)  # download: ε/2
    assert 0.05 < np.std(out[:, 3]) < 0.15 and np.all((out[:, 3] >= 0) & (out[:, 3] <= 1))
    # without the floor a certain actor is followed exactly (noise on probabilities
    # would never flip it either: what the floor is for)
    none = explore(spec, probs, eps=0.0, ratio_std=0.0, rng=rng)
    assert np.all(none[:, 0] == 1) and np.all(none[:, 4] == 0)


def test_exploration_samples_from_the_policy() -> None:
    probs = np.tile(np.array([0.1, 0.6, 0.3, 0.5, 0.8], np.float32), (20_000, 1))
    out = explore(toy_spec(), probs, eps=0.0, ratio_std=0.0, rng=np.random.default_rng(2))
    freq = np.bincount(out[:, :3].argmax(-1), minlength=3) / len(out)
    assert np.allclose(freq, [0.1, 0.6, 0.3], atol=0.015)
    assert np.mean(out[:, 4]) == pytest.approx(0.8, abs=0.015)


def test_args_decay_epsilon_and_noise_over_training() -> None:
    args = MaddpgArgs(steps=101, explore_eps_start=0.2, explore_eps_end=0.0)
    assert (args.eps(0), args.eps(50), args.eps(100)) == pytest.approx((0.2, 0.1, 0.0))


# ---------------------------------------------------------------------------- clipping


def test_gradients_are_clipped_per_agent() -> None:
    params = {
        "w": torch.zeros(3, 4, requires_grad=True),
        "b": torch.zeros(3, 2, requires_grad=True),
    }
    params["w"].grad = torch.tensor([[3.0, 0, 0, 0], [0.1, 0, 0, 0], [0, 0, 0, 0]])
    params["b"].grad = torch.tensor([[0, 4.0], [0, 0], [0, 0]])
    norms = clip_grad_per_agent(params, 0.5)
    assert norms.tolist() == pytest.approx([5.0, 0.1, 0.0])
    after = (params["w"].grad.square().sum(1) + params["b"].grad.square().sum(1)).sqrt()
    assert after.tolist() == pytest.approx([0.5, 0.1, 0.0], abs=1e-5)  # small ones untouched
    assert params["b"].grad[0, 1] == pytest.approx(0.4)  # direction kept


def test_an_update_respects_the_clip() -> None:
    env = ToyVecEnv(4, 3)
    agent = Maddpg(MaddpgArgs(**{**TINY, "grad_clip_norm": 1e-3, "lr_critic": 1.0}), env.spec, 3)  # type: ignore[arg-type]
    before = {k: v.detach().clone() for k, v in agent.critic.params.items()}
    obs = env.reset(seed=0)
    from coordinator.algorithms.replay import Batch

    half, reward = np.full((32, 3, 5), 0.5, np.float32), np.full((32, 3), -5.0, np.float32)
    b = Batch(obs.repeat(8, 0), half, reward, obs.repeat(8, 0), np.zeros(32, np.float32))
    stats = agent.update(b)
    assert stats["critic_grad_norm"] > 1e-3  # it had to clip
    # Adam's first step moves every weight by lr regardless; the clip shows in its state
    m = agent.critic_opt.state_dict()["state"]
    first = {k: v for k, v in zip(agent.critic.params, m.values(), strict=True)}
    norm = (
        torch.stack([s["exp_avg"].reshape(3, -1).square().sum(1) for s in first.values()])
        .sum(0)
        .sqrt()
    )
    assert torch.all(norm <= 0.1 * 1e-3 + 1e-9)  # exp_avg = (1 − β1)·g, g clipped
    assert any(not torch.equal(before[k], v) for k, v in agent.critic.params.items())


# ---------------------------------------------------------------------------- sharing


@pytest.mark.parametrize("centralised", [True, False])
def test_shared_parameters_are_one_network_and_export_one_actor_per_agent(
    centralised: bool, tmp_path: object
) -> None:
    from coordinator.algorithms.export import export_actors

    env = ToyVecEnv(4, 5)
    args = MaddpgArgs(**{**TINY, "share_parameters": True, "centralised_critic": centralised})  # type: ignore[arg-type]
    agent, _ = train(args, env)
    assert all(v.shape[0] == 1 for v in agent.actor.params.values())
    assert all(v.shape[0] == 1 for v in agent.critic.params.values())
    obs = env.reset(seed=3)
    together = agent.act(obs)  # (E, N, A): the shared net with each agent's id
    actors = deployable_actors(agent)
    assert len(actors) == 5
    for i, actor in enumerate(actors):
        with torch.no_grad():
            alone = actor(torch.from_numpy(obs[:, i])).numpy()
        assert np.allclose(alone, together[:, i], atol=1e-6)
    assert not np.allclose(together[:, 0], together[:, 1])  # the id matters
    errors = export_actors(actors, env.agent_ids, env.spec, tmp_path / "actors")  # type: ignore[operator]
    assert max(errors.values()) <= 1e-5  # ONNX takes the raw observation alone

    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "actors" / "agent-2.onnx"))  # type: ignore[operator]
    assert [i.shape[-1] for i in session.get_inputs()] == [env.spec.obs_dim]
    onnx_out = session.run(None, {"obs": obs[:, 2]})[0]
    assert np.allclose(onnx_out, together[:, 2], atol=1e-5)


# ---------------------------------------------------------------------------- ratio head


def test_a_ratio_margin_reaches_exactly_zero_and_one_and_keeps_a_gradient() -> None:
    from coordinator.actors import ratio_of

    z = torch.tensor([-4.0, -1.0, 0.0, 1.0, 4.0], requires_grad=True)
    assert torch.equal(ratio_of(z, 0.0), torch.sigmoid(z))  # the paper's σ(z)
    x = ratio_of(z, 0.05)
    assert x[0].item() == 0.0 and x[-1].item() == 1.0  # |z| > ln(1.05 / 0.05) ≈ 3.04
    assert x[2].item() == pytest.approx(0.5) and 0.0 < x[1].item() < x[3].item() < 1.0
    soft = ratio_of(z, 0.05, straight_through=True)
    assert torch.allclose(soft, x)
    soft.sum().backward()
    assert z.grad is not None and bool(torch.all(z.grad > 0))  # through the clamp too


def test_an_actor_with_a_ratio_margin_exports_whole_offload_exactly(tmp_path: object) -> None:
    from coordinator.algorithms.export import export_actors

    env = ToyVecEnv(4, 3)
    agent, _ = train(MaddpgArgs(**{**TINY, "ratio_margin": 0.05}), env)  # type: ignore[arg-type]
    actors = deployable_actors(agent)
    head = actors[0].head
    with torch.no_grad():  # push agent 0's ratio logit far up: x = 1 exactly
        head.bias[env.spec.num_edges + 1] = 50.0
        head.weight[env.spec.num_edges + 1] = 0.0
    export_actors(actors, env.agent_ids, env.spec, tmp_path / "actors")  # type: ignore[operator]
    import onnxruntime as ort

    obs = env.reset(seed=1)
    session = ort.InferenceSession(str(tmp_path / "actors" / "agent-0.onnx"))  # type: ignore[operator]
    out = session.run(None, {"obs": obs[:, 0]})[0]
    assert np.all(out[:, env.spec.num_edges + 1] == 1.0)


# ---------------------------------------------------------------------------- learning


def test_mato_learns_to_offload_where_offloading_clearly_wins() -> None:
    """A tiny twin (3 devices, 2 edges, slow devices, energy cheap): Greedy ≈ −0.14 per
    task, Local-only ≈ −0.87, untrained actors ≈ −0.88. 150 steps must leave Local far
    behind."""
    from coordinator.envs import make_vec_env

    sets = ["agents.count=3", "edges.count=2", "reward.energy_scale_j=100",
            f"twin.calibration={CALIBRATION}", "agents.cpu_ghz_range=[0.3,0.5]"]  # fmt: skip
    cfg = load_config(None, sets=sets, env={})
    args = MaddpgArgs(hidden=64, batch_size=64, buffer_size=5000, steps=150, warmup_steps=30,
                      eval_every=150, checkpoint_every=10**6, eval_episodes=2,
                      threads=1)  # fmt: skip
    _, last = train(args, make_vec_env(cfg, 8, seed=0), eval_env=make_vec_env(cfg, 2, seed=99))
    twin = make_vec_env(cfg, 2, seed=99)
    local = evaluate(twin, ALGORITHMS["local"].heuristic(twin), 2, seed=10**6)
    assert last is not None
    assert last.episode_reward > local.episode_reward + 0.3, (last, local)
