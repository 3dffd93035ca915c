"""Benches that would run "successfully" without doing what was asked are warned about
(coordinator/bench_sanity.py), naming the keys to change."""

from __future__ import annotations

from typing import Any

from coordinator.bench_sanity import bench_warnings
from testbed.config import ZooScale, config_from_dict
from testbed.zoo.catalog import Catalog, ModelEntry, ModelFamily, TensorDType, TensorSpec

MB = 1_000_000


def _entry(model_id: str, size_mb: float) -> ModelEntry:
    spec = TensorSpec("x", TensorDType.FLOAT32, ["batch", 4])
    return ModelEntry(
        id=model_id, family=ModelFamily.AUTOENCODER, version="1", file=f"{model_id}.onnx",
        size_bytes=int(size_mb * MB), sha256="0" * 64, inputs=[spec], outputs=[spec],
        default_steps=1, flops_per_invocation=1, trained=False, scale=ZooScale.TINY,
    )  # fmt: skip


CATALOG = Catalog(ZooScale.TINY, [_entry("m-small", 2.0), _entry("m-big", 8.0)])
TYPES = [
    {"name": "small", "model": "m-small", "size_mbit": [1, 2], "density_cycles_per_bit": 1,
     "deadline_s": 2.0},
    {"name": "big", "model": "m-big", "size_mbit": [1, 2], "density_cycles_per_bit": 1,
     "deadline_s": 2.0},
]  # fmt: skip


def warnings_for(**sections: Any) -> list[str]:
    base: dict[str, Any] = {
        "tasks": {"types": TYPES},
        "edges": {"count": 2, "cache_capacity_mb": 20.0, "preload": ["m-small"]},
        "agents": {"count": 2},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return bench_warnings(config_from_dict(base), CATALOG)


def test_a_sound_bench_has_no_warnings() -> None:
    assert warnings_for() == []
    assert warnings_for(run={"policy": "offload"}) == []


def test_no_edges_with_an_offloading_policy_is_warned_about() -> None:
    for policy in ("greedy", "random"):
        (warning,) = warnings_for(edges={"count": 0}, run={"policy": policy})
        assert "edges.count" in warning and "run.policy" in warning and "local" in warning
    assert warnings_for(edges={"count": 0}, run={"policy": "local"}) == []


def test_a_cache_smaller_than_every_model_is_warned_about() -> None:
    found = warnings_for(edges={"cache_capacity_mb": 1.0, "preload": []})
    assert any("edges.cache_capacity_mb" in w and "model_too_large" in w for w in found), found
    assert warnings_for(edges={"cache_capacity_mb": 1.0, "preload": []},
                        run={"policy": "local"}) == []  # fmt: skip


def test_a_model_no_edge_can_hold_is_warned_about() -> None:
    (warning,) = warnings_for(edges={"cache_capacity_mb": 5.0})
    assert "m-big" in warning and "'big'" in warning and "edges.cache_capacity_mb" in warning


def test_greedy_with_nothing_preloaded_never_offloads() -> None:
    (warning,) = warnings_for(edges={"preload": []})
    assert "greedy" in warning and "preload" in warning and "local" in warning
    assert warnings_for(edges={"preload": []}, run={"policy": "offload"}) == []


def test_preloads_the_zoo_lacks_or_the_cache_cannot_hold() -> None:
    (warning,) = warnings_for(edges={"nodes": [{"preload": ["m-small", "nope"]}]})
    assert "edges.nodes[0].preload" in warning and "'nope'" in warning
    found = warnings_for(edges={"cache_capacity_mb": 9.0, "preload": ["m-small", "m-big"]})
    assert any("edge-0" in w and "10 MB" in w for w in found), found


def test_no_arrivals_is_warned_about() -> None:
    (warning,) = warnings_for(tasks={"arrival_prob": 0.0})
    assert "tasks.arrival_prob" in warning


def test_without_a_catalog_only_the_config_is_judged() -> None:
    cfg = config_from_dict({"edges": {"count": 0}, "run": {"policy": "greedy"}})
    assert len(bench_warnings(cfg, None)) == 1


def test_task_types_an_edge_refuses_outright_are_warned_about() -> None:
    big = {**TYPES[0], "size_mbit": [1, 800], "steps": 50}
    found = warnings_for(tasks={"types": [big, TYPES[1]]},
                         edges={"max_task_data_mb": 64.0, "max_steps": 10})  # fmt: skip
    assert any("edges.max_task_data_mb" in w and "100 MB" in w for w in found), found
    assert any("edges.max_steps" in w and "50 steps" in w for w in found), found
