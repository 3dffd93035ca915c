"""`results.json` of an experiment: its spec, the exact command and commit, every
finished cell, written after each one (a stopped experiment keeps what it finished and
continues from there when run again), and each training's evaluation curve, so the
report's training figure can be drawn again from results.json alone."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from coordinator.experiment_spec import ExperimentSpec
from coordinator.recorder import RunStatus
from coordinator.report_tables import METRICS, read_eval_curve
from coordinator.run_folder import git_commit
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.schema import dump_dataclass

REPORTED = tuple(key for key, _label, _better in METRICS)
"""The metrics every cell has and the report aggregates."""


def read_results(path: Path, metrics: tuple[str, ...] = ()) -> dict[str, Any]:
    """An experiment's `results.json`, checked as far as a resumed run reads it, and
    every cell's `metrics` numbers (the report: `REPORTED`): CONFIG_INVALID naming the
    first part that is not what `testbed experiment run` writes (a hand-edited or
    truncated file, a §B run's folder), never a traceback."""
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise TestbedExit(ExitCode.CONFIG_INVALID, f"{path}: not valid JSON ({exc})") from None
    problem = _results_problem(doc, metrics)
    if problem and isinstance(doc, dict) and "cells_expected" in doc:  # §B's own format
        problem = ("the results of a §B experiment: `testbed coedge experiment report "
                   f"{path.parent}` writes its report")  # fmt: skip
    if problem:
        raise TestbedExit(ExitCode.CONFIG_INVALID, (
            f"{path}: {problem}; not the results.json of `testbed experiment run`"))  # fmt: skip
    return doc  # type: ignore[no-any-return]


def _results_problem(doc: Any, metrics: tuple[str, ...]) -> str | None:
    """What first differs from results.json's shape, or None."""
    if not isinstance(doc, dict):
        return "expected an object"
    sweep = doc.get("sweep")
    if not isinstance(sweep, dict) or not isinstance(sweep.get("key"), str):
        return "sweep.key: expected the swept key"
    if not isinstance(doc.get("cells"), list):
        return "cells: expected a list"
    for i, cell in enumerate(doc["cells"]):
        if not isinstance(cell, dict) or not {"algorithm", "value", "seed"} <= cell.keys():
            return f"cells[{i}]: expected an object with algorithm, value, seed, metrics"
        if not isinstance(cell["algorithm"], str) or type(cell["seed"]) is not int:
            return f"cells[{i}]: expected a text algorithm and an integer seed"
        values = cell.get("metrics")
        if not isinstance(values, dict):
            return f"cells[{i}].metrics: expected an object"
        for key in metrics:
            if type(values.get(key)) not in (int, float):
                return f"cells[{i}].metrics.{key}: expected a number"
    for key in ("trainings", "curves", "calibrations"):
        if not isinstance(doc.get(key, {}), dict):
            return f"{key}: expected an object"
    return None


class Results:
    """`results.json`: the format `testbed report` reads, written after every cell."""

    def __init__(self, path: Path, spec: ExperimentSpec) -> None:
        self.path = path
        self.doc: dict[str, Any] = {
            "experiment": spec.name, "description": spec.description.strip(),
            "spec": dump_dataclass(spec),
            "sweep": {"key": spec.sweep.key, "label": spec.sweep.label or spec.sweep.key,
                      "values": list(spec.sweep.values)},
            "commit": git_commit(), "command": shlex.join(["testbed", *sys.argv[1:]]),
            "status": RunStatus.RUNNING.value, "cells": [], "trainings": {}, "curves": {},
        }  # fmt: skip
        if path.exists():
            old = read_results(path)
            if old.get("experiment") != spec.name or old["sweep"]["key"] != spec.sweep.key:
                raise TestbedExit(ExitCode.USAGE, f"{path} holds another experiment "
                                  f"({old.get('experiment')}): choose another --out")  # fmt: skip
            self.doc["cells"], self.doc["trainings"] = old["cells"], old.get("trainings", {})
            self.doc["calibrations"] = old.get("calibrations", {})
            self.doc["curves"] = old.get("curves", {})
            # each cell carries the commit it ran at; the runs before this one are kept
            earlier = {"commit": old.get("commit"), "command": old.get("command")}
            self.doc["earlier_runs"] = [*old.get("earlier_runs", []), earlier]

    def has(self, algorithm: str, value: Any, seed: int) -> bool:
        return any(
            c["algorithm"] == algorithm and str(c["value"]) == str(value) and c["seed"] == seed
            for c in self.doc["cells"]
        )

    def here(self, recorded: str | None, *folder: str) -> Path | None:
        """A path this file recorded, as it is found now: as written, or (written relative
        to another working directory, or the experiment folder moved) at the same place
        under this file's folder (`folder` …, then its last part). None if neither is."""
        if not recorded:
            return None
        path = Path(recorded)
        moved = self.path.parent.joinpath(*folder, path.name)
        return next((p for p in (path, moved) if p.exists()), None)

    def calibration(self, value: Any) -> str | None:
        path = self.doc.setdefault("calibrations", {}).get(str(value))
        found = self.here(path, "calibration", Path(path or ".").parent.name)
        return str(found) if found else None

    def add_calibration(self, value: Any, path: Path) -> None:
        self.doc.setdefault("calibrations", {})[str(value)] = str(path)
        self.save()

    def training(self, algorithm: str, value: Any, seed: int) -> str | None:
        """The recorded run folder of a training (see `here`), None if not found."""
        found = self.here(self.doc["trainings"].get(f"{algorithm}/{value}/{seed}"), "runs")
        return str(found) if found else None

    def add_training(self, algorithm: str, value: Any, seed: int, run_dir: Path) -> None:
        """A finished training: its run folder, and its evaluation curve (step, reward per
        task) from the folder's metrics.csv where that is readable here."""
        key = f"{algorithm}/{value}/{seed}"
        self.doc["trainings"][key] = str(run_dir)
        curve = read_eval_curve(run_dir)
        if curve is not None:
            self.doc["curves"][key] = {"step": curve[0], "eval_reward": curve[1]}
        self.save()

    def add(self, cell: dict[str, Any]) -> None:
        """A finished cell, stamped with this run's commit unless it carries its own."""
        self.doc["cells"].append({**cell, "commit": cell.get("commit", self.doc["commit"])})
        self.save()

    def mark(self, status: RunStatus) -> None:
        """Running, completed, or interrupted (the finished cells are kept)."""
        self.doc["status"] = status.value
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, default=str))
        tmp.replace(self.path)
