"""The live allocation comparison (docs/quality-experiments.md, "Live allocation with
stretched compute"): with `shared_calibration` every run of a seed plans on the latency
fits its seed's first run measured (each run still measures and records its own), and a
λ sweep makes one allocation part per λ; `interleave` runs each seed's cells together;
on the tiny quality zoo, a real broker, cloud and edge. Random assignment, so no
category profile is needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.cli import main
from coordinator.quality_live_experiments import load_live_spec
from testbed.config import load_config
from testbed.emulation import stretch_factor
from tests.integration.test_quality_cli import bench_file, write_yaml
from tests.quality_fixtures import tiny_quality_zoo  # noqa: F401

pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[2]


def test_every_run_of_a_seed_plans_on_its_first_runs_calibration_per_lambda(
    tiny_quality_zoo: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    cfg_path = bench_file(tmp_path, tiny_quality_zoo)
    live = write_yaml(tmp_path / "live.yaml", {
        "name": "tiny_alloc", "config": str(cfg_path), "offline": str(tmp_path / "none"),
        "seeds": [0, 1], "slots": 1, "requests_per_slot": 3, "assignment_methods": [],
        "allocation_assignment": "random", "allocation_methods": ["sa", "equal"],
        "latency_weights_per_s": [0.2, 50], "shared_calibration": True, "interleave": True,
    })  # fmt: skip
    out = tmp_path / "live"
    assert main(["quality", "experiment", "live", str(live), "--out", str(out)]) == 0
    data = json.loads((out / "live.json").read_text())
    assert set(data["parts"]) == {"allocation λ=0.2", "allocation λ=50"}
    expected = {f"random-{m}-s{s}-l{lam}" for m in ("sa", "equal") for s in (0, 1)
                for lam in ("0.2", "50")}  # fmt: skip
    assert set(data["runs"]) == expected
    # interleaved: seed 0's four runs, then seed 1's, each in its own shuffled order
    assert [k.split("-")[2] for k in data["order"]] == ["s0"] * 4 + ["s1"] * 4
    for seed in (0, 1):
        first_key = next(k for k in data["order"] if f"-s{seed}-" in k)
        first = Path(data["runs"][first_key]["run_dir"], "calibration.json")
        own = json.loads(first.read_text())
        assert "planned_with" not in own  # the seed's first run plans on its own fit
        for key in expected - {first_key}:
            if f"-s{seed}-" not in key:
                continue
            run = json.loads(Path(data["runs"][key]["run_dir"], "calibration.json").read_text())
            planned = run["planned_with"]
            assert planned["from"] == str(first)
            for model, fit in own["latency"].items():
                assert planned[model]["per_step_s"] == fit["per_step_s"]
                assert planned[model]["fixed_s"] == fit["fixed_s"]
            assert run["latency"] != own["latency"]  # its own was measured again
    for key, run in data["runs"].items():
        assert run["summary"]["completed"] == run["summary"]["requests"] == 3, key
        λ = float(key.rsplit("-l", 1)[1])
        summary = json.loads(Path(run["run_dir"], "summary.json").read_text())
        assert summary["latency_weight_per_s"] == λ
    spread = data["calibration_spread"]
    assert {c["runs"] for c in spread.values()} == {len(expected) - 2}
    versus = data["parts"]["allocation λ=50"]["first_vs"]["equal"]
    assert versus["planned_utility_per_slot"]["n"] == 2
    report = (out / "report.md").read_text()
    assert "## Allocation λ=50 (assignment random)" in report
    assert "own fit / shared fit" in report and "## Assignment" not in report


def test_the_committed_alloc_spec_stretches_compute_and_sweeps_lambda() -> None:
    spec = load_live_spec(REPO / "experiments" / "quality_live_alloc.yaml")
    assert spec.shared_calibration and len(spec.seeds) >= 3
    assert len(spec.latency_weights_per_s) >= 2 and not spec.assignment_methods
    cfg = load_config(REPO / spec.config, sets=list(spec.sets))
    (edge,) = cfg.edge_specs()
    assert stretch_factor(edge.cpu_ghz, cfg.emulation) >= 50
    assert (REPO / spec.profile).is_file()
