"""`testbed up` as a user runs it: a subprocess, its output, its run folder, Ctrl-C."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.processes import default_sigint

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def bench_config(tmp_path: Path, tiny_zoo: Path, **extra: object) -> Path:
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "tiny").symlink_to(tiny_zoo)
    data = {
        "zoo": {"scale": "tiny", "dir": str(tmp_path / "zoo")},
        "edges": {"count": 2, "cache_capacity_mb": 6.0, "energy": {"meter": "estimated"}},
        "agents": {"count": 3, "energy": {"meter": "estimated"}},
        "cloud": {"energy": {"meter": "estimated"}},
        "tasks": {"num_types": 3, "flops_per_cycle": 1.0},
        "run": {"out_dir": str(tmp_path / "runs"), "slots": 4},
        **extra,
    }
    path = tmp_path / "testbed.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_testbed(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_up_runs_reports_and_writes_the_run_folder(tmp_path: Path, tiny_zoo: Path) -> None:
    config = bench_config(tmp_path, tiny_zoo)
    out = run_testbed("up", "-c", str(config), "--slots", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "broker: embedded" in out.stdout
    assert "completion" in out.stdout and "latency (ms)" in out.stdout
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert {"config.yaml", "manifest.json", "tasks.csv", "summary.json", "logs"} <= {
        p.name for p in run_dir.iterdir()
    }
    rows = list(csv.DictReader((run_dir / "tasks.csv").open()))
    assert len(rows) == 3 * 3  # 3 devices x 3 slots, arrival probability 1
    assert len({r["task_id"] for r in rows}) == len(rows)  # exactly one outcome per task
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tasks"] == 9 and summary["completed"] + summary["failed"] == 9
    assert summary["status"] == "completed" and summary["last_slot"] == 2
    # greedy on edges that preload none of the models: every task runs on its board
    assert any("greedy" in w for w in summary["warnings"])
    assert "warning: " in out.stderr and "warning: " in out.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["broker"].startswith("embedded") and "edge-1" in manifest["nodes"]
    completed = [r for r in rows if r["outcome"] == "completed"]
    assert completed and all(r["energy_local_compute_method"] for r in completed)


def test_missing_zoo_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "t.yaml"
    config.write_text(yaml.safe_dump({"zoo": {"dir": str(tmp_path / "nothing")}}))
    out = run_testbed("up", "-c", str(config))
    assert out.returncode == 4, out.stderr
    assert "testbed zoo build" in out.stderr and "Traceback" not in out.stderr


def _children_of(config: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(config.parent / "runs") in cmdline:
            found.append(proc)
    return found


def test_ctrl_c_tears_everything_down(tmp_path: Path, tiny_zoo: Path) -> None:
    config = bench_config(tmp_path, tiny_zoo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "up", "-c", str(config), "--slots", "100000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "bench up" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    nodes = _children_of(config)
    assert len(nodes) >= 3  # cloud and two edges at least
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    _gone, alive = psutil.wait_procs(nodes, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert not _children_of(config)


def test_a_killed_coordinator_leaves_no_process(tmp_path: Path, tiny_zoo: Path) -> None:
    config = bench_config(tmp_path, tiny_zoo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "up", "-c", str(config), "--slots", "100000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "bench up" in line:
            break
    nodes = _children_of(config)
    assert len(nodes) >= 6  # broker, cloud, two edges, three agents
    proc.kill()  # no chance to clean up: the nodes must notice by themselves
    proc.wait(10)
    _gone, alive = psutil.wait_procs(nodes, timeout=15)
    assert not alive, [p.cmdline() for p in alive]


def test_keep_leaves_the_bench_for_status_and_down(tmp_path: Path, tiny_zoo: Path) -> None:
    config = bench_config(tmp_path, tiny_zoo)
    out = run_testbed("up", "-c", str(config), "--slots", "1", "--keep")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "testbed down" in out.stdout
    try:
        status = run_testbed("status", "-c", str(config))
        assert status.returncode == 0, status.stderr
        assert status.stdout.count("serving") >= 6  # cloud, edges, agents answer health checks
        assert "edge-0" in status.stdout and "cache" in status.stdout
    finally:
        down = run_testbed("down", "-c", str(config))
    assert down.returncode == 0, down.stderr
    assert not _children_of(config)
    again = run_testbed("status", "-c", str(config))
    assert again.returncode == 11 and "no bench is running" in again.stderr


def test_an_unknown_policy_is_a_usage_error_listing_the_valid_ones(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    config = bench_config(tmp_path, tiny_zoo)
    out = run_testbed("up", "-c", str(config), "--policy", "greedyy")
    assert out.returncode == 3, out.stderr
    assert "unknown policy 'greedyy'" in out.stderr and "greedy, local, offload" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()
