"""The §B schedulers exported for the boards (coordinator/algorithms/discrete_export.py)
and run there (testbed/policies/discrete_actor.py): ONNX equals torch within 1e-5 on
the same noise for DSAC's diffusion actor at 1 and 5 steps, its MLP ablation and a
DQN; the board's greedy action is torch's argmax and its sampled one follows the
softmax; a file whose spec lies is refused; a failing export writes nothing.
(One diffusion step equal to an MLP policy: tests/unit/test_diffusion_actor.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from coordinator.algorithms import discrete_export  # noqa: E402
from coordinator.algorithms.discrete_export import (  # noqa: E402
    BoardGraph,
    actor_spec,
    export_graph,
    export_learner,
    station_one_hot_columns,
    twin_observations,
)
from coordinator.algorithms.discrete_loop import input_dim, learner_inputs  # noqa: E402
from coordinator.algorithms.dqn import Dqn, DqnArgs  # noqa: E402
from coordinator.algorithms.dsac import Dsac, DsacArgs  # noqa: E402
from coordinator.envs.coedge_twin import CoedgeTwin  # noqa: E402
from coordinator.schedulers import SCHEDULERS, LearnerKind, scheduler_config  # noqa: E402
from testbed.config import load_config  # noqa: E402
from testbed.config.coedge import CoedgeActionMode  # noqa: E402
from testbed.exit_codes import ExitCode, TestbedExit  # noqa: E402
from testbed.policies.actor import ActorMismatch  # noqa: E402
from testbed.policies.discrete_actor import (  # noqa: E402
    DiscreteActor,
    DiscreteActorKind,
    DiscreteActorSpec,
    sample_softmax,
)

ROOT = Path(__file__).resolve().parents[2]
CFG = load_config(ROOT / "testbed.yaml", sets=[("coedge.max_tasks", 4)])
"""Five heterogeneous servers (the config's), a few tasks per slot."""
CASES = {
    "diffusion-1": ("ddrl-amsa", 1),
    "diffusion-5": ("ddrl-amsa", 5),
    "mlp": ("ddrl-amsa-mlp", 0),
    "dqn-one": ("drlcoedge", 0),
    "dqn-topk": ("smcoedge", 0),
}


def _learner(name: str, steps: int = 5, seed: int = 0) -> tuple[Any, Any]:
    """A fresh (untrained) learner of scheduler `name` and the config it decides on."""
    cfg = scheduler_config(name, CFG)
    twin = CoedgeTwin.from_config(cfg, 1, seed)
    in_dim, actions = input_dim(twin), twin.num_actions
    if SCHEDULERS[name].learner is LearnerKind.DQN:
        return Dqn(DqnArgs(hidden=32, seed=seed), in_dim, actions), cfg
    args = DsacArgs(diffusion=SCHEDULERS[name].diffusion, diffusion_steps=max(steps, 1),
                    hidden=32, seed=seed)  # fmt: skip
    return Dsac(args, in_dim, actions), cfg


def _torch_output(learner: Any, obs: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """The learner's own output the training way: learner_inputs, then the network."""
    x = torch.from_numpy(learner_inputs(obs))
    with torch.no_grad():
        if hasattr(learner, "q"):
            return learner.q(x).numpy()  # type: ignore[no-any-return]
        noise_t = None if noise is None else torch.from_numpy(noise)
        return learner.actor.logits(x, noise_t).numpy()  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_on_the_board_equals_torch_given_the_same_noise(case: str) -> None:
    name, steps = CASES[case]
    learner, cfg = _learner(name, steps)
    exported = export_learner(learner, name, cfg, seed=0)
    board = DiscreteActor.load(exported.model, exported.spec.to_json())
    assert board.system == "coedge" and board.obs_dim == 3 * 5 + 3
    assert board.num_actions == learner.num_actions
    assert exported.spec.diffusion_steps == steps
    obs = twin_observations(cfg, seed=11)  # (rows, N, obs_dim): the board's observations
    flat = obs.reshape(-1, obs.shape[-1])
    noise = board.draw_noise(len(flat), np.random.default_rng(3))
    assert (noise is None) == (steps == 0)
    ours, theirs = board.raw(flat, noise), _torch_output(learner, obs, noise)
    assert ours.shape == theirs.shape == (len(flat), learner.num_actions)
    assert float(np.max(np.abs(ours - theirs))) <= 1e-5
    assert float(np.std(theirs)) > 1e-3  # not a constant network agreeing trivially
    assert max(exported.errors["output"], exported.errors.get("probs", 0.0)) <= 1e-5


@pytest.mark.parametrize("case", list(CASES))
def test_greedy_act_is_torchs_argmax(case: str) -> None:
    name, steps = CASES[case]
    learner, cfg = _learner(name, steps, seed=1)
    exported = export_learner(learner, name, cfg, seed=1)
    board = DiscreteActor.load(exported.model, exported.spec.to_json())
    obs = twin_observations(cfg, seed=5)
    flat = obs.reshape(-1, obs.shape[-1])
    picks = board.act(flat, np.random.default_rng(9), greedy=True)
    # the board draws the chain's noise first from its generator: the same draw here
    noise = board.draw_noise(len(flat), np.random.default_rng(9))
    expected = _torch_output(learner, obs, noise).argmax(axis=1)
    assert picks.dtype == np.int64 and picks.shape == (len(flat),)
    np.testing.assert_array_equal(picks, expected)
    if steps:  # other noise, other logits: the chain's noise is really an input
        again = board.raw(flat, board.draw_noise(len(flat), np.random.default_rng(10)))
        assert not np.allclose(again, board.raw(flat, noise), atol=1e-4)


def test_sampled_act_follows_the_softmax_of_the_logits() -> None:
    learner, cfg = _learner("ddrl-ats-mlp")
    one = twin_observations(cfg, seed=2)[3, 1]  # one task of station 1
    with torch.no_grad():  # sharpen the policy so the frequencies differ clearly
        learner.actor.net[4].weight.mul_(40.0)
    exported = export_learner(learner, "ddrl-ats-mlp", cfg, seed=0)
    board = DiscreteActor.load(exported.model, exported.spec.to_json())
    rows = np.repeat(one[None], 40_000, axis=0)
    picks = board.act(rows, np.random.default_rng(0), greedy=False)
    logits = board.raw(one[None]).astype(np.float64)[0]
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    freq = np.bincount(picks, minlength=board.num_actions) / len(picks)
    assert probs.max() - probs.min() > 0.1
    np.testing.assert_allclose(freq, probs, atol=0.01)


def test_sample_softmax_never_picks_an_impossible_action() -> None:
    logits = np.array([[0.0, -np.inf, 0.0], [-np.inf, -np.inf, 5.0]])
    picks = sample_softmax(logits, np.random.default_rng(0))
    assert picks[1] == 2 and picks[0] in (0, 2)
    many = sample_softmax(np.repeat(logits[:1], 5000, axis=0), np.random.default_rng(1))
    assert 1 not in many and abs(np.mean(many == 0) - 0.5) < 0.03


def test_the_station_one_hot_is_where_the_graph_reads_it() -> None:
    twin = CoedgeTwin.from_config(CFG, 2, 0)
    obs = twin.reset(0)
    columns = station_one_hot_columns(twin.num_agents)
    for env in range(2):
        np.testing.assert_array_equal(obs[env][:, columns], np.eye(twin.num_agents))


def test_export_that_disagrees_with_torch_is_refused_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    learner, cfg = _learner("ddrl-amsa", 5)
    # A graph that appends the wrong columns as the agent's id: ONNX runs, but not
    # what torch trained on.
    monkeypatch.setattr(discrete_export, "station_one_hot_columns", lambda b: slice(2, 2 + b))
    with pytest.raises(TestbedExit) as err:
        export_learner(learner, "ddrl-amsa", cfg, seed=0, folder=tmp_path / "out")
    assert err.value.code is ExitCode.MODEL_INVALID and "disagrees with torch" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_passing_export_writes_the_file_and_its_spec(tmp_path: Path) -> None:
    learner, cfg = _learner("smcoedge")
    exported = export_learner(learner, "smcoedge", cfg, seed=4, folder=tmp_path)
    assert exported.onnx_path == tmp_path / "actor.onnx"
    spec = DiscreteActorSpec.from_json((tmp_path / "actor.spec.json").read_text())
    assert spec == exported.spec and spec.kind is DiscreteActorKind.DQN
    assert (spec.action_mode, spec.stations, spec.k, spec.seed) == ("topk", 5, 3, 4)
    assert spec.num_actions == 10  # C(5, 3)
    board = DiscreteActor.load((tmp_path / "actor.onnx").read_bytes(), spec.to_json())
    spec.check_bench(5, CoedgeActionMode.TOPK, 3)
    with pytest.raises(ActorMismatch, match="trained for 5 stations, topk"):
        spec.check_bench(5, CoedgeActionMode.TOPK, 2)
    assert board.spec == spec


# ---------------------------------------------------------------- files that lie


def _diffusion_file() -> tuple[bytes, DiscreteActorSpec]:
    learner, cfg = _learner("ddrl-amsa", 2)
    spec = actor_spec(learner, "ddrl-amsa", cfg, seed=0)
    return export_graph(BoardGraph(learner, spec), spec), spec


def _without_metadata(model: bytes) -> bytes:
    proto = onnx.load_from_string(model)
    del proto.metadata_props[:]
    return proto.SerializeToString()  # type: ignore[no-any-return]


def _lie(spec: DiscreteActorSpec, **changes: Any) -> str:
    raw = json.loads(spec.to_json())
    raw.update(changes)
    return json.dumps(raw)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "mlp", "diffusion_steps": 0, "noise_shape": []}, "inputs"),
        ({"obs_dim": 19}, "obs is"),
        ({"diffusion_steps": 3, "noise_shape": [3, 31]}, "noise is"),
        ({"kind": "dqn", "diffusion_steps": 0, "noise_shape": []}, "inputs"),
        ({"action_mode": "one", "num_actions": 5, "noise_shape": [2, 5]}, "noise is"),
    ],
)
def test_a_spec_that_lies_about_the_file_is_refused(changes: dict[str, Any], message: str) -> None:
    model, spec = _diffusion_file()
    with pytest.raises(ActorMismatch, match=message):
        DiscreteActor.load(_without_metadata(model), _lie(spec, **changes))
    # with its metadata the file names the spec it was exported with
    with pytest.raises(ActorMismatch, match="the one the file was exported with"):
        DiscreteActor.load(model, _lie(spec, **changes))


def test_a_spec_with_the_wrong_output_size_is_refused() -> None:
    learner, cfg = _learner("drlcoedge")
    spec = actor_spec(learner, "drlcoedge", cfg, seed=0)
    model = _without_metadata(export_graph(BoardGraph(learner, spec), spec))
    lie = _lie(spec, action_mode="topk", k=2, num_actions=10)
    with pytest.raises(ActorMismatch, match=r"q is \[5\] per row, the spec says \[10\]"):
        DiscreteActor.load(model, lie)
    assert DiscreteActor.load(model, spec.to_json()).num_actions == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"kind": "dqn"}', "malformed"),
        ('{"kind": "dqn", "colour": 1}', "unknown keys"),
    ],
)
def test_a_malformed_spec_is_refused(text: str, message: str) -> None:
    model, _ = _diffusion_file()
    with pytest.raises(ActorMismatch, match=message):
        DiscreteActor.load(model, text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_actions": 30}, "non-empty|has 31"),
        ({"system": "mato"}, "decides on 'coedge'"),
        ({"format": 2}, "format 1"),
        ({"diffusion_steps": 0, "noise_shape": []}, "diffusion_steps ≥ 1"),
        ({"obs_dim": "18"}, "must be an integer"),
        ({"kind": "cnn"}, "malformed"),
    ],
)
def test_an_inconsistent_spec_is_refused(changes: dict[str, Any], message: str) -> None:
    model, spec = _diffusion_file()
    with pytest.raises(ActorMismatch, match=message):
        DiscreteActor.load(model, _lie(spec, **changes))


def test_a_file_that_is_no_onnx_is_refused() -> None:
    _, spec = _diffusion_file()
    with pytest.raises(ActorMismatch, match="not a loadable ONNX actor"):
        DiscreteActor.load(b"not onnx", spec.to_json())
