"""`testbed calibrate` as a user runs it: a tiny bench measured, a calibration file the
twin loads, the fidelity report of the four heuristics; a missing zoo is exit code 4."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from coordinator.calibration_file import Calibration
from coordinator.envs import make_vec_env
from coordinator.envs.twin_params import CostModel, TwinParams
from testbed.config import load_config
from testbed.exit_codes import ExitCode

from .test_envs import tiny_bench

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run_testbed(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_calibrate_writes_a_calibration_the_twin_uses(tmp_path: Path, tiny_zoo: Path) -> None:
    config = tiny_bench(tmp_path, tiny_zoo)
    out = tmp_path / "cal" / "calibration.json"
    done = run_testbed("calibrate", "-c", str(config), "--slots", "2", "--repeats", "1",
                       "--windows", "2", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fidelity gap" in done.stdout and str(out) in done.stdout
    calibration = Calibration.load(out)
    assert {m.model_id for m in calibration.models} >= {"diffusion-s", "cgan-s", "ae-s"}
    assert all(m.edge_s_per_unit > 0 and m.load_s > 0 for m in calibration.models)
    assert calibration.bench.zoo_scale.value == "tiny" and calibration.bench.agents == 3
    cfg = load_config(config, sets=[f"twin.calibration={out}"], env={})
    params = TwinParams.from_config(cfg)
    assert params.cost_model is CostModel.CALIBRATED and not params.notes
    vec = make_vec_env(cfg, num_envs=8, seed=0)
    vec.reset()
    step = vec.step(np.random.default_rng(0).uniform(0, 1, (8, 3, 5)).astype(np.float32))
    assert np.all(step.latency_s[step.has_task] > 0)
    report = json.loads((out.parent / "fidelity.json").read_text())
    assert set(report["policies"]) == {"local", "offload", "greedy", "random"}
    for gap in report["policies"].values():
        assert gap["live"]["tasks"] == gap["twin"]["tasks"] == 2 * 3  # same tasks (CRN)
        assert set(gap["gap"]) >= {"latency_mean_s", "latency_p95_s", "energy_mean_j",
                                   "completion_rate"}  # fmt: skip
    assert set(report["calibration_runs"]) == {"local", "offload", "random"}  # the fit's window
    # random's calibration run, its boards' draws continued: the twin replays its decisions
    assert (Path(calibration.bench.run_dir) / "tasks-calibration-random.csv").is_file()
    assert report["calibration_runs"]["random"]["live"]["tasks"] == 2 * 3
    assert (out.parent / "fidelity.md").read_text().startswith("# The twin's fidelity gap")
    # a second fidelity window (slots 4 … 5, after the calibration window) of every policy
    windows = report["windows"]
    assert windows["count"] == 2 and windows["first_slots"] == [0, 4]
    for policy, gaps in windows["policies"].items():
        assert (Path(calibration.bench.run_dir) / f"tasks-fidelity-{policy}-w1.csv").is_file()
        latency = gaps["latency_mean_s"]
        assert latency["live"][0] == report["policies"][policy]["live"]["latency_mean_s"]
        assert len(latency["relative_gap"]) == 2 and latency["verdict"] in {
            "within", "outside", "undecided", "no interval"}  # fmt: skip
    assert "## Over 2 windows" in (out.parent / "fidelity.md").read_text()
    again = run_testbed("calibrate", "-c", str(config), "--from", str(out), "--refit")  # no bench
    assert again.returncode == 0, again.stdout + again.stderr
    assert "fitted again" in again.stdout and "fidelity gap" in again.stdout
    for old, new in zip(calibration.models, Calibration.load(out).models, strict=True):
        for name in ("local_ghz_s_per_unit", "local_j_per_unit", "edge_s_per_unit", "load_s"):
            assert getattr(new, name) == pytest.approx(getattr(old, name), rel=1e-6)
    refitted = Calibration.load(out).mixed  # the mixed factors too (None: no mixed slot)
    assert (refitted is None) == (calibration.mixed is None)
    if refitted is not None and calibration.mixed is not None:
        got, want = asdict(refitted), asdict(calibration.mixed)
        assert got.pop("shared_host") == want.pop("shared_host") == "off"
        assert got == pytest.approx(want, rel=1e-6)
    # the host's other work, measured in the second before the bench, is the background
    busy = float(calibration.bench.host["busy_cores_before"])
    assert calibration.contention is not None and calibration.contention.background_load == busy
    # a committed calibration: its run's records beside it, the run folder gone
    run_dir = Path(calibration.bench.run_dir)
    run_dir.rename(out.parent / "records")
    kept = run_testbed("calibrate", "-c", str(config), "--from", str(out))  # no bench
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "fidelity gap" in kept.stdout and "## Over 2 windows" in kept.stdout
    replayed = json.loads((out.parent / "fidelity.json").read_text())["windows"]
    assert replayed["count"] == 2  # the live windows read back from the records (NaN-safe)
    for policy, gaps in windows["policies"].items():
        got = replayed["policies"][policy]["energy_mean_j"]["live"]
        assert got == pytest.approx(gaps["energy_mean_j"]["live"], rel=1e-6)
    # a refit of a calibration file with --out goes there, and leaves the file as it was
    before = out.read_bytes()
    elsewhere = tmp_path / "refit" / "ps.json"
    ps = run_testbed("calibrate", "-c", str(config), "--from", str(out), "--refit", "--out",
                     str(elsewhere), "--set", "twin.shared_host=processor_sharing")  # fmt: skip
    assert ps.returncode == 0, ps.stdout + ps.stderr
    assert out.read_bytes() == before and f"wrote {elsewhere}" in ps.stdout
    refit_ps = Calibration.load(elsewhere)
    assert (refit_ps.mixed is None) == (calibration.mixed is None)
    assert refit_ps.mixed is None or refit_ps.mixed.shared_host == "processor_sharing"
    assert (elsewhere.parent / "fidelity.md").is_file()
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    bad = run_testbed("calibrate", "-c", str(config), "--from", str(empty))
    assert bad.returncode == 3 and "Traceback" not in bad.stderr, bad.stderr
    assert f"--from {empty}: no calibration file" in bad.stderr
    assert "pass that file to --from" in bad.stderr


def test_calibrate_without_a_zoo_exits_4(tmp_path: Path) -> None:
    config = tmp_path / "testbed.yaml"
    config.write_text(yaml.safe_dump({"zoo": {"scale": "tiny", "dir": str(tmp_path / "none")}}))
    done = run_testbed("calibrate", "-c", str(config), "--slots", "1", timeout=60)
    assert done.returncode == ExitCode.ZOO_MISSING, done.stderr
    assert "testbed zoo build" in done.stderr
