"""The on-board heuristics and the ONNX actor runner."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.config import config_from_dict
from testbed.observation import ObservationSpec
from testbed.policies import DecisionContext, EdgeView, make_policy
from testbed.policies.actor import ActorMismatch
from testbed.tasks import Task

CFG = config_from_dict({"edges": {"count": 3}, "tasks": {"num_types": 3}})
SPEC = ObservationSpec.from_config(CFG)
TASK = Task("agent-0/s000001", "agent-0", 1, "process_optimisation", "cgan-s", 3.0, 120.0, 2.0, 1.0)
EDGES = (
    EdgeView("edge-0", (0.0, 0.0), 7.0, 10.0, cached=frozenset({"cgan-s"})),
    EdgeView("edge-1", (110.0, 100.0), 7.0, 20.0, cached=frozenset()),
    EdgeView("edge-2", (100.0, 120.0), 7.0, 20.0, alive=False, cached=frozenset({"cgan-s"})),
)


def ctx(edges=EDGES, seed: int = 0) -> DecisionContext:
    obs = np.zeros(SPEC.obs_dim, dtype=np.float32)
    return DecisionContext(SPEC, obs, TASK, (100.0, 100.0), edges, np.random.default_rng(seed))


def test_greedy_takes_the_nearest_live_edge_holding_the_model() -> None:
    d = make_policy("greedy", SPEC).decide(ctx())
    assert (d.target, d.ratio, d.download) == (0, 1.0, False)  # edge-2 is nearer but dead
    none = make_policy("greedy", SPEC).decide(ctx(EDGES[1:2]))
    assert (none.target, none.ratio) == (-1, 0.0)


def test_local_and_offload() -> None:
    assert make_policy("local", SPEC).decide(ctx()).target == -1
    d = make_policy("offload", SPEC).decide(ctx())
    assert (d.target, d.ratio, d.download) == (1, 1.0, True)  # the nearest live edge


def test_random_is_reproducible_and_covers_every_choice() -> None:
    policy = make_policy("random", SPEC)
    a = [policy.decide(ctx(seed=1)) for _ in range(3)]
    assert a == [policy.decide(ctx(seed=1)) for _ in range(3)]
    c = ctx(seed=2)
    targets = {policy.decide(c).target for _ in range(200)}
    assert targets == {-1, 0, 1, 2}


def test_onnx_actor_runs_and_rejects_a_mismatch(tmp_path) -> None:
    pytest.importorskip("torch")
    from coordinator.actors import build_actor, export_actor, read_actor

    path = tmp_path / "actor.onnx"
    actor = build_actor(SPEC, hidden=(32,), seed=3)
    export_actor(actor, SPEC, path)
    loaded = read_actor(path)
    assert loaded.spec == SPEC
    policy = make_policy("onnx", SPEC, onnx_model=loaded.model)
    obs = np.random.default_rng(0).uniform(0, 1, SPEC.obs_dim).astype(np.float32)
    c = DecisionContext(SPEC, obs, TASK, (0.0, 0.0), EDGES, np.random.default_rng(0))
    import torch

    with torch.no_grad():
        expected = actor(torch.from_numpy(obs[None])).numpy()[0]
    assert np.allclose(policy.decide(c).raw, expected, atol=1e-5)
    noisy = [policy.decide(c, noise_std=0.5).raw for _ in range(2)]
    assert noisy[0] != noisy[1]
    other = ObservationSpec.from_config(config_from_dict({"edges": {"count": 2}}))
    with pytest.raises(ActorMismatch, match="2 edges"):
        make_policy("onnx", other, onnx_model=loaded.model)


def test_an_actor_whose_output_is_not_what_it_declares_is_refused_at_load() -> None:
    pytest.importorskip("onnx", reason="the lying actor is built with onnx")
    from tests.lying_actor import lying_actor

    with pytest.raises(ActorMismatch, match=r"declares 6 outputs but gives .* shape \(2,\)"):
        make_policy("onnx", SPEC, onnx_model=lying_actor(SPEC))
