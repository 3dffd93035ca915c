"""MAPPO (coordinator/algorithms/mappo.py): its pieces by hand, then training, resuming,
learning and export on a tiny twin (3 devices, 2 edges, the paper's cost model)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from coordinator.algorithms import ALGORITHMS, TRAINED, Learner, get  # noqa: E402
from coordinator.algorithms.export import export_actors  # noqa: E402
from coordinator.algorithms.mappo import (  # noqa: E402
    Mappo,
    MappoArgs,
    Rollout,
    deployable_actors,
    gae,
    train,
)
from coordinator.algorithms.mappo_nets import (  # noqa: E402
    INPUT_CLIP,
    MIN_FEATURE_STD,
    RunningNorm,
    task_columns,
)
from coordinator.algorithms.rollout import Hooks, evaluate  # noqa: E402
from coordinator.envs import make_vec_env  # noqa: E402
from coordinator.envs.vector import VecEnv  # noqa: E402
from testbed.config import TestbedConfig, load_config  # noqa: E402
from testbed.observation import decode  # noqa: E402
from tests.toy_vec_env import ToyVecEnv  # noqa: E402

TINY = {"hidden": 16, "steps": 12, "rollout_steps": 4, "epochs": 2, "minibatches": 2,
        "eval_every": 6, "checkpoint_every": 6, "eval_episodes": 2, "threads": 1}  # fmt: skip
EVAL_SEED = 10**6


CALIBRATION = (
    Path(__file__).resolve().parents[2] / "docs/results/calibrations/2026-12-01/3/calibration.json"
)
"""The twin's prices without a built zoo: a committed calibration of the demo bench."""


def tiny_bench(*sets: str) -> TestbedConfig:
    base = ["agents.count=3", "edges.count=2", f"twin.calibration={CALIBRATION}"]
    return load_config(None, sets=[*base, *sets], env={})


def twin(cfg: TestbedConfig, num_envs: int, seed: int = 0) -> VecEnv:
    return make_vec_env(cfg, num_envs, seed=seed)


class _Record(Hooks):
    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.states: dict[int, dict[str, object]] = {}

    def row(self, metrics: dict[str, float]) -> None:
        self.rows.append(metrics)

    def checkpoint(self, step: int, state: dict[str, object], actors: object) -> None:
        self.states[step] = state


# ---------------------------------------------------------------------------- pieces


def test_gae_bootstraps_at_a_time_limit_and_restarts_there() -> None:
    """T = 3, one agent, γ = λ = 0.5; the episode ends after t = 1 (V of its last
    observation 10), V after the rollout 4. By hand:
    t=2: δ = 3 + 0.5·4 − 0.5 = 4.5, A = 4.5
    t=1: δ = 2 + 0.5·10 − 0.5 = 6.5, A = 6.5 (the recursion restarts: t=2 is the next episode)
    t=0: δ = 1 + 0.5·0.5 − 0.5 = 0.75, A = 0.75 + 0.25·6.5 = 2.375"""
    col = torch.tensor
    reward = col([1.0, 2.0, 3.0]).reshape(3, 1, 1)
    value = torch.full((3, 1, 1), 0.5)
    final = col([0.0, 10.0, 0.0]).reshape(3, 1, 1)
    done = col([False, True, False]).reshape(3, 1)
    adv = gae(reward, value, final, done, torch.full((1, 1), 4.0), 0.5, 0.5)
    assert torch.allclose(adv.flatten(), col([2.375, 6.5, 4.5]))


def test_running_norm_equals_the_moments_of_everything_seen() -> None:
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 4)) for n in (5, 17, 64)]
    for b in batches:
        b[:, 3] = 0.25  # a feature constant in training
    norm = RunningNorm(4)
    for b in batches:
        norm.update(torch.from_numpy(b))
    everything = np.concatenate(batches)
    assert np.allclose(norm.mean.numpy(), everything.mean(0))
    assert np.allclose(norm.var.numpy(), everything.var(0))
    scale = norm.feature_scale()
    assert scale[3] == 1.0 and torch.all(scale[:3] > MIN_FEATURE_STD)
    far = torch.tensor([[1e6, -1e6, 3.0, 1.25]])
    z = norm.features(far)
    assert z[0, 0] == INPUT_CLIP and z[0, 1] == -INPUT_CLIP
    assert torch.isclose(z[0, 3], torch.tensor(1.0))  # centred, not rescaled
    values = torch.linspace(-3, 3, 7)
    assert torch.allclose(RunningNorm(1).denormalise(RunningNorm(1).normalise(values)), values)


@pytest.mark.parametrize("model_aware", [True, False])
def test_ratio_and_flag_count_only_where_the_target_is_an_edge(model_aware: bool) -> None:
    env = ToyVecEnv(2, 3, model_aware=model_aware)
    agent = Mappo(MappoArgs(**TINY), env.spec, env.num_agents)  # type: ignore[arg-type]
    m = env.spec.num_edges
    logits = torch.randn(5, m + 3)
    target, z, d = torch.tensor([0, 0, 1, 2, 1]), torch.randn(5), torch.tensor([0.0, 1, 0, 1, 1])
    lp, _ = agent.log_prob_entropy(logits, target, z, d)
    lp_moved, _ = agent.log_prob_entropy(logits, target, z + 3.0, 1 - d)
    assert torch.allclose(lp[:2], lp_moved[:2])  # none: ratio and flag change nothing
    assert not torch.allclose(lp[2:], lp_moved[2:])
    target_d, ratio_d, flag_d = agent._dists(logits)
    expected = target_d.log_prob(target) + (target > 0) * (
        ratio_d.log_prob(z) + (flag_d.log_prob(d) if model_aware else 0.0)
    )
    assert torch.allclose(lp, expected)


def test_sampled_actions_execute_as_sampled() -> None:
    env = ToyVecEnv(64, 3)
    agent = Mappo(MappoArgs(**TINY), env.spec, env.num_agents)  # type: ignore[arg-type]
    decision = agent.sample(env.reset(seed=1))
    target, ratio, download = decode(env.spec, decision.raw)
    assert np.array_equal(target, decision.target.numpy() - 1)
    assert np.allclose(ratio[target >= 0], torch.sigmoid(decision.ratio_logit).numpy()[target >= 0])
    assert np.array_equal(download, decision.download.numpy() > 0.5)
    assert len({int(t) for t in decision.target.flatten()}) == env.spec.num_edges + 1


def test_the_rollout_learns_from_the_team_reward() -> None:
    env = ToyVecEnv(2, 3)
    agent = Mappo(MappoArgs(**TINY, team_reward=1.0), env.spec, env.num_agents)  # type: ignore[arg-type]
    obs = env.reset(seed=1)
    decision = agent.sample(obs)
    out = env.step(decision.raw)
    out.reward[:] = [[-1.0, -2.0, 0.0], [-3.0, -3.0, -3.0]]
    out.has_task[:] = [[True, True, False], [True, True, True]]
    own, roll = out.reward.copy(), Rollout()
    roll.add(obs, decision, agent.values(obs), out, torch.zeros(2, 3), agent.args.team_reward)
    assert np.allclose(roll.stacked()["reward"][0].numpy(), [[-1.5, -1.5, 0.0], [-3, -3, -3]])
    assert np.array_equal(out.reward, own)  # the env's (and the episode's) own rewards


def test_the_value_state_holds_every_agents_task_once() -> None:
    env = ToyVecEnv(2, 3)
    agent = Mappo(MappoArgs(**TINY), env.spec, env.num_agents)  # type: ignore[arg-type]
    obs = torch.from_numpy(env.reset(seed=0))
    cols = task_columns(env.spec)
    state = agent.raw_state(obs)
    d = env.spec.obs_dim
    assert state.shape == (2, 3, d + 3 * len(cols))
    for i in range(3):
        assert torch.equal(state[:, i, :d], obs[:, i])
        assert torch.equal(state[:, i, d:], obs[:, :, cols].flatten(1))
    assert agent.value_input(obs).shape == (2, 3, d + 3 * len(cols) + 3)


# ---------------------------------------------------------------------------- loop


def test_mappo_trains_checkpoints_and_resumes_on_a_tiny_twin() -> None:
    cfg = tiny_bench()
    hooks = _Record()
    _, last = train(MappoArgs(**TINY), twin(cfg, 4), eval_env=twin(cfg, 2, 7), hooks=hooks)  # type: ignore[arg-type]
    assert last is not None and np.isfinite(last.episode_reward)
    assert [r["step"] for r in hooks.rows if not np.isnan(r["eval_reward"])] == [6, 12]
    assert all(np.isfinite(r["critic_loss"]) for r in hooks.rows if r["step"] >= 4)
    assert sorted(hooks.states) == [6, 12]
    blob = io.BytesIO()
    torch.save(hooks.states[6], blob)  # what RunWriter writes, read back as it reads
    blob.seek(0)
    state = torch.load(blob, weights_only=True)
    # resumed at its own last step: nothing runs, everything is the checkpoint's
    restored, _ = train(MappoArgs(**{**TINY, "steps": 6}), twin(cfg, 4), resume=state)  # type: ignore[arg-type]
    again = restored.state_dict()
    for net in ("policy", "value"):
        for k, v in again[net].items():
            assert torch.equal(v, state["agent"][net][k]), (net, k)
    for k, v in again["obs_norm"].items():
        assert torch.equal(v, state["agent"]["obs_norm"][k])
    adam = again["policy_opt"]["state"][0]
    assert torch.equal(adam["exp_avg"], state["agent"]["policy_opt"]["state"][0]["exp_avg"])
    rows = _Record()  # and resumed towards 12 steps it carries on from step 7
    train(MappoArgs(**TINY), twin(cfg, 4), eval_env=twin(cfg, 2, 7), hooks=rows, resume=state)  # type: ignore[arg-type]
    assert [r["step"] for r in rows.rows] == [12] and sorted(rows.states) == [12]


def test_mappo_learns_to_beat_random_and_its_untrained_self() -> None:
    """The calibrated twin (a committed calibration of the demo bench), energy scale 10 J:
    Random ≈ −1.05 per task, Local-only ≈ −0.98, the untrained policy ≈ −1.07 and
    Greedy ≈ −0.64; 160 steps of MAPPO reach ≈ −0.76 (seed 0). It must clear Random,
    Local-only and its untrained self by a margin."""
    cfg = tiny_bench("train.num_envs=8", "reward.energy_scale_j=10")
    args = MappoArgs(**{**TINY, "hidden": 64, "steps": 160, "rollout_steps": 20, "epochs": 5,
                        "minibatches": 4, "eval_every": 160})  # fmt: skip
    evals = twin(cfg, 4, EVAL_SEED)
    untrained = Mappo(args, evals.spec, evals.num_agents)
    before = evaluate(evals, untrained.act, 4, EVAL_SEED).episode_reward
    _, last = train(args, twin(cfg, 8), eval_env=evals)
    assert last is not None
    baseline = {}
    for name in ("random", "local"):
        env = twin(cfg, 4, EVAL_SEED)
        baseline[name] = evaluate(env, get(name).heuristic(env), 4, EVAL_SEED).episode_reward
    assert last.episode_reward > baseline["random"] + 0.2, (last, baseline)
    assert last.episode_reward > before + 0.2, (last, before)
    assert last.episode_reward > baseline["local"] + 0.1, (last, baseline)


def test_exported_actors_match_torch_and_the_agents_own_policy(tmp_path: Path) -> None:
    cfg = tiny_bench()
    env = twin(cfg, 4)
    agent, _ = train(MappoArgs(**TINY), env)  # type: ignore[arg-type]
    assert agent.obs_norm.count > 0  # the exported actors carry non-trivial statistics
    actors = deployable_actors(agent)
    errors = export_actors(actors, env.agent_ids, env.spec, tmp_path)
    assert max(errors.values()) <= 1e-5
    import onnxruntime as ort

    obs = env.reset(seed=3)
    expected = agent.act(obs)
    for i, agent_id in enumerate(env.agent_ids):
        session = ort.InferenceSession(str(tmp_path / f"{agent_id}.onnx"))
        ours = session.run(None, {"obs": obs[:, i]})[0]
        assert ours.shape == (4, env.spec.action_dim)
        assert np.allclose(ours, expected[:, i], atol=1e-5)
        assert np.allclose(ours[:, : env.spec.num_edges + 1].sum(1), 1.0, atol=1e-5)


# ---------------------------------------------------------------------------- wiring


def test_mappo_is_registered_and_trains_through_train_run(tmp_path: Path) -> None:
    from coordinator.training import train_run

    algo = get("mappo")
    assert "mappo" in TRAINED and algo.learner is Learner.MAPPO and algo.model_aware
    assert ALGORITHMS["mato"].learner is Learner.MADDPG
    cfg = tiny_bench(f"run.out_dir={tmp_path}", "train.steps=8", "train.hidden=16",
                     "train.eval_every=4", "train.checkpoint_every=4", "train.eval_episodes=1",
                     "train.num_envs=2", "train.threads=1")  # fmt: skip
    run_dir, summary = train_run(cfg, "mappo")
    assert summary["title"] == "MAPPO" and summary["export_max_abs_error"] <= 1e-5
    assert sorted(p.name for p in (run_dir / "actors").iterdir()) == [
        f"{a}.onnx" for a in sorted(summary["agents"])
    ]
    state = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == 8 and set(state["agent"]) >= {"policy", "value", "obs_norm"}
    assert json.loads((run_dir / "summary.json").read_text())["baselines_eval"]["greedy"]
