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
