"""The §C experiments end to end on the tiny quality zoo (coordinator/quality_experiments.py):
the profile, the assignment and the allocation run on the real ONNX generators and
evaluator at a small scale, write their files and report, and refuse a zoo whose gate
did not pass. No mocks. The zoo is built once and cached (tests/quality_fixtures.py).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from coordinator.quality_experiments import main, run_all
from coordinator.quality_profile import GateNotPassed, open_quality_zoo
from coordinator.quality_spec import QualityExperimentSpec, load_spec
from testbed.config.allocation import AllocationConfig
from testbed.schema import load_dataclass
from tests.quality_fixtures import tiny_quality_zoo  # noqa: F401

SMALL = {
    "seeds": [0, 1],
    "profile": {"steps": [1, 2, 4, 8], "paper_steps": [10, 18, 26], "requests_per_seed": 16,
                "category_requests": 16, "reference_steps": 4, "latency_repeats": 2},
    "slots": {"slots": 2, "requests_per_slot": 12},
    "latency_weights_per_s": [0.2, 3000.0],
    "allocation": {"step_grid": [1, 2, 4, 8], "fixed_steps": {"small": 4}},
}  # fmt: skip


def _spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


def test_the_experiments_run_end_to_end_on_the_tiny_zoo(tiny_quality_zoo: Path, tmp_path: Path):  # noqa: F811
    out = tmp_path / "out"
    started = time.monotonic()
    assert main(["all", "--spec", str(_spec(tmp_path)), "--zoo", str(tiny_quality_zoo),
                 "--out", str(out)]) == 0  # fmt: skip
    assert time.monotonic() - started < 60
    profile = json.loads((out / "profile.json").read_text())
    assert profile["label"] == "offline profile"
    # the measured μ_c, σ_c and thresholds load as an allocation: section
    section = yaml.safe_load((out / "measured-allocation.yaml").read_text())["allocation"]
    measured = load_dataclass(AllocationConfig, section)
    assert all(c.measured for c in measured.categories)
    assert measured.score_thresholds == sorted(measured.score_thresholds)
    for name, cat in profile["categories"].items():
        scores = np.concatenate(cat["scores"])
        assert cat["fit"]["mean"] == pytest.approx(scores.mean()), name
    # the rise the gate saw: the medium model scores more at 4 steps than at 1
    medium = profile["curves"]["digits-m"]
    assert np.mean(medium["4"]) > np.mean(medium["1"]) + 5
    assignment = json.loads((out / "assignment.json").read_text())
    assert set(assignment["summary"]) == {"probabilistic", "direct", "random"}
    for matrix in assignment["matrices"].values():
        assert np.allclose(np.sum(matrix, axis=1), 1.0)
    direct = np.asarray(assignment["matrices"]["direct"])
    assert set(direct.ravel().tolist()) <= {0.0, 1.0}
    allocation = json.loads((out / "allocation.json").read_text())
    for grid in allocation["grids"].values():
        for cell in grid["by_lambda"].values():
            solvers = cell["solvers"]
            best = solvers["exhaustive"]["twin_utility_per_task"]["mean"]
            for name in ("annealing", "equal_allocation", "optimal_step"):
                assert solvers[name]["twin_utility_per_task"]["mean"] <= best + 1e-9, name
            assert cell["annealing_exact_slots"] == cell["slots"] == 4
    report = (out / "report.md").read_text()
    assert "## Quality profile" in report and "## Allocation" in report
    assert "−30.2 %" in report and "+2.5 %" in report


def test_a_zoo_whose_gate_failed_is_refused(tiny_quality_zoo: Path, tmp_path: Path):  # noqa: F811
    zoo = tmp_path / "zoo"
    shutil.copytree(tiny_quality_zoo, zoo)
    catalog = json.loads((zoo / "catalog.json").read_text())
    for entry in catalog["models"]:
        if entry["id"] == "digits-eval":
            entry["metrics"]["gate_passed"] = 0.0
    (zoo / "catalog.json").write_text(json.dumps(catalog))
    spec = load_dataclass(QualityExperimentSpec, SMALL)
    with pytest.raises(GateNotPassed, match="did not pass"):
        open_quality_zoo(zoo, spec)
    with pytest.raises(GateNotPassed):
        run_all(load_spec(_spec(tmp_path)), zoo, tmp_path / "out")
    assert not (tmp_path / "out" / "profile.json").exists()
