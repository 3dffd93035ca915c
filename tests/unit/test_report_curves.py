"""A training's evaluation curve is kept in results.json when the training ends, so the
report's training figure (with its intervals over seeds) can be drawn again after the
run folders are gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from coordinator.experiment_results import Results
from coordinator.experiment_spec import ExperimentSpec, SweepSpec
from coordinator.report import write_report

SPEC = ExperimentSpec(name="toy", sweep=SweepSpec(key="agents.count", values=[2]))


def _training_run(folder: Path, rewards: list[float]) -> Path:
    folder.mkdir(parents=True)
    rows = ["step,episode_reward,eval_reward"]
    rows += [f"{10 * i},-1.0,{r}" for i, r in enumerate(rewards)] + ["35,-1.0,"]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_results_keep_the_curve_and_the_report_draws_it_without_the_runs(tmp_path: Path) -> None:
    out = tmp_path / "experiment"
    out.mkdir()
    results = Results(out / "results.json", SPEC)
    for seed, rewards in ((0, [-2.0, -1.5, -1.0]), (1, [-2.2, -1.3, -1.2])):
        run = _training_run(tmp_path / "runs" / f"mato{seed}", rewards)
        results.add_training("mato", 2, seed, run)
        results.add({"algorithm": "mato", "value": 2, "seed": seed, "backend": "twin",
                     "train_run": str(run), "metrics": {"latency_ms": 1.0, "energy_j": 1.0,
                                                        "completion_rate": 1.0}})  # fmt: skip
    doc = json.loads((out / "results.json").read_text())
    assert doc["curves"]["mato/2/0"] == {"step": [0.0, 10.0, 20.0],
                                         "eval_reward": [-2.0, -1.5, -1.0]}  # fmt: skip
    # reopened (a resumed experiment): the curves stay
    Results(out / "results.json", SPEC).save()
    assert "mato/2/1" in json.loads((out / "results.json").read_text())["curves"]
    shutil.rmtree(tmp_path / "runs")  # the run folders are gone, as in docs/results
    text = write_report([out]).read_text()
    assert "![toy_training](toy_training.png)" in text and "not rebuilt" not in text
    assert (out / "toy_training.png").stat().st_size > 1000
