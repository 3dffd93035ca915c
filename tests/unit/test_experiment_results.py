"""results.json's recorded paths: a resumed experiment finds its trainings and
calibrations even when the first run was started from another directory; a results.json
that is not what `testbed experiment run` writes is refused naming what is wrong."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from coordinator.coedge_experiments import report_from_folder
from coordinator.executors import Cell, reusable_training
from coordinator.experiment_results import REPORTED, Results, read_results
from coordinator.experiment_spec import ExperimentSpec, load_spec
from testbed.exit_codes import ExitCode, TestbedExit


def _spec(tmp_path: Path) -> ExperimentSpec:
    doc = {"name": "probe", "config": "bench.yaml", "algorithms": ["mato"],
           "sweep": {"key": "agents.count", "values": [3]}, "seeds": [0]}  # fmt: skip
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(doc))
    return load_spec(tmp_path / "spec.yaml")


def _record(tmp_path: Path, run_dir: str, calibration: str) -> Path:
    """An experiment folder whose results.json recorded these (relative) paths, with the
    folders themselves where the experiment writes them."""
    out = tmp_path / "first" / "runs" / "experiments" / "probe"
    (out / "runs" / Path(run_dir).name / "actors").mkdir(parents=True)
    (out / "calibration" / "3").mkdir(parents=True)
    (out / "calibration" / "3" / "calibration.json").write_text("{}")
    doc = {"experiment": "probe", "sweep": {"key": "agents.count"}, "cells": [],
           "trainings": {"mato/3/0": run_dir}, "calibrations": {"3": calibration}}  # fmt: skip
    (out / "results.json").write_text(json.dumps(doc))
    return out


def test_paths_recorded_from_another_directory_are_found_in_the_experiment_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path)
    out = _record(tmp_path, "runs/experiments/probe/runs/probe_3__mato__0__T",
                  "runs/experiments/probe/calibration/3/calibration.json")  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the recorded relative paths do not exist from here
    results = Results(out / "results.json", spec)
    assert reusable_training(results, Cell("mato", 3, 0)) == out / "runs" / "probe_3__mato__0__T"
    assert results.calibration(3) == str(out / "calibration" / "3" / "calibration.json")


def test_paths_that_exist_nowhere_are_not_reused(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    out = _record(tmp_path, "runs/x/probe_3__mato__0__T", "calibration/3/calibration.json")
    results = Results(out / "results.json", spec)
    os.rename(out / "runs" / "probe_3__mato__0__T", out / "runs" / "gone")
    (out / "calibration" / "3" / "calibration.json").unlink()
    assert reusable_training(results, Cell("mato", 3, 0)) is None
    assert results.calibration(3) is None


def test_a_resumed_run_keeps_the_commits_before_it(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    out = _record(tmp_path, "runs/x/probe_3__mato__0__T", "calibration/3/calibration.json")
    doc = json.loads((out / "results.json").read_text())
    doc.update(commit="aaaa", command="testbed experiment run spec.yaml")
    (out / "results.json").write_text(json.dumps(doc))
    Results(out / "results.json", spec).save()
    Results(out / "results.json", spec).save()
    saved = json.loads((out / "results.json").read_text())
    first = {"commit": "aaaa", "command": "testbed experiment run spec.yaml"}
    assert saved["earlier_runs"][0] == first
    assert len(saved["earlier_runs"]) == 2 and saved["commit"] != "aaaa"


CELL = {"algorithm": "mato", "value": 3, "seed": 0,
        "metrics": {"latency_ms": 500.0, "energy_j": 6.1, "completion_rate": 1.0}}  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        ("not json", "not valid JSON"),
        ([1, 2], "expected an object"),
        ({"cells": []}, "sweep.key: expected the swept key"),
        ({"sweep": {"key": "k"}, "cells": 5}, "cells: expected a list"),
        ({"sweep": {"key": "k"}, "cells": [{"algorithm": "mato"}]}, "cells[0]: expected an"),
        ({"sweep": {"key": "k"}, "cells": [{**CELL, "seed": "0"}]}, "an integer seed"),
        ({"sweep": {"key": "k"}, "cells": [{**CELL, "metrics": None}]},
         "cells[0].metrics: expected an object"),
        ({"sweep": {"key": "k"}, "cells": [CELL, {**CELL, "metrics": {"latency_ms": None}}]},
         "cells[1].metrics.latency_ms: expected a number"),
        ({"sweep": {"key": "k"}, "cells": [], "trainings": []}, "trainings: expected an"),
        ({"cells_expected": 4, "cells": []}, "`testbed coedge experiment report"),
    ],
)  # fmt: skip
def test_a_results_file_not_of_an_experiment_is_refused_naming_what(
    tmp_path: Path, doc: object, said: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(TestbedExit) as caught:
        read_results(path, REPORTED)  # as the report reads it
    assert caught.value.code == ExitCode.CONFIG_INVALID
    assert caught.value.message.startswith(f"{path}: ") and said in caught.value.message
    if "metrics.latency_ms" not in said:  # a resumed run needs no metric
        with pytest.raises(TestbedExit):
            Results(path, _spec(tmp_path))


def test_a_results_file_of_an_experiment_is_read(tmp_path: Path) -> None:
    doc = {"sweep": {"key": "k"}, "cells": [CELL, {**CELL, "seed": 1}], "trainings": {}}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    assert read_results(tmp_path / "results.json", REPORTED) == doc
    committed = Path(__file__).parents[2] / "docs" / "results" / "mato_explore" / "results.json"
    assert len(read_results(committed, REPORTED)["cells"]) == 20


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("not json", "Expecting value"),
        ('{"cells": 5}', "expected an object with its spec and cells"),
        ('{"spec": {}, "cells": []}', "name: missing"),
        ('{"sweep": {"key": "k"}, "trainings": {}, "cells": []}', "`testbed report "),
    ],
)  # fmt: skip
def test_a_coedge_report_refuses_what_is_not_its_results(
    tmp_path: Path, content: str, said: str
) -> None:
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(TestbedExit) as caught:  # was a KeyError's traceback
        report_from_folder(tmp_path)
    assert caught.value.code == ExitCode.CONFIG_INVALID
    assert "not the results.json of `testbed coedge experiment run`" in caught.value.message
    assert said in caught.value.message


def test_a_coedge_report_of_a_committed_run_is_written_again_unchanged(tmp_path: Path) -> None:
    committed = Path(__file__).parents[2] / "docs" / "results" / "coedge_arrival"
    shutil.copytree(committed, tmp_path / "run")
    report_from_folder(tmp_path / "run")
    for name in ("results.json", "report.md"):
        assert (tmp_path / "run" / name).read_text() == (committed / name).read_text()
