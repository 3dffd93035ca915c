"""`testbed down` / `testbed status` signal only the bench's own processes: a PID that
now belongs to another process (recycled) is reported and left alone."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from coordinator.process_identity import ProcessIdentity

ROOT = Path(__file__).resolve().parents[2]


def run_testbed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen]:
    """A process that is not the bench's (it stands for whoever got a recycled PID)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield proc
    proc.kill()
    proc.wait()


def write_bench(tmp_path: Path, node: dict) -> Path:
    config = tmp_path / "t.yaml"
    config.write_text(yaml.safe_dump({"run": {"out_dir": str(tmp_path / "runs")}}))
    (tmp_path / "runs").mkdir()
    bench = {"run_dir": str(tmp_path / "runs" / "r"), "broker": "external mqtt://x:1",
             "nodes": {"edge-0": {"kind": "edge", "address": "", "log": "", **node}}}  # fmt: skip
    (tmp_path / "runs" / "bench.json").write_text(json.dumps(bench))
    return config


def test_down_stops_a_process_whose_identity_holds(
    tmp_path: Path, bystander: subprocess.Popen
) -> None:
    identity = ProcessIdentity.of(bystander.pid)
    assert identity is not None
    config = write_bench(tmp_path, identity.to_record())
    down = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "down", "-c", str(config)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    bystander.wait(30)  # reaped here (this test is its parent), so `down` sees it gone
    stdout, stderr = down.communicate(timeout=60)
    assert down.returncode == 0, stderr
    assert "stopped 1 process" in stdout
    assert not (tmp_path / "runs" / "bench.json").exists()


@pytest.mark.parametrize("changed", ["started_at", "cmdline", "no identity"])
def test_down_leaves_a_recycled_pid_alone(
    tmp_path: Path, bystander: subprocess.Popen, changed: str
) -> None:
    record = ProcessIdentity.of(bystander.pid).to_record()  # type: ignore[union-attr]
    if changed == "started_at":
        record["started_at"] -= 3600.0  # the bench's edge started an hour earlier,
        record["since_boot_s"] -= 3600.0  # on both clocks
    elif changed == "cmdline":
        record["cmdline"] = [sys.executable, "-m", "edge_node", "--id", "edge-0"]
    else:
        record = {"pid": bystander.pid}  # a bench.json of before identities were recorded
    config = write_bench(tmp_path, record)
    status = run_testbed("status", "-c", str(config), "--json")
    assert json.loads(status.stdout)["nodes"]["edge-0"]["process"] == "exited"
    out = run_testbed("down", "-c", str(config))
    assert out.returncode == 0, out.stderr
    said = out.stdout + out.stderr
    if changed == "no identity":
        assert f"pid {bystander.pid} of edge-0 has no recorded identity" in said, said
    else:
        assert f"pid {bystander.pid} is no longer edge-0: left alone" in said, said
    assert psutil.Process(bystander.pid).status() != psutil.STATUS_ZOMBIE
    assert bystander.poll() is None  # not signalled
