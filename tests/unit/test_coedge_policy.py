"""A §B board's policies (agent_node/coedge_policy.py): the heuristics' choices, and a
trained scheduler exported to ONNX deciding on the board — refused when it was made
for another bench."""

from __future__ import annotations

import numpy as np
import pytest

from agent_node.checks import BadRequest
from agent_node.coedge_policy import CoedgePolicyKind, coedge_policy_kind, make_coedge_policy
from testbed.coedge.observation import obs_dim
from testbed.coedge.subsets import action_masks
from testbed.config import config_from_dict
from testbed.config.coedge import CoedgeActionMode
from testbed.policies.actor import ActorMismatch


def cfg(mode: str = "subset", edges: int = 3) -> object:
    ghz = [1.0, 2.0, 4.0, 8.0, 16.0][:edges]
    return config_from_dict({
        "edges": {"count": edges}, "agents": {"count": edges},
        "run": {"system": "coedge", "slot_mode": "clocked"},
        "coedge": {"edge_ghz": ghz, "action_mode": mode, "top_k": 2},
    })  # fmt: skip


QUEUE_S = np.array([0.3, 0.2, 0.1])
GHZ = np.array([1.0, 2.0, 4.0])  # work in cycles: 0.3, 0.4, 0.4
ALIVE = np.array([True, True, True])
OBS = np.zeros(obs_dim(3), np.float32)


def choose(kind: str, mode: str = "subset", alive: np.ndarray = ALIVE) -> list[int]:
    policy = make_coedge_policy(coedge_policy_kind(kind), cfg(mode), home=2)  # type: ignore[arg-type]
    mask = policy.choose(OBS, QUEUE_S, GHZ, alive, np.random.default_rng(0))
    return [int(j) for j in np.flatnonzero(mask)]


def test_the_heuristics_pick_what_their_names_say() -> None:
    assert choose("home") == [2]
    assert choose("split-all") == [0, 1, 2]
    assert choose("least-queue") == [0]  # least work in cycles, not least seconds
    assert choose("least-queue", "topk") == [0, 1]  # ties: the lower index
    assert choose("least-queue", alive=np.array([False, True, True])) == [1]
    masks = action_masks(CoedgeActionMode.SUBSET, 3)
    policy = make_coedge_policy(CoedgePolicyKind.RANDOM, cfg(), home=0)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    drawn = {tuple(policy.choose(OBS, QUEUE_S, GHZ, ALIVE, rng)) for _ in range(200)}
    assert drawn == {tuple(m) for m in masks}  # every action of the set, and only those


def test_unknown_names_and_a_trained_policy_without_its_file_are_refused() -> None:
    with pytest.raises(BadRequest, match="least-queue"):
        coedge_policy_kind("greedy")
    with pytest.raises(BadRequest, match="ONNX file"):
        make_coedge_policy(CoedgePolicyKind.ONNX, cfg(), home=0)  # type: ignore[arg-type]


def test_an_exported_scheduler_decides_on_the_board_and_only_on_its_bench() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from coordinator.algorithms.discrete_export import export_learner
    from coordinator.algorithms.discrete_loop import input_dim
    from coordinator.algorithms.dsac import Dsac, DsacArgs
    from coordinator.envs.coedge_twin import CoedgeTwin

    bench = cfg()
    twin = CoedgeTwin.from_config(bench, 1, 0)
    learner = Dsac(DsacArgs(diffusion=True, diffusion_steps=2, hidden=16, seed=0),
                   input_dim(twin), twin.num_actions)  # fmt: skip
    exported = export_learner(learner, "ddrl-amsa", bench, 0)
    model, spec = exported.model, exported.spec.to_json()
    masks = {tuple(m) for m in action_masks(CoedgeActionMode.SUBSET, 3)}
    for kind in (CoedgePolicyKind.ONNX, CoedgePolicyKind.ONNX_SAMPLED):
        policy = make_coedge_policy(kind, bench, 0, model, spec)  # type: ignore[arg-type]
        rng = np.random.default_rng(0)
        obs = np.random.default_rng(1).random(obs_dim(3)).astype(np.float32)
        assert tuple(policy.choose(obs, QUEUE_S, GHZ, ALIVE, rng)) in masks
    with pytest.raises(ActorMismatch, match="stations"):
        make_coedge_policy(CoedgePolicyKind.ONNX, cfg(edges=4), 0, model, spec)  # type: ignore[arg-type]
    with pytest.raises(ActorMismatch):
        make_coedge_policy(CoedgePolicyKind.ONNX, cfg("one"), 0, model, spec)  # type: ignore[arg-type]
