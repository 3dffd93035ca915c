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

from .harness import write_coedge_config

ROOT = Path(__file__).resolve().parents[2]
SLOTS = 2

pytestmark = pytest.mark.slow


def coedge_bench(tmp_path: Path, tiny_zoo: Path) -> Path:
    """Three heterogeneous edges and their schedulers (tests/integration/test_coedge_live.py)."""
    (tmp_path / "zoo").mkdir(exist_ok=True)  # the command finds it as <zoo.dir>/<scale>
    (tmp_path / "zoo" / "tiny").symlink_to(tiny_zoo)
    return write_coedge_config(
        tmp_path / "testbed.yaml",
        tmp_path / "zoo" / "tiny",
        run={"out_dir": str(tmp_path / "runs")},
    )


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
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    bad = run_testbed("calibrate", "-c", str(config), "--from", str(empty))
    assert bad.returncode == 3 and "Traceback" not in bad.stderr, bad.stderr
    assert f"--from {empty}: " in bad.stderr and "pass that file to --from" in bad.stderr
