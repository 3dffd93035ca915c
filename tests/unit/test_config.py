"""The testbed.yaml schema: every problem names its key path; defaults are documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from testbed.config import (
    ConfigError,
    RuntimeKind,
    TestbedConfig,
    ZooScale,
    apply_overrides,
    apply_sets,
    config_from_dict,
    load_config,
    parse_set,
)
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.schema import dump_dataclass

ROOT = Path(__file__).resolve().parents[2]


def problems(data: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return dict(info.value.problems)


def test_defaults_load() -> None:
    cfg = config_from_dict({})
    assert cfg.edges.count == 3 and cfg.agents.count == 10
    assert len(cfg.edge_specs()) == 3 and len(cfg.agent_specs()) == 10


def test_unknown_key_suggests_the_right_one() -> None:
    found = problems({"edges": {"cach_capacity_mb": 3}})
    assert "did you mean 'cache_capacity_mb'" in found["edges.cach_capacity_mb"]


def test_wrong_type_and_range_name_the_path() -> None:
    found = problems({"edges": {"count": -1, "cpu_ghz": "fast"}, "seed": 1.5})
    assert "≥ 0" in found["edges.count"]
    assert "'fast' (str)" in found["edges.cpu_ghz"]
    assert "an integer" in found["seed"]


def test_enum_error_lists_the_choices() -> None:
    found = problems({"zoo": {"scale": "huge"}})
    assert "'tiny', 'demo', 'paper'" in found["zoo.scale"]


def test_all_problems_are_reported_at_once() -> None:
    found = problems({"brokr": {}, "broker": {"url": "http://x"}, "run": {"slots": 0}})
    assert set(found) == {"brokr", "broker.url", "run.slots"}


def test_per_node_overrides_are_validated_with_their_index() -> None:
    found = problems({"edges": {"count": 2, "nodes": [{}, {"cpu_ghz": 0, "idd": "x"}]}})
    assert "edges.nodes[1].cpu_ghz" in found and "edges.nodes[1].idd" in found


def test_cross_field_rules() -> None:
    found = problems({"reward": {"omega_latency": 0.7, "omega_energy": 0.5}})
    assert "= 1" in found["reward.omega_energy"]
    bad_range = {"name": "a", "model": "m", "size_mbit": [3, 1],
                 "density_cycles_per_bit": 1, "deadline_s": 1}  # fmt: skip
    assert "low ≤ high" in problems({"tasks": {"types": [bad_range]}})["tasks.types[0].size_mbit"]


def test_node_overrides_and_positions() -> None:
    cfg = config_from_dict({"edges": {"count": 2, "nodes": [{"id": "gpu-a", "runtime": "cuda"}]}})
    a, b = cfg.edge_specs()
    assert (a.id, a.runtime, b.id, b.runtime) == (
        "gpu-a",
        RuntimeKind.CUDA,
        "edge-1",
        RuntimeKind.AUTO,
    )
    assert a.position_m != b.position_m
    agents = cfg.agent_specs()
    assert all(1.0 <= s.cpu_ghz <= 2.0 for s in agents)
    assert agents == config_from_dict({}).agent_specs()  # the seed decides, reproducibly


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("run:\n  slots: 5\nedges:\n  count: 2\n")
    env = {"TESTBED__RUN__SLOTS": "7", "TESTBED__EDGES__COUNT": "4"}
    cfg = load_config(path, env=env, sets=["edges.count=1"])
    assert (cfg.run.slots, cfg.edges.count) == (7, 1)


@pytest.mark.parametrize("item", ["nonsense", "=3", " =3", "edges..count=1", ".seed=1"])
def test_a_malformed_set_item_is_a_usage_error(item: str) -> None:
    with pytest.raises(TestbedExit) as info:
        apply_overrides({}, env={}, sets=[item])
    assert info.value.code is ExitCode.USAGE
    assert info.value.message == f"--set: expected KEY=VALUE, got {item!r}"


def test_a_set_through_a_non_mapping_is_a_usage_error() -> None:
    with pytest.raises(TestbedExit) as info:
        apply_sets({"seed": 3}, ["seed.x=1"])
    assert info.value.code is ExitCode.USAGE and "'seed' is not a mapping" in info.value.message
    with pytest.raises(TestbedExit, match=r"'run\.slots' is not a mapping"):
        apply_sets({"run": {"slots": 3}}, [("run.slots.x", 1)])


def test_an_env_variable_through_a_non_mapping_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TESTBED__SEED__X"):
        apply_overrides({"seed": 3}, env={"TESTBED__SEED__X": "1"})


def test_set_values_are_yaml_and_later_items_win() -> None:
    assert parse_set(" edges.count = 3") == ("edges.count", 3)
    assert parse_set("area=[1, 2]") == ("area", [1, 2])
    assert parse_set("run.policy=a=b") == ("run.policy", "a=b")  # the first `=` splits
    assert parse_set("broker.url=") == ("broker.url", None)
    data = apply_sets({"run": None}, ["run.slots=5", ("run.slots", 7), ("seed", 2)])
    assert data == {"run": {"slots": 7}, "seed": 2}


def test_a_well_formed_set_with_a_bad_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, sets=["edges.cout=1"])
    assert "edges.cout" in dict(info.value.problems)


@pytest.mark.parametrize("text", ["", "\n  \n", "# only a comment\n# and another\n"])
def test_an_empty_file_is_an_error_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    ((key, message),) = info.value.problems
    assert key == "<file>" and message.startswith("the file is empty: ")
    assert str(path) in message and info.value.source == str(path)


def test_no_file_at_all_means_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./testbed.yaml here
    assert load_config(env={}) == TestbedConfig()


def test_zoo_path_is_the_folder_of_a_scale() -> None:
    cfg = config_from_dict({"zoo": {"dir": "/z", "scale": "tiny"}})
    assert cfg.zoo_path() == Path("/z/tiny")
    assert cfg.zoo_path(ZooScale.PAPER) == Path("/z/paper")
    assert TestbedConfig().zoo_path() == Path(".zoo/demo")


def test_config_modules_never_import_their_package() -> None:
    package = ROOT / "testbed" / "config"
    for module in package.glob("*.py"):
        if module.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0 and node.module != "testbed.config", module.name


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("edges: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml", env={})


def test_resolved_config_round_trips() -> None:
    cfg = load_config(ROOT / "testbed.yaml", env={})
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def _keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        out.add(prefix + key)
        if isinstance(value, dict):
            out |= _keys(value, f"{prefix}{key}.")
    return out


def test_default_file_lists_every_key_and_comments_each() -> None:
    text = (ROOT / "testbed.yaml").read_text()
    schema_keys = _keys(dump_dataclass(TestbedConfig()))
    file_keys = _keys(yaml.safe_load(text))
    schema_keys -= {k for k in schema_keys if k.startswith("tasks.types.")}
    assert schema_keys <= file_keys, f"keys missing from testbed.yaml: {schema_keys - file_keys}"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([a-z_0-9]+):", line)
        if not m or line.lstrip().startswith("-"):
            continue
        previous = lines[i - 1].strip()
        in_list_item = re.match(r"^\s+[a-z_]+:", line) and lines[i - 1].lstrip().startswith(
            ("- ", "name:", "model:", "size_mbit:", "density", "deadline", "weight:")
        )
        assert previous.startswith("#") or in_list_item, f"no comment above line {i + 1}: {line}"


def test_an_inventory_file_replaces_the_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    nodes = ["cloud", "edge-0", "agent-0"]
    inventory.write_text(yaml.safe_dump({"hosts": [{"name": "host-1", "nodes": nodes}]}))
    bench = tmp_path / "t.yaml"
    bench.write_text(yaml.safe_dump({"edges": {"count": 1}, "agents": {"count": 1}}))
    cfg = load_config(bench, env={}, inventory=inventory)
    assert cfg.inventory.remote and cfg.inventory.host_of("edge-0").name == "host-1"
    inventory.write_text(yaml.safe_dump({"hosts": [{"name": "host-1", "nodes": ["cloud"]}]}))
    with pytest.raises(ConfigError, match=r"inventory\.hosts: no host runs agent-0, edge-0"):
        load_config(bench, env={}, inventory=inventory)
