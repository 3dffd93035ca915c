"""`testbed experiment reuse`: one experiment's finished cells of a sweep value, copied
into another experiment whose value is the very same bench.

Fig. 3 at 3 models and Fig. 4 at 10 devices are one bench (10 devices, 3 edges, 3
models): training and evaluating it twice costs an hour for nothing. This command
builds both experiments' cell configs, seed by seed, and copies the cells (with their
trainings, training curves and calibration) only when everything that decides a cell
is equal: every config key except the experiment's label, its folders and the
calibration file's path (the calibration is copied too), and the evaluation (backend,
slots, oracle). Otherwise it refuses, naming the keys that differ. Each copied cell says
where it came from (`reused_from`); the run folders it names are not copied.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.executors import Cell, reusable_training
from coordinator.experiment_plan import Plan, make_plan
from coordinator.experiment_results import Results
from coordinator.experiment_spec import ExperimentSpec, load_spec
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.schema import load_dataclass

IGNORED = ("experiment", "run.out_dir", "twin.calibration")
"""Config keys that label a cell or locate its files; they do not change what it measures."""


def _flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(source: Plan, value: Any, target: Plan, as_value: Any, seed: int) -> list[str]:
    """What differs between the two plans' cells of `seed` ('key: source vs target')."""
    here = Path(".")
    a = source.cell_config(value, seed, here)
    b = target.cell_config(as_value, seed, here)
    fa, fb = _flat(a.to_dict()), _flat(b.to_dict())
    diff = [f"{k}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in sorted(fa.keys() | fb.keys())
            if fa.get(k) != fb.get(k) and k not in IGNORED]  # fmt: skip
    for what, x, y in (("evaluate backend", source.backend(a)[0], target.backend(b)[0]),
                       ("evaluate slots", source.slots, target.slots),
                       ("oracle", source.oracle(a), target.oracle(b)),
                       ("calibrate_slots", source.spec.calibrate_slots,
                        target.spec.calibrate_slots)):  # fmt: skip
        if x != y:
            diff.append(f"{what}: {x!r} vs {y!r}")
    return diff


def source_plan(folder: Path) -> tuple[Plan, Results]:
    """The plan an experiment folder's results.json was run with (its recorded spec)."""
    path = folder / "results.json"
    if not path.exists():
        raise TestbedExit(ExitCode.USAGE, f"--from {folder}: no results.json there")
    spec = load_dataclass(ExperimentSpec, json.loads(path.read_text())["spec"])
    return make_plan(spec, path), Results(path, spec)


def reuse_cells(
    source_dir: Path, value: Any, target: Plan, as_value: Any, out_dir: Path
) -> list[dict[str, Any]]:
    """Copy `source_dir`'s finished cells of `value` into `out_dir` as `as_value` cells of
    `target`; the cells copied. Cells the target already has are left as they are."""
    source, found = source_plan(source_dir)
    if str(value) not in map(str, source.values):
        raise TestbedExit(ExitCode.USAGE, f"--from-value {value}: not a value of "
                          f"{source.spec.name} ({', '.join(map(str, source.values))})")  # fmt: skip
    if str(as_value) not in map(str, target.values):
        raise TestbedExit(ExitCode.USAGE, f"--value {as_value}: not a value of "
                          f"{target.spec.name} ({', '.join(map(str, target.values))})")  # fmt: skip
    value = next(v for v in source.values if str(v) == str(value))
    as_value = next(v for v in target.values if str(v) == str(as_value))
    for seed in target.seeds:
        diff = differences(source, value, target, as_value, seed)
        if diff:
            raise TestbedExit(ExitCode.USAGE, f"{source.spec.name} at {value} and "
                              f"{target.spec.name} at {as_value} are not the same bench "
                              f"(seed {seed}): " + "; ".join(diff))  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    results = Results(out_dir / "results.json", target.spec)
    if target.spec.calibrate_slots and results.calibration(as_value) is None:
        calibration = found.calibration(value)
        if calibration is None:
            raise TestbedExit(ExitCode.USAGE, f"{source_dir}: no calibration of {value} to "
                              "copy (the target calibrates per value)")  # fmt: skip
        folder = out_dir / "calibration" / str(as_value)
        shutil.copytree(Path(calibration).parent, folder, dirs_exist_ok=True)
        results.add_calibration(as_value, folder / "calibration.json")
    origin = {"experiment": source.spec.name, "folder": str(source_dir), "value": value}
    copied = []
    for cell in found.doc["cells"]:
        if (str(cell["value"]) != str(value) or cell["seed"] not in target.seeds
                or cell["algorithm"] not in [*target.algorithms, "oracle"]
                or results.has(cell["algorithm"], as_value, cell["seed"])):  # fmt: skip
            continue
        run_dir = reusable_training(found, Cell(cell["algorithm"], value, cell["seed"]))
        if run_dir is not None:
            results.add_training(cell["algorithm"], as_value, cell["seed"], run_dir)
        # its own commit, or None where the source did not record one (not this run's)
        doc = {**cell, "commit": cell.get("commit"), "value": as_value, "reused_from": origin}
        results.add(doc)
        copied.append(doc)
    return copied


def register(actions: argparse._SubParsersAction) -> None:
    r = actions.add_parser("reuse", **help_texts(
        "copy another experiment's cells of the very same bench",
        "testbed experiment reuse experiments/mato_devices.yaml --value 10 "
        "--from runs/experiments/mato_models --from-value 3",
        details="Refuses, naming the keys, unless both cells' configs and evaluations are\n"
        "equal; then `testbed experiment run` skips the copied cells.",
    ))  # fmt: skip
    r.add_argument("spec", help="the experiment to fill, e.g. experiments/mato_devices.yaml")
    r.add_argument("--value", required=True, help="its sweep value to fill")
    r.add_argument("--from", dest="source", required=True, metavar="DIR",
                   help="the finished experiment's folder (its results.json)")  # fmt: skip
    r.add_argument("--from-value", required=True, help="that experiment's sweep value")
    r.add_argument(
        "--out", default=None, help="experiment folder (default runs/experiments/<name>)"
    )
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="the overrides the experiment will be run with")  # fmt: skip
    r.set_defaults(func=run_reuse)


def run_reuse(args: argparse.Namespace) -> int:
    spec_path = Path(args.spec)
    target = make_plan(load_spec(spec_path), spec_path, sets=args.set)
    out_dir = Path(args.out or f"runs/experiments/{target.spec.name}")
    copied = reuse_cells(Path(args.source), args.from_value, target, args.value, out_dir)
    print(f"{out_dir}: {len(copied)} cells of {target.spec.sweep.key}={args.value} copied "
          f"from {args.source} ({args.from_value}); run the experiment for the rest")  # fmt: skip
    return 0
