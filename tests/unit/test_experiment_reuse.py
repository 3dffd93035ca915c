"""`testbed experiment reuse`: cells copied only between identical benches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from coordinator.cli import main
from coordinator.experiment_plan import make_plan
from coordinator.experiment_spec import load_spec
from testbed.exit_codes import ExitCode


def _spec(tmp_path: Path, name: str, key: str, values: list[int], **set_: Any) -> Path:
    doc = {"name": name, "config": "bench.yaml", "algorithms": ["mato", "greedy"],
           "sweep": {"key": key, "values": values}, "seeds": [0, 1], "set": set_,
           "calibrate_slots": 6}  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _finished(tmp_path: Path, spec_path: Path, value: int) -> Path:
    """A finished experiment folder for `spec_path` at `value`: its cells, one training
    (with exported actors) and the value's calibration."""
    out = tmp_path / "runs" / "models"
    run_dir = out / "runs" / "models_3__mato__0__T"
    (run_dir / "actors").mkdir(parents=True)
    (out / "calibration" / str(value)).mkdir(parents=True)
    (out / "calibration" / str(value) / "calibration.json").write_text("{}")
    (out / "calibration" / str(value) / "fidelity.md").write_text("# gap\n")
    plan = make_plan(load_spec(spec_path), spec_path)
    cells = [{"algorithm": a, "value": value, "seed": s, "backend": "live",
              "metrics": {"reward": -0.5}} for a in ("mato", "greedy") for s in (0, 1)]  # fmt: skip
    cells.append({"algorithm": "mato", "value": 4, "seed": 0, "metrics": {}})  # another value
    doc = {"experiment": plan.spec.name, "spec": json.loads(json.dumps(
        yaml.safe_load(spec_path.read_text()))), "sweep": {"key": plan.spec.sweep.key},
        "cells": cells, "trainings": {f"mato/{value}/0": str(run_dir)},
        "calibrations": {str(value): str(out / "calibration" / str(value) / "calibration.json")},
    }  # fmt: skip
    (out / "results.json").write_text(json.dumps(doc))
    return out


@pytest.fixture
def benches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump({"agents": {"count": 3}}))
    return tmp_path


def test_the_same_bench_is_copied_with_its_origin(benches: Path) -> None:
    models = _spec(benches, "models", "tasks.num_types", [3, 4], **{"agents.count": 4})
    source = _finished(benches, models, 3)
    devices = _spec(benches, "devices", "agents.count", [2, 4], **{"tasks.num_types": 3})
    out = benches / "runs" / "devices"
    assert main(["experiment", "reuse", str(devices), "--value", "4", "--from", str(source),
                 "--from-value", "3", "--out", str(out)]) == 0  # fmt: skip
    doc = json.loads((out / "results.json").read_text())
    assert sorted((c["algorithm"], c["value"], c["seed"]) for c in doc["cells"]) == [
        ("greedy", 4, 0), ("greedy", 4, 1), ("mato", 4, 0), ("mato", 4, 1)]  # fmt: skip
    assert all(c["reused_from"] == {"experiment": "models", "folder": str(source), "value": 3}
               for c in doc["cells"])  # fmt: skip
    assert doc["trainings"] == {"mato/4/0": str(source / "runs" / "models_3__mato__0__T")}
    assert (out / "calibration" / "4" / "fidelity.md").read_text() == "# gap\n"
    assert Path(doc["calibrations"]["4"]) == out / "calibration" / "4" / "calibration.json"
    # Run again: nothing is copied twice.
    assert main(["experiment", "reuse", str(devices), "--value", "4", "--from", str(source),
                 "--from-value", "3", "--out", str(out)]) == 0  # fmt: skip
    assert len(json.loads((out / "results.json").read_text())["cells"]) == 4


def test_another_bench_is_refused_naming_the_keys(
    benches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = _spec(benches, "models", "tasks.num_types", [3, 4], **{"agents.count": 4})
    source = _finished(benches, models, 3)
    devices = _spec(benches, "devices", "agents.count", [2, 4],
                    **{"tasks.num_types": 3, "reward.energy_scale_j": 10})  # fmt: skip
    out = benches / "runs" / "devices"
    code = main(["experiment", "reuse", str(devices), "--value", "4", "--from", str(source),
                 "--from-value", "3", "--out", str(out)])  # fmt: skip
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "not the same bench" in err and "reward.energy_scale_j: 1.0 vs 10.0" in err
    assert not (out / "results.json").exists()
    code = main(["experiment", "reuse", str(devices), "--value", "5", "--from", str(source),
                 "--from-value", "3", "--out", str(out)])  # fmt: skip
    assert code == ExitCode.USAGE and "--value 5: not a value of devices" in capsys.readouterr().err
