"""Every number of testbed.yaml is finite and bounded, every node id follows one
pattern: what passes the schema runs (the key and what was expected otherwise)."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest

from testbed.config import ConfigError, TestbedConfig, config_from_dict
from testbed.ids import NODE_ID_PATTERN, node_id_problem
from testbed.schema import SchemaError, load_dataclass, meta

TYPE = {"name": "a", "model": "ae-s", "size_mbit": [1, 2], "density_cycles_per_bit": 1,
        "deadline_s": 1.0}  # fmt: skip


def problems(data: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return dict(info.value.problems)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"tasks": {"types": [{**TYPE, "deadline_s": math.nan}]}}, "tasks.types[0].deadline_s"),
        ({"run": {"task_timeout_s": math.inf}}, "run.task_timeout_s"),
        ({"run": {"step_timeout_s": math.nan}}, "run.step_timeout_s"),
        ({"links": {"bandwidth_mhz": math.inf}}, "links.bandwidth_mhz"),
        ({"links": {"noise_dbm_per_hz": -math.inf}}, "links.noise_dbm_per_hz"),
        ({"topology": {"area_m": [math.nan, 10.0]}}, "topology.area_m[0]"),
        ({"edges": {"nodes": [{"cpu_ghz": math.inf}]}}, "edges.nodes[0].cpu_ghz"),
    ],
)
def test_nan_and_infinities_are_refused_naming_the_key(data: dict, key: str) -> None:
    found = problems(data)
    assert key in found, found
    assert "finite" in found[key], found[key]


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"seed": 2**70}, "seed", "< 9223372036854775808"),
        ({"seed": -1}, "seed", "≥ 0"),
        ({"zoo": {"seed": 2**64}}, "zoo.seed", "< 9223372036854775808"),
        ({"registry": {"heartbeat_interval_s": 1e-6}}, "registry.heartbeat_interval_s", "≥ 0.05"),
        ({"telemetry": {"interval_s": 1e-6}}, "telemetry.interval_s", "≥ 0.05"),
        ({"run": {"task_timeout_s": 1e9}}, "run.task_timeout_s", "≤ 86400"),
        ({"run": {"slots": 10**30}}, "run.slots", "≤"),
        ({"edges": {"queue_capacity": 10**12}}, "edges.queue_capacity", "≤"),
        ({"tasks": {"arrival_prob": 1.5}}, "tasks.arrival_prob", "≤ 1"),
    ],
)
def test_numbers_have_sensible_ranges(data: dict, key: str, expected: str) -> None:
    found = problems(data)
    assert expected in found[key], found[key]


def _numeric_fields(cls: type, path: str = "") -> typing.Iterator[tuple[str, dict]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, sub = hints[f.name], f"{path}{f.name}"
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = args[0] if typing.get_origin(tp) in (list, tuple) or len(args) == 1 else tp
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            yield from _numeric_fields(inner, sub + ".")
        elif inner in (int, float):
            yield sub, dict(f.metadata)


def test_every_number_of_the_schema_declares_both_bounds() -> None:
    from testbed.config import AgentSpec, EdgeSpec

    unbounded = []
    for cls in (TestbedConfig, EdgeSpec, AgentSpec):
        for key, m in _numeric_fields(cls):
            low = m.get("ge") is not None or m.get("gt") is not None
            high = m.get("le") is not None or m.get("lt") is not None
            if not (low and high):
                unbounded.append(key)
    assert not unbounded, f"numbers without a lower and an upper bound: {unbounded}"


def test_node_ids_the_config_generates_follow_the_pattern() -> None:
    cfg = config_from_dict({})
    ids = [s.id for s in cfg.edge_specs()] + [s.id for s in cfg.agent_specs()] + ["cloud"]
    assert ids[:2] == ["edge-0", "edge-1"] and "agent-0" in ids
    assert all(node_id_problem(i) is None for i in ids), ids


@pytest.mark.parametrize(
    "bad", ["edge/0", "Edge-0", "0edge", "edge 0", "a\nb", "x" * 33, "e\x1b[31m", "édge"]
)
def test_a_node_id_outside_the_pattern_is_refused(bad: str) -> None:
    assert node_id_problem(bad) is not None
    found = problems({"edges": {"count": 1, "nodes": [{"id": bad}]}})
    assert NODE_ID_PATTERN in found["edges.nodes[0].id"], found
    found = problems({"agents": {"count": 2, "nodes": [{}, {"id": bad}]}})
    assert "agents.nodes[1].id" in found


def test_an_empty_id_is_the_generated_one_and_ids_never_clash() -> None:
    cfg = config_from_dict({"edges": {"count": 1, "nodes": [{"id": ""}]}})
    assert [s.id for s in cfg.edge_specs()] == ["edge-0"] and node_id_problem("") is not None
    found = problems({"edges": {"count": 1, "nodes": [{"id": "agent-0"}]}})
    assert "again" in found["agents.nodes[0].id"]
    assert "edges.nodes[0].id" in problems({"edges": {"count": 1, "nodes": [{"id": "cloud"}]}})


def test_a_node_id_problem_never_echoes_a_huge_or_hostile_id() -> None:
    message = node_id_problem("x" * 1_000_000 + "\n")
    assert message is not None and len(message) < 200 and "\n" not in message


def test_registry_timing_rules() -> None:
    # removed (20 s) before it could ever be marked missing (3 × 10 s): nodes would flap
    found = problems({"registry": {"heartbeat_interval_s": 10.0, "remove_after_s": 20.0}})
    assert "missing_after_beats" in found["registry.remove_after_s"]


def test_a_bench_with_nothing_to_run_is_refused() -> None:
    found = problems({"edges": {"count": 0}, "agents": {"count": 0}})
    assert "edges.count" in found


def test_offload_without_edges_is_refused_naming_both_keys() -> None:
    found = problems({"edges": {"count": 0}, "run": {"policy": "offload"}})
    assert "run.policy" in found and "edges.count" in found["run.policy"]
    config_from_dict({"edges": {"count": 0}, "run": {"policy": "local"}})  # runs: no error


def test_a_long_experiment_name_is_refused() -> None:
    assert "experiment" in problems({"experiment": "x" * 10_000})


# ----------------------------------------------------------------- the schema itself


@dataclasses.dataclass(frozen=True)
class _Probe:
    ratio: float = dataclasses.field(default=0.5, metadata=meta("r", ge=0, le=1))
    anything: float = dataclasses.field(default=0.0, metadata=meta("a", finite=False))
    count: int = dataclasses.field(default=0, metadata=meta("c"))
    name: str = dataclasses.field(default="a", metadata=meta("n", pattern="[a-z]+", max_len=4))


def test_schema_floats_are_finite_unless_the_field_says_otherwise() -> None:
    assert math.isinf(load_dataclass(_Probe, {"anything": math.inf}).anything)
    with pytest.raises(SchemaError) as info:
        load_dataclass(_Probe, {"ratio": math.nan})
    assert dict(info.value.problems)["ratio"] == "expected a finite number ≥ 0 and ≤ 1, got nan"


def test_schema_integers_fit_in_64_bits_even_without_bounds() -> None:
    with pytest.raises(SchemaError) as info:
        load_dataclass(_Probe, {"count": 2**64})
    assert "count" in dict(info.value.problems)


def test_schema_strings_follow_pattern_and_length() -> None:
    assert load_dataclass(_Probe, {"name": "abc"}).name == "abc"
    for bad in ("ABC", "abcde", "a\n"):
        with pytest.raises(SchemaError) as info:
            load_dataclass(_Probe, {"name": bad})
        assert "name" in dict(info.value.problems)


def test_two_nodes_on_one_fixed_port_are_refused() -> None:
    found = problems({"edges": {"count": 2, "nodes": [{"port": 7000}, {"port": 7000}]}})
    assert "edges.nodes[0].port" in found["edges.nodes[1].port"]
    found = problems({"broker": {"port": 7001}, "agents": {"nodes": [{"port": 7001}]}})
    assert "broker.port" in found["agents.nodes[0].port"]
    config_from_dict({"edges": {"count": 2, "nodes": [{"port": 7000}, {"port": 0}]}})


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"run": {"policy": "x" * 300}}, "run.policy"),  # a file name no file system takes
        ({"run": {"out_dir": "runs\0"}}, "run.out_dir"),
        ({"zoo": {"dir": "a/" * 3000}}, "zoo.dir"),
        ({"edges": {"nodes": [{"host": "h" * 1000}]}}, "edges.nodes[0].host"),
    ],
)
def test_paths_and_hosts_the_system_cannot_take_are_refused(data: dict, key: str) -> None:
    assert key in problems(data)
