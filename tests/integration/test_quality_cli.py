"""The §C experiments from the CLI, as a user runs them, on the tiny quality zoo:
`testbed quality profile` measures the categories and `testbed quality run --profile`
uses them (without them, the probabilistic and direct assignments are refused with the
command to run); `testbed quality experiment run|report` wraps the offline experiments;
`testbed quality experiment live` runs `testbed quality run` per method and seed on a
real broker, cloud and edge and reports over the seeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordinator.cli import main
from testbed.config import load_config
from testbed.exit_codes import ExitCode
from tests.quality_fixtures import tiny_quality_zoo  # noqa: F401

pytest.importorskip("onnxruntime")

TINY_SPEC: dict[str, Any] = {
    "name": "tiny",
    "seeds": [0, 1],
    "profile": {"steps": [1, 2, 4], "paper_steps": [2, 3, 4], "requests_per_seed": 8,
                "category_requests": 8, "reference_steps": 4, "latency_repeats": 2},
    "slots": {"slots": 1, "requests_per_slot": 4},
    "latency_weights_per_s": [0.2],
    "allocation": {"step_grid": [1, 2, 4], "fixed_steps": {"small": 1}},
}  # fmt: skip


def bench_file(folder: Path, zoo: Path) -> Path:
    (folder / "zoo").mkdir(exist_ok=True)
    if not (folder / "zoo" / "tiny").exists():
        (folder / "zoo" / "tiny").symlink_to(zoo)
    data = {
        "zoo": {"scale": "tiny", "dir": str(folder / "zoo")},
        "agents": {"count": 0},
        "edges": {"count": 1, "executor": "shares"},
        "run": {"out_dir": str(folder / "runs")},
        "allocation": {"step_grid": [1, 2, 4], "fixed_steps": {"small": 1}},
        "quality": {"live": {"requests_per_slot": 3, "calibration_requests": 1}},
    }
    path = folder / "quality.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_profile_feeds_the_live_run_and_its_absence_names_the_command(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg_path = bench_file(tmp_path, tiny_quality_zoo)
    base = ["quality", "run", "-c", str(cfg_path), "--slots", "1"]
    assert main([*base, "--assignment", "direct"]) == ExitCode.CONFIG_INVALID
    err = capsys.readouterr().err
    assert "testbed quality profile" in err and "--profile" in err, err
    spec = write_yaml(tmp_path / "spec.yaml", TINY_SPEC)
    out = tmp_path / "profile"
    args = ["quality", "profile", "-c", str(cfg_path), "--spec", str(spec), "--out", str(out)]
    assert main(args) == 0
    assert "testbed quality run --profile" in capsys.readouterr().out
    measured = out / "measured-allocation.yaml"
    profile = json.loads((out / "profile.json").read_text())
    cfg = load_config(cfg_path, sets=[("allocation.categories",
                                       yaml.safe_load(measured.read_text())["allocation"]
                                       ["categories"])])  # fmt: skip
    fits = profile["category_fits"]
    for category in cfg.allocation.categories:
        assert category.measured
        assert [category.score_mean, category.score_std] == pytest.approx(fits[category.name])
    assert (out / "report.md").is_file()
    assert main([*base, "--assignment", "probabilistic", "--profile", str(measured), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["assignment"] == "probabilistic"
    assert summary["completed"] == summary["requests"] == 3
    bad = write_yaml(tmp_path / "bad.yaml", {"categories": []})
    assert main([*base, "--profile", str(bad)]) == ExitCode.CONFIG_INVALID
    assert "measured-allocation.yaml" in capsys.readouterr().err


def test_experiment_run_and_report_from_the_cli(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    cfg_path = bench_file(tmp_path, tiny_quality_zoo)
    spec = write_yaml(tmp_path / "spec.yaml", TINY_SPEC)
    out = tmp_path / "exp"
    run = ["quality", "experiment", "run", str(spec), "-c", str(cfg_path), "--out", str(out)]
    assert main([*run, "--part", "assignment"]) == ExitCode.CONFIG_INVALID  # no profile yet
    assert main([*run, "--part", "profile", "--part", "assignment"]) == 0
    assignment = json.loads((out / "assignment.json").read_text())
    assert set(assignment["summary"]) == {"probabilistic", "direct", "random"}
    assert not (out / "allocation.json").exists()
    (out / "report.md").unlink()
    assert main(["quality", "experiment", "report", str(out)]) == 0
    assert "## Assignment" in (out / "report.md").read_text()
    assert main(["quality", "experiment", "report", str(tmp_path)]) == ExitCode.USAGE


def test_live_experiment_runs_every_cell_once_and_reports_over_seeds(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    cfg_path = bench_file(tmp_path, tiny_quality_zoo)
    spec = write_yaml(tmp_path / "spec.yaml", TINY_SPEC)
    prof = tmp_path / "profile"
    assert main(["quality", "profile", "-c", str(cfg_path), "--spec", str(spec),
                 "--out", str(prof)]) == 0  # fmt: skip
    live = write_yaml(tmp_path / "live.yaml", {
        "name": "tiny_live", "config": str(cfg_path),
        "profile": str(prof / "measured-allocation.yaml"), "offline": str(tmp_path / "none"),
        "seeds": [0, 1], "slots": 1, "requests_per_slot": 3,
        "assignment_methods": ["probabilistic", "random"],
        "allocation_methods": ["sa", "equal"],
    })  # fmt: skip
    out = tmp_path / "live"
    assert main(["quality", "experiment", "live", str(live), "--out", str(out)]) == 0
    data = json.loads((out / "live.json").read_text())
    # probabilistic+sa is in both parts and runs once per seed: 3 cells × 2 seeds
    assert sorted(data["runs"]) == sorted(f"{a}-{m}-s{s}" for a, m in [
        ("probabilistic", "sa"), ("random", "sa"), ("probabilistic", "equal")]
        for s in (0, 1))  # fmt: skip
    for run in data["runs"].values():
        assert run["summary"]["completed"] == run["summary"]["requests"] == 3
        assert Path(run["run_dir"], "tasks.csv").is_file()
    assignment = data["parts"]["assignment"]
    assert set(assignment["summary"]) == {"probabilistic", "random"}
    assert assignment["summary"]["random"]["score"]["n"] == 2
    edge = assignment["summary"]["random"]["edge_compute_ms"]
    assert (
        edge["n"] == 2 and 0 < edge["mean"] < assignment["summary"]["random"]["latency_ms"]["mean"]
    )
    assert set(data["parts"]["allocation"]["first_vs"]) == {"equal"}
    report = (out / "report.md").read_text()
    assert "live" in report and "## Allocation (assignment probabilistic)" in report
    assert data["load_average_before"] and data["load_average_after"]


def test_the_committed_live_spec_loads_and_its_profile_exists() -> None:
    from coordinator.quality_live_experiments import load_live_spec

    repo = Path(__file__).resolve().parents[2]
    spec = load_live_spec(repo / "experiments" / "quality_live.yaml")
    assert len(spec.seeds) >= 5 and (repo / spec.profile).is_file()
    assert [m.value for m in spec.allocation_methods] == [
        "sa",
        "equal",
        "optimal_step",
        "exhaustive",
    ]
