"""Property-based fuzz of the testbed.yaml schema: random hostile mutations of the
default config either load or raise `ConfigError` naming a key, never anything else;
and a config that loads would run (its specs resolve, tasks can be drawn, the seed fits
the wire, the links have finite rates)."""

from __future__ import annotations

import copy
import math
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.config import ConfigError, TestbedConfig, config_from_dict
from testbed.ids import node_id_problem
from testbed.links import distance_m, shannon_rate_mbps
from testbed.rpc.v1 import agent_pb2
from testbed.tasks import TaskGenerator

DEFAULT = TestbedConfig().to_dict()


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into the default config (mappings and list items alike)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


PATHS = [*_paths(DEFAULT), ("edges", "nodes"), ("agents", "nodes")]

HOSTILE_SCALARS = [
    math.nan, math.inf, -math.inf, 2**63, 2**64, 2**70, -(2**70), 10**400, 10**5000,
    -1, -1.0, 0, 0.0, 1e-9, 1e308, -1e308, 5e-324, "", "x" * 1000, "nan", "1", None,
    True, False, [], {}, [1, 2, 3], {"a": 1},
]  # fmt: skip
BAD_IDS = ["edge/0", "", "A", "a\nb", "x" * 40, "\x1b[2J", "agent 1", "0a", "é", "a/../b"]

values = st.one_of(
    st.sampled_from(HOSTILE_SCALARS),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
node_override = st.fixed_dictionaries(
    {}, optional={"id": st.sampled_from(BAD_IDS) | st.text(max_size=40), "port": values,
                  "cpu_ghz": values, "position_m": values | st.lists(values, max_size=3)},
)  # fmt: skip
mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), values),
    st.tuples(st.just("unknown"), st.sampled_from([(), *PATHS]), st.text(min_size=1, max_size=12)),
    st.tuples(st.just("nodes"), st.sampled_from(["edges", "agents"]), st.lists(node_override,
              max_size=3)),
)  # fmt: skip


def _apply(data: dict[str, Any], change: tuple) -> None:
    kind, where, value = change
    if kind == "nodes":
        where, value = (where, "nodes"), value
    node: Any = data
    for key in where[:-1] if kind != "unknown" else where:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return  # an earlier mutation replaced the way there
    if kind == "unknown":
        if isinstance(node, dict):
            node.setdefault(f"zz_{value}", 1)
    elif isinstance(node, dict) or _is_index(node, where[-1]):
        node[where[-1]] = value


def _is_index(node: Any, key: Any) -> bool:
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def would_run(cfg: TestbedConfig) -> None:
    """The cheap part of `testbed up`: everything resolved from the config works."""
    edges, agents = cfg.edge_specs(), cfg.agent_specs()
    for spec in [*edges, *agents]:
        assert node_id_problem(spec.id) is None, spec.id
        assert spec.position_m is not None and all(map(math.isfinite, spec.position_m))
    agent_pb2.LoadPolicyRequest(name="greedy", seed=cfg.seed)  # uint64 on the wire
    for agent in agents[:2]:
        gen = TaskGenerator(agent.id, cfg.tasks.active_types, cfg.tasks.arrival_prob, cfg.seed)
        gen.next(0)
        for edge in edges[:2]:
            distance = distance_m(agent.position_m, edge.position_m)
            assert math.isfinite(shannon_rate_mbps(agent.transmit_power_w, distance, cfg.links))
    assert config_from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_hostile_configs_load_or_name_a_key(changes: list[tuple]) -> None:
    data = copy.deepcopy(DEFAULT)
    for change in changes:
        _apply(data, change)
    try:
        cfg = config_from_dict(data)
    except ConfigError as exc:
        assert exc.problems
        for key, message in exc.problems:
            assert key and key != "<root>" and message, exc.problems
            assert len(message) < 400 and "\n" not in message, message
        return
    would_run(cfg)
