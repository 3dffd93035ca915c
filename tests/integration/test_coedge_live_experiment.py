"""The §B experiment runner's live backend (coordinator/coedge_experiments.py with
`evaluate.backend: live`, coordinator/coedge_live_eval.py): one cell on a tiny live §B
bench — DDRL-AMSA trained a few steps in the twin, exported to ONNX, run on the
boards greedily and sampled, its twin evaluation beside; the report says live."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from coordinator.coedge_experiments import backend_of, cells_of, load_coedge_spec, run_experiment

from .harness import write_coedge_config

pytestmark = pytest.mark.slow


def _bench_config(tmp_path: Path, tiny_zoo: Path) -> Path:
    """Three heterogeneous edges, one scheduler each, clocked slots (as
    tests/integration/test_coedge_live.py's bench)."""
    zoo = tmp_path / "zoo" / "tiny"  # the config names a zoo by folder and scale
    zoo.parent.mkdir()
    zoo.symlink_to(tiny_zoo)
    return write_coedge_config(
        tmp_path / "testbed.yaml",
        zoo,
        coedge={"episode_slots": 3},
        coedge_learners={"hidden": 16, "batch_size": 16, "warmup_steps": 16},
    )


def test_the_live_backend_runs_a_cell_on_the_boards(tmp_path: Path, tiny_zoo: Path) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "coedge_live_tiny", "config": str(_bench_config(tmp_path, tiny_zoo)),
        "sweep": {"key": "coedge.arrival_prob", "values": [1.0]},
        "algorithms": ["ddrl-amsa", "optimum"], "seeds": [0],
        "train": {"env_steps": 48, "num_envs": 2},
        "evaluate": {"num_envs": 2, "steps": 6, "backend": "auto", "slots": 2},
    }))  # fmt: skip
    spec = load_coedge_spec(spec_path)
    amsa, optimum = cells_of(spec)
    assert backend_of(spec, amsa)[0] == "live"  # auto: a coedge bench of 3 stations
    assert backend_of(spec, optimum) == ("twin", "optimum has no board form")
    out = tmp_path / "out"
    results = run_experiment(spec, out, command="test")
    cell = next(c for c in results["cells"] if c["algorithm"] == "ddrl-amsa")
    assert cell["backend"] == "live" and cell["learner_settings"]["hidden"] == 16
    # the live figures, the twin's beside them
    assert 0.0 < cell["delay_s"] < 20.0 and 0.0 <= cell["completion"] <= 1.0
    assert cell["twin_delay_s"] > 0.0 and cell["twin_sampled_delay_s"] > 0.0
    assert 0.0 < cell["sampled_delay_s"] < 20.0
    assert cell["decisions"] == 2 * 2 * 3  # arrival 1: 2 tasks × 3 stations × 2 slots
    for key in ("run_dir", "sampled_run_dir"):
        run_dir = Path(cell[key])
        assert run_dir.is_relative_to(out / "live")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["system"] == "coedge"
        with (run_dir / "tasks.csv").open() as f:
            tasks = list(csv.DictReader(f))
        assert len(tasks) == 12  # the same tasks greedy and sampled: the seed's
        assert {t["task_id"] for t in tasks} == {f"agent-{a}/s{s:06d}/k{k:03d}"
                                                 for a in range(3) for s in range(2)
                                                 for k in range(2)}  # fmt: skip
    assert (Path(cell["run_dir"]).parent / "actors").is_dir()
    assert "__ddrl-amsa__10000__" in Path(cell["run_dir"]).name  # the bench's seed
    assert "__ddrl-amsa-sampled__10000__" in Path(cell["sampled_run_dir"]).name
    twin_cell = next(c for c in results["cells"] if c["algorithm"] == "optimum")
    assert twin_cell["backend"] == "twin" and "twin_delay_s" not in twin_cell
    assert results["summary"]["label"] == "live and twin"
    report = (out / "report.md").read_text()
    assert "live and in the twin" in report and "twin: mean delay (s)" in report
