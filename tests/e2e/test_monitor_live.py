"""`testbed monitor` on a real bench as a user runs it: `--once --json` against a bench
left by `testbed up --keep` (its broker read from the bench file,
coordinator/commands/monitor.py), and the dashboard replaying a run inside tmux."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_up import ROOT, bench_config, run_testbed
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

PRELOADED = {"edge-0": "diffusion-s", "edge-1": "cgan-s"}
"""The model each edge of the bench holds from the start."""


def preloaded_bench(tmp_path: Path, tiny_zoo: Path) -> Path:
    """The tiny bench of tests/e2e/test_up.py, its edges each holding a model."""
    edges = {
        "count": 2, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
        "nodes": [{"preload": [PRELOADED["edge-0"]]}, {"preload": [PRELOADED["edge-1"]]}],
    }  # fmt: skip
    return bench_config(tmp_path, tiny_zoo, edges=edges, telemetry={"interval_s": 0.5})


def test_once_json_on_a_kept_bench_lists_nodes_and_cached_models(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    config = preloaded_bench(tmp_path, tiny_zoo)
    up = run_testbed("up", "-c", str(config), "--slots", "1", "--keep")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        (run_dir,) = (p for p in (tmp_path / "runs").iterdir() if p.is_dir())
        manifest = json.loads((run_dir / "manifest.json").read_text())
        out = run_testbed("monitor", "--once", "--json", "-c", str(config), timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        snapshot = json.loads(out.stdout)
        assert set(manifest["nodes"]) <= set(snapshot["nodes"])
        assert set(snapshot["edges"]) == set(PRELOADED)
        for edge_id, model_id in PRELOADED.items():
            assert model_id in snapshot["edges"][edge_id]["cached_models"], snapshot
    finally:
        down = run_testbed("down", "-c", str(config))
    assert down.returncode == 0, down.stdout + down.stderr


def _tmux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")
def test_dashboard_replays_a_run_in_a_terminal_and_quits_on_q(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    config = preloaded_bench(tmp_path, tiny_zoo)
    up = run_testbed("up", "-c", str(config), "--slots", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    session = f"monitor-{tmp_path.name}"
    command = shlex.join([
        sys.executable, "-m", "coordinator.cli", "monitor", "-c", str(config),
        "--replay", str(run_dir), "--speed", "0",
    ])  # fmt: skip
    # its own tmux server (-L), so that the test neither sees nor touches a user's sessions
    server = ("-L", session)
    started = _tmux(*server, "new-session", "-d", "-s", session, "-x", "160", "-y", "50",
                    "-c", str(ROOT), command)  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:

        def screen() -> str:
            return _tmux(*server, "capture-pane", "-p", "-t", session).stdout

        def shows_the_bench() -> bool:
            text = screen()
            return "edge-0" in text and PRELOADED["edge-0"] in text

        assert wait_until(shows_the_bench, 60), screen()
        assert _tmux(*server, "send-keys", "-t", session, "q").returncode == 0
        assert wait_until(
            lambda: _tmux(*server, "has-session", "-t", session).returncode != 0, 30
        ), screen()
    finally:
        _tmux(*server, "kill-server")
