"""The §B experiment runner (coordinator/coedge_experiments.py, `testbed coedge
experiment`): a 2 × 2 tiny spec writes results.json and report.md with intervals, a
run again skips the finished cells, and the command line drives it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coordinator import coedge_experiments
from coordinator.coedge_experiments import load_coedge_spec, run_experiment

ROOT = Path(__file__).resolve().parents[2]

TINY_SPEC = {
    "name": "coedge_tiny",
    "description": "Two arrival probabilities, two seeds, on three small servers.",
    "config": str(ROOT / "testbed.yaml"),
    "set": {
        "coedge.edge_ghz": [4.0, 12.0, 40.0],
        "coedge.max_tasks": 3,
        "coedge.episode_slots": 3,
    },
    "sweep": {"key": "coedge.arrival_prob", "label": "arrival probability", "values": [0.4, 0.8]},
    "algorithms": ["ddrl-amsa", "drlcoedge", "smcoedge", "random"],
    "seeds": [0, 1],
    "train": {
        "env_steps": 64,
        "num_envs": 4,
        "overrides": {"batch_size": 16, "hidden": 16, "warmup_steps": 16, "updates_per_step": 0.25},
    },
    "evaluate": {"num_envs": 4, "steps": 20},
}


def _spec_file(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**TINY_SPEC, **changes}))
    return path


def test_a_tiny_spec_writes_results_and_a_report_with_intervals(tmp_path: Path) -> None:
    spec = load_coedge_spec(_spec_file(tmp_path))
    out = tmp_path / "out"
    results = run_experiment(spec, out, command="test")
    assert len(results["cells"]) == results["cells_expected"] == 2 * 2 * 4
    assert len(list((out / "cells").glob("*.json"))) == 16
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"]["label"] == "twin"
    for value in ("0.4", "0.8"):
        entry = saved["summary"]["per_value"][value]
        for algo in spec.algorithms:
            delay = entry["schedulers"][algo]["delay_s"]
            assert delay["n"] == 2 and delay["low"] <= delay["mean"] <= delay["high"]
        assert set(entry["reductions"]) == {"drlcoedge", "smcoedge"}
        assert entry["reductions"]["drlcoedge"]["n"] == 2
    assert saved["summary"]["over_sweep"]["smcoedge"]["n"] == 4  # 2 values × 2 seeds
    learned = next(c for c in saved["cells"] if c["algorithm"] == "ddrl-amsa")
    assert learned["curve_delay_s"] and learned["updates"] > 0
    assert learned["sampled_delay_s"] > 0.0 and 0.0 <= learned["sampled_completion"] <= 1.0
    assert "sampled_delay_s" not in next(c for c in saved["cells"] if c["algorithm"] == "random")
    assert saved["summary"]["over_sweep_sampled"]["drlcoedge"]["n"] == 4
    every = saved["summary"]["over_sweep_every_scheduler"]
    assert every["random"]["smcoedge"]["n"] == 4
    assert every["drlcoedge"]["drlcoedge"]["mean"] == 0.0  # itself
    report = (out / "report.md").read_text()
    assert "twin" in report and "18.22" in report and "13.54" in report
    assert "| ddrl-amsa | " in report and "[" in report  # intervals
    assert "over the sweep" in report and "Training curves" in report
    assert "its draws from π" in report


def test_a_run_again_skips_finished_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_coedge_spec(_spec_file(tmp_path, algorithms=["random", "least-queue"]))
    out = tmp_path / "out"
    run_experiment(spec, out)
    removed = sorted((out / "cells").glob("*.json"))[0]
    removed.unlink()
    ran = []
    real = coedge_experiments.run_cell

    def counting(spec_: object, cell: coedge_experiments.Cell, *more: object) -> dict:
        ran.append(cell.file_name)
        return real(spec_, cell, *more)  # type: ignore[arg-type]

    monkeypatch.setattr(coedge_experiments, "run_cell", counting)
    results = run_experiment(spec, out)
    assert ran == [removed.name]
    assert len(results["cells"]) == 2 * 2 * 2


def test_the_command_line_runs_and_reports(tmp_path: Path) -> None:
    spec = _spec_file(tmp_path, algorithms=["random", "optimum"], seeds=[0])
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "coordinator.cli", "coedge", "experiment"]
    done = subprocess.run([*cli, "run", str(spec), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "report.md").exists()
    (out / "report.md").unlink()
    done = subprocess.run([*cli, "report", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = (out / "report.md").read_text()
    assert "optimum" in report
    for path in (out / "cells").glob("*.json"):  # docs/results keeps results.json alone
        path.unlink()
    (out / "cells").rmdir()
    (out / "report.md").unlink()
    done = subprocess.run([*cli, "report", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "report.md").read_text() == report
    assert not (out / "cells").exists()
    bad = subprocess.run([*cli, "run", str(_spec_file(tmp_path, algorithms=["nope"]))],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "algorithms[0]" in bad.stderr


def test_train_prints_the_scheduler_beside_random_as_json(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "coedge", "train", "--algo", "drlcoedge",
         "--steps", "600", "--envs", "2", "--eval-steps", "10", "--json",
         "--set", "coedge.max_tasks=4", "--set", f"run.out_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["label"] == "twin" and set(out["schedulers"]) == {"drlcoedge", "random"}
    assert out["schedulers"]["drlcoedge"]["action_mode"] == "one"
    assert out["schedulers"]["drlcoedge"]["updates"] > 0
    # The trained scheduler is exported for the boards into a run folder in run.out_dir.
    (run_dir,) = tmp_path.iterdir()
    assert out["actor"]["run_dir"] == str(run_dir) and out["actor"]["max_diff"] <= 1e-5
    spec = json.loads((run_dir / "actor.spec.json").read_text())
    assert spec["kind"] == "dqn" and spec["action_mode"] == "one" and spec["num_actions"] == 5
    assert (run_dir / "actor.onnx").stat().st_size > 0
    assert json.loads((run_dir / "train.json").read_text()) == out
