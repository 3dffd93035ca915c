"""`testbed calibrate` on the live §B bench as a user runs it (docs/coedge.md,
"Calibration and the twin's gap"): a tiny three-edge bench measured with the four
heuristics, a calibration file the §B twin loads, the fidelity report on the same
tasks, and the same report again from the run folder without a bench."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coordinator.calibration.coedge_gap import COEDGE_POLICIES
from coordinator.coedge_calibration_file import CoedgeCalibration
from coordinator.envs.coedge_twin import CoedgeParams, CoedgeTwin
from testbed.coedge.tasks import slot_tasks
from testbed.config import load_config

from .harness import write_config

ROOT = Path(__file__).resolve().parents[2]
EDGE_GHZ = [1.0, 1.5, 3.0]
SLOTS = 2

pytestmark = pytest.mark.slow


def coedge_bench(tmp_path: Path, tiny_zoo: Path) -> Path:
    """Three heterogeneous edges and their schedulers (tests/integration/test_coedge_live.py)."""
    n = len(EDGE_GHZ)
    (tmp_path / "zoo").mkdir(exist_ok=True)  # the command finds it as <zoo.dir>/<scale>
    (tmp_path / "zoo" / "tiny").symlink_to(tiny_zoo)
    return write_config(
        tmp_path / "testbed.yaml", None, tmp_path / "zoo" / "tiny",
        emulation={"links": False, "compute": True, "host_ghz": 3.0},
        edges={"count": n, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
               "preload": ["cgan-s"], "nodes": [{"cpu_ghz": g} for g in EDGE_GHZ]},
        agents={"count": n, "energy": {"meter": "estimated"}},
        tasks={"flops_per_cycle": 0.01, "types": [{
            "name": "process_optimisation", "model": "cgan-s", "size_mbit": [1.0, 1.0],
            "density_cycles_per_bit": 1.0, "deadline_s": 10.0}]},
        coedge={"edge_ghz": EDGE_GHZ, "slot_s": 0.4, "max_tasks": 2, "arrival_prob": 1.0,
                "size_mbit": [0.5, 1.0], "density_cycles_per_bit": [800.0, 1200.0],
                "deadline_s": 10.0},
        run={"system": "coedge", "slot_mode": "clocked", "task_timeout_s": 20.0,
             "start_timeout_s": 60.0, "out_dir": str(tmp_path / "runs")},
    )  # fmt: skip


def run_testbed(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_calibrate_a_coedge_bench_writes_a_calibration_the_twin_loads(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    config = coedge_bench(tmp_path, tiny_zoo)
    out = tmp_path / "cal" / "calibration.json"
    done = run_testbed("calibrate", "-c", str(config), "--slots", str(SLOTS), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "§B twin's fidelity gap" in done.stdout and str(out) in done.stdout
    calibration = CoedgeCalibration.load(out)
    assert [e.edge_id for e in calibration.edges] == ["edge-0", "edge-1", "edge-2"]
    assert all(e.shares > 0 and e.s_per_gcycle > 0 for e in calibration.edges)  # split-all
    assert all(ln.shares > 0 for ln in calibration.links)  # every station reached every edge
    assert all(math.isinf(calibration.link(j, j).rate_mbps) for j in range(3))
    assert all(o >= 0 for row in calibration.share_overhead_s() for o in row)
    cfg = load_config(config, sets=[f"coedge.calibration={out}"], env={})
    params = CoedgeParams.from_config(cfg.coedge, cfg.seed)
    assert params.edge_ghz == pytest.approx(calibration.edge_ghz())
    assert params.share_overhead_s is not None and params.share_overhead_s.shape == (3, 3)
    twin = CoedgeTwin(params, num_envs=4, seed=0)
    twin.reset()
    step = twin.step(np.zeros((4, 3), dtype=np.int64))
    assert np.all(step.info["delay_s"][step.has_decision] > 0)
    report = json.loads((out.parent / "fidelity.json").read_text())
    assert list(report["policies"]) == list(COEDGE_POLICIES)
    owed = sum(len(slot_tasks(cfg, cfg.seed, a.id, s)) for a in cfg.agent_specs()
               for s in range(SLOTS))  # fmt: skip
    for gap in report["policies"].values():
        assert gap["live"]["tasks"] == gap["twin"]["tasks"] == owed  # the same tasks
        assert set(gap["gap"]) == {"mean_delay", "p95_delay", "completion_points"}
        assert gap["live"]["completion_rate"] == 1.0
    assert (out.parent / "fidelity.md").read_text().startswith("# The §B twin's fidelity gap")
    run_dir = Path(calibration.measured["run_dir"])
    for purpose in ("calibration", "fidelity"):
        for policy in COEDGE_POLICIES:
            assert (run_dir / f"shares-{purpose}-{policy}.csv").is_file()
    again = run_testbed("calibrate", "-c", str(config), "--from", str(out))  # no bench
    assert again.returncode == 0, again.stdout + again.stderr
    refit = CoedgeCalibration.load(out)
    assert refit.edges == calibration.edges and refit.links == calibration.links
