"""`testbed config check` as a user runs it: a wrong file names the key, exits 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_testbed(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_default_file_is_valid() -> None:
    out = run_testbed("config", "check")
    assert out.returncode == 0, out.stderr
    assert "testbed.yaml: ok" in out.stdout


def test_wrong_file_names_the_key_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("edges:\n  cach_capacity_mb: 3\n  count: many\nrun:\n  slots: -4\n")
    out = run_testbed("config", "check", str(bad))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "edges.cach_capacity_mb: unknown key (did you mean 'cache_capacity_mb'?)" in out.stderr
    assert "edges.count: expected an integer" in out.stderr
    assert "run.slots: expected an integer ≥ 1" in out.stderr


def test_set_flag_is_validated_too() -> None:
    out = run_testbed("config", "check", "--set", "zoo.scale=huge")
    assert out.returncode == 2 and "zoo.scale" in out.stderr and "Traceback" not in out.stderr


def test_up_with_a_bad_config_fails_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("broker:\n  url: http://nowhere\n")
    out = run_testbed("up", "-c", str(bad))
    assert out.returncode == 2, out.stderr
    assert "broker.url" in out.stderr and "Traceback" not in out.stderr


def test_an_empty_file_is_an_error_that_names_it(tmp_path: Path) -> None:
    empty = tmp_path / "EMPTY.yaml"
    empty.write_text("# nothing but a comment\n")
    out = run_testbed("config", "check", str(empty))
    assert out.returncode == 2, out.stderr
    assert f"<file>: the file is empty: {empty}" in out.stderr and "Traceback" not in out.stderr


SPEC = "experiments/oracle_small.yaml"  # `experiment run` checks every cell before running


def test_a_malformed_set_exits_3_in_every_command() -> None:
    for command in (["config", "check"], ["up"], ["experiment", "run", SPEC]):
        out = run_testbed(*command, "--set", "nonsense")
        assert out.returncode == 3, (command, out.stderr)
        assert "--set: expected KEY=VALUE, got 'nonsense'" in out.stderr, command
        assert "Traceback" not in out.stderr


def test_a_set_with_an_unknown_key_exits_2_naming_it() -> None:
    for command in (["config", "check"], ["up"], ["experiment", "run", SPEC]):
        out = run_testbed(*command, "--set", "edges.cout=1")
        assert out.returncode == 2, (command, out.stderr)
        assert "edges.cout: unknown key (did you mean 'count'?)" in out.stderr, command


BAD_FILES = {
    "tasks.types[0].deadline_s": "tasks:\n  types:\n  - {name: a, model: ae-s, size_mbit: [1, 2],"
    " density_cycles_per_bit: 1, deadline_s: .nan}\n",
    "run.task_timeout_s": "run:\n  task_timeout_s: .inf\n",
    "links.bandwidth_mhz": "links:\n  bandwidth_mhz: .inf\n",
    "seed": "seed: 1180591620717411303424\n",  # 2^70
    "edges.nodes[0].id": "edges:\n  nodes:\n  - {id: edge/0}\n",
    "registry.heartbeat_interval_s": "registry:\n  heartbeat_interval_s: 0.000001\n",
}


def test_nan_inf_huge_seeds_and_bad_ids_exit_2_naming_the_key(tmp_path: Path) -> None:
    for key, text in BAD_FILES.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        out = run_testbed("config", "check", str(bad))
        assert out.returncode == 2, (key, out.stdout, out.stderr)
        assert f"{key}: expected " in out.stderr, (key, out.stderr)
        assert "Traceback" not in out.stderr and out.stdout == ""


def test_config_check_prints_the_benchs_warnings(tmp_path: Path) -> None:
    config = tmp_path / "t.yaml"
    config.write_text("edges:\n  count: 0\nrun:\n  policy: greedy\n")
    out = run_testbed("config", "check", str(config))
    assert out.returncode == 0, out.stderr
    assert "warning: edges.count is 0 but run.policy is 'greedy'" in out.stderr
