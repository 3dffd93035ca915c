"""The observation (16) / action (17) layout shared by boards and the twin."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from testbed.config import config_from_dict
from testbed.observation import (
    ObservationSpec,
    SpecError,
    decide,
    decode,
    encode,
    observe,
    observe_one,
)

CFG = config_from_dict({"edges": {"count": 3}, "tasks": {"num_types": 3}})


def _one(spec: ObservationSpec, **over: object) -> np.ndarray:
    args = dict(
        has_task=1.0, task_type=1, size_mbit=2.5, density_cycles_per_bit=120.0, deadline_s=2.0,
        self_position_m=(100.0, 250.0), self_ghz=1.5, self_queue=2,
        edge_position_m=[(0.0, 0.0), (500.0, 500.0), (1000.0, 0.0)], edge_ghz=[7.0, 7.0, 3.5],
        rate_mbps=[10.0, 20.0, 40.0], edge_queue=[0, 1, 4], edge_alive=[1.0, 1.0, 0.0],
        edge_cache_free=[0.5, 1.0, 0.0],
        edge_cached=[[1, 1, 0], [0, 0, 0], [0, 1, 1]],
    )  # fmt: skip
    args.update(over)
    return observe(spec, **args)  # type: ignore[arg-type]


def test_layout_matches_the_feature_names() -> None:
    spec = ObservationSpec.from_config(CFG)
    obs = _one(spec)
    names = spec.feature_names()
    assert obs.shape == (spec.obs_dim,) == (len(names),)
    f = dict(zip(names, obs.tolist(), strict=True))
    assert f["type=process_optimisation"] == 1.0 and f["type=health_prediction"] == 0.0
    assert f["self_x"] == pytest.approx(0.1) and f["self_queue"] == pytest.approx(2 / 16)
    # the task's model is cgan-s: edge 0 and edge 2 hold it, edge 1 does not
    assert [f[f"edge{j}_holds_task_model"] for j in range(3)] == [1.0, 0.0, 1.0]
    assert f["edge2_alive"] == 0.0 and f["edge1_rate"] == pytest.approx(20 / spec.rate_ref_mbps)


def test_batches_equal_one_at_a_time() -> None:
    spec = ObservationSpec.from_config(CFG)
    rng = np.random.default_rng(0)
    n = (4, 5)
    batch = dict(
        has_task=rng.integers(0, 2, n), task_type=rng.integers(0, 3, n),
        size_mbit=rng.uniform(2, 5, n), density_cycles_per_bit=rng.uniform(90, 180, n),
        deadline_s=rng.uniform(1, 3, n), self_position_m=rng.uniform(0, 1000, (*n, 2)),
        self_ghz=rng.uniform(1, 2, n), self_queue=rng.integers(0, 5, n),
        edge_position_m=rng.uniform(0, 1000, (3, 2)), edge_ghz=[7.0, 7.0, 7.0],
        rate_mbps=rng.uniform(5, 50, (*n, 3)), edge_queue=rng.integers(0, 4, (*n, 3)),
        edge_alive=rng.integers(0, 2, (*n, 3)), edge_cache_free=rng.uniform(0, 1, (*n, 3)),
        edge_cached=rng.integers(0, 2, (*n, 3, 3)),
    )  # fmt: skip
    out = observe(spec, **batch)
    assert out.shape == (*n, spec.obs_dim)
    for i in range(n[0]):
        for k in range(n[1]):
            one = {key: (v[i, k] if np.ndim(v) >= 2 and np.shape(v)[:2] == n else v)
                   for key, v in batch.items()}  # fmt: skip
            one["has_task"], one["task_type"] = batch["has_task"][i, k], batch["task_type"][i, k]
            assert np.allclose(out[i, k], observe(spec, **one))


def test_without_model_awareness_the_model_features_are_gone() -> None:
    aware = ObservationSpec.from_config(CFG)
    blind = ObservationSpec.from_config(CFG, model_aware=False)
    assert blind.obs_dim == aware.obs_dim - 3 * (1 + 3)
    assert not any("cached" in n or "holds" in n for n in blind.feature_names())
    assert _one(blind).shape == (blind.obs_dim,)


def test_no_task_zeroes_the_task_part() -> None:
    spec = ObservationSpec.from_config(CFG)
    obs = _one(spec, has_task=0.0)
    assert not obs[: 3 + 3].any()


def test_decode_rules() -> None:
    spec = ObservationSpec.from_config(CFG)
    target, ratio, download = decode(spec, [[0.1, 0.9, 0, 0, 0.4, 0.8], [0.9, 0, 0, 0, 0.4, 0.8]])
    assert target.tolist() == [0, -1] and ratio.tolist() == pytest.approx([0.4, 0.0])
    assert download.tolist() == [True, True]
    assert decide(spec, encode(spec, 2, 0.5, False)) == decide(spec, [0, 0, 0, 1, 0.5, 0])
    blind = ObservationSpec.from_config(CFG, model_aware=False)
    assert decode(blind, [0, 1, 0, 0, 0.5, 0.0])[2]  # no download action: the edge may fetch


def test_spec_round_trips_as_json() -> None:
    spec = ObservationSpec.from_config(CFG, model_aware=False)
    assert ObservationSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize("model_aware", [True, False])
def test_one_board_observation_is_bit_for_bit_the_batched_one(model_aware: bool) -> None:
    odd = config_from_dict(
        {"edges": {"count": 4, "cpu_ghz": 6.3}, "tasks": {"num_types": 5},
         "topology": {"area_m": [733.3, 911.1]}, "agents": {"queue_capacity": 7}}
    )  # fmt: skip  # normalisers that float32 cannot hold exactly
    rng = np.random.default_rng(1)
    for cfg in (CFG, odd):
        spec = ObservationSpec.from_config(cfg, model_aware=model_aware)
        m, k, n_models = spec.num_edges, len(spec.task_types), len(spec.models)
        for _ in range(50):
            args = dict(
                task_type=int(rng.integers(0, k)), size_mbit=float(rng.uniform(0.1, 5)),
                density_cycles_per_bit=float(rng.uniform(10, 200)),
                deadline_s=float(rng.uniform(0.5, 3)),
                self_position_m=tuple(rng.uniform(0, 1000, 2).tolist()),
                self_ghz=float(rng.uniform(1, 2)), self_queue=int(rng.integers(0, 16)),
                edge_position_m=rng.uniform(0, 1000, (m, 2)).tolist(),
                edge_ghz=rng.uniform(3, 8, m).tolist(), rate_mbps=rng.uniform(1, 90, m).tolist(),
                edge_queue=rng.integers(0, 9, m).tolist(),
                edge_alive=rng.integers(0, 2, m).astype(float).tolist(),
                edge_cache_free=rng.uniform(0, 1, m).tolist(),
                edge_cached=rng.integers(0, 2, (m, n_models)).astype(float).tolist(),
            )  # fmt: skip
            fast = observe_one(spec, **args)  # type: ignore[arg-type]
            slow = observe(spec, has_task=1.0, **args)  # type: ignore[arg-type]
            assert fast.dtype == slow.dtype == np.float32
            assert fast.tobytes() == slow.tobytes()


def test_decide_follows_decode_exactly() -> None:
    spec = ObservationSpec.from_config(CFG)
    rng = np.random.default_rng(2)
    vectors = [rng.normal(0.3, 0.6, spec.action_dim).astype(np.float32) for _ in range(300)]
    vectors += [
        np.array([0.2, 0.2, 0.1, 0.0, 0.5, 0.6], np.float32),  # a tie: the first wins
        np.array([0.0, 1.0, 0.0, 0.0, -0.0, 0.5], np.float32),  # ratio -0: no target
        np.array([0.0, 1.0, 0.0, 0.0, np.inf, 0.5], np.float32),
        np.array([0.0, np.nan, 0.0, 0.0, 0.5, 0.5], np.float32),  # numpy's rules
        np.array([0.0, 0.0, 0.0, 1.0, 0.5, 0.0], np.float64),
    ]
    for raw in vectors:
        target, ratio, download = decode(spec, raw)
        got = decide(spec, raw)
        assert (got.target, got.download) == (int(target), bool(download))
        assert np.float64(got.ratio).tobytes() == np.float64(ratio).tobytes()
        assert got.raw == tuple(float(v) for v in raw) or np.isnan(raw).any()
    assert decide(spec, [0, 0, 0, 1, 0.1, 0.7]).raw == (0.0, 0.0, 0.0, 1.0, 0.1, 0.7)


@pytest.mark.parametrize(
    ("text", "names"),
    [("{oops", "not JSON"), ("[1, 2]", "expected a JSON object, got list"), ("{}", "missing")],
)
def test_a_spec_that_is_no_spec_is_refused(text: str, names: str) -> None:
    with pytest.raises(SpecError, match=re.escape(names)):
        ObservationSpec.from_json(text)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"num_edges": "two"}, "num_edges: expected an integer"),
        ({"edges": 2}, "edges: unknown field"),
        ({"area_m": [1000, math.nan]}, "area_m: expected a list of 2 finite numbers"),
        ({"ghz_ref": math.inf}, "ghz_ref: expected a finite number"),
        ({"queue_ref": 0}, "queue_ref: expected > 0"),
        ({"task_models": ["cgan-s"]}, "task_models: expected one model per task type"),
        ({"num_edges": -1}, "num_edges: expected ≥ 0"),
        ({"model_aware": 1}, "model_aware: expected true or false"),
        ({"task_types": "abc"}, "task_types: expected a list of strings"),
    ],
)
def test_a_spec_field_that_does_not_fit_is_named(change: dict, names: str) -> None:
    good = json.loads(ObservationSpec.from_config(CFG).to_json())
    with pytest.raises(SpecError, match=re.escape(names)):
        ObservationSpec.from_json(json.dumps({**good, **change}))  # NaN, Infinity as Python writes
