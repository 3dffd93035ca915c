"""How the cells of an experiment plan are run, and the steps every executor shares.

A cell is one (algorithm, sweep value, seed): a training in the twin for a trained
algorithm (`testbed train`'s code, one run folder), then an evaluation on the seed's
task sequence, live or in the twin (coordinator/experiment_plan.py says which). Before
the first training at a sweep value whose spec asks for it, the twin is calibrated on
that value's bench. The steps below are plain functions of the plan, so the sequential
executor here and the Ray executor (coordinator/ray_executor.py) run the very same code
and write the same `results.json` (coordinator/experiment_results.py): a cell already
written is skipped, a training already recorded is reused — that is how a stopped
experiment continues (docs/experiments.md).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.experiment_plan import Plan
from coordinator.experiment_results import Results
from coordinator.policy_choice import ORACLE, PolicyChoice, parse_policy
from coordinator.run_folder import slug
from testbed.exit_codes import TestbedExit


class Executor(enum.StrEnum):
    """`testbed experiment run --executor`."""

    SEQUENTIAL = "sequential"  # one cell after the other, in this process (the default)
    RAY = "ray"  # cells as Ray tasks (the `cluster` extra): coordinator/ray_executor.py


@dataclass(frozen=True)
class Cell:
    """One cell of the plan: what `results.json` holds one entry for."""

    algorithm: str
    value: Any
    seed: int

    def __str__(self) -> str:
        return f"{self.algorithm} {self.value}/{self.seed}"


def trained_algorithms(plan: Plan) -> set[str]:
    from coordinator.algorithms import ALGORITHMS

    return {a for a in plan.algorithms if ALGORITHMS[a].trained}


def pending_cells(plan: Plan, results: Results, out_dir: Path) -> list[Cell]:
    """The plan's cells not yet in `results`, in plan order (value, seed, algorithm)."""
    first = {v: plan.cell_config(v, plan.seeds[0], out_dir) for v in plan.values}
    return [Cell(a, v, s) for v in plan.values for s in plan.seeds
            for a in plan.algorithms_for(first[v]) if not results.has(a, v, s)]  # fmt: skip


def plan_order(plan: Plan, out_dir: Path) -> dict[tuple[str, str, int], int]:
    """(algorithm, str(value), seed) → the cell's place in the plan: the order the
    sequential executor writes cells in."""
    first = {v: plan.cell_config(v, plan.seeds[0], out_dir) for v in plan.values}
    keys = [(a, str(v), s) for v in plan.values for s in plan.seeds
            for a in plan.algorithms_for(first[v])]  # fmt: skip
    return {key: i for i, key in enumerate(keys)}


def reusable_training(results: Results, cell: Cell) -> Path | None:
    """The cell's training run folder, if one was recorded and exported its actors."""
    done = results.training(cell.algorithm, cell.value, cell.seed)
    return Path(done) if done and (Path(done) / "actors").is_dir() else None


def announce(plan: Plan, todo: list[Cell], trainings: int, executor: Executor) -> None:
    print(f"experiment {plan.spec.name}: {plan.spec.sweep.key} over {plan.values}, seeds "
          f"{plan.seeds}, {', '.join(plan.algorithms)}; {len(todo)} cells to run "
          f"({trainings} trainings), {plan.slots} slots per evaluation, "
          f"executor {executor.value}")  # fmt: skip


def calibrate_value(plan: Plan, value: Any, out_dir: Path) -> Path:
    """`testbed calibrate` on the bench of `value` (first seed, the bench written to
    bench.yaml beside it); the calibration file. It runs the live bench."""
    from coordinator.calibration.measure import calibrate_bench, checked_catalog

    folder = out_dir / "calibration" / slug(str(value))
    folder.mkdir(parents=True, exist_ok=True)
    cfg = plan.cell_config(value, plan.seeds[0], out_dir)
    (folder / "bench.yaml").write_text(cfg.to_yaml())
    out = folder / "calibration.json"
    print(f"calibrating the twin on the bench of {plan.spec.sweep.key}={value} "
          f"({plan.spec.calibrate_slots} slots per run)")  # fmt: skip
    try:
        calibrate_bench(cfg, checked_catalog(cfg), slots=plan.spec.calibrate_slots, out=out)
    except TestbedExit as exc:
        what = f"{plan.spec.sweep.key}={value}"
        raise TestbedExit(exc.code, f"calibration of {what} failed: {exc.message}") from None
    return out


def train_cell(plan: Plan, cell: Cell, out_dir: Path, calibration: str | Path | None) -> Path:
    """Train the cell's algorithm in the twin; its run folder (under out_dir/runs)."""
    from coordinator.training import train_run

    cfg = plan.cell_config(cell.value, cell.seed, out_dir, calibration)
    label = f"train {cell.algorithm} {plan.spec.sweep.key}={cell.value} seed {cell.seed}"
    run_dir, _ = train_run(cfg, cell.algorithm, "twin", label=label)
    return run_dir


def cell_backend(plan: Plan, cell: Cell, out_dir: Path) -> tuple[str, str]:
    """(live|twin, why) the cell is evaluated on: the oracle always searches the twin."""
    if cell.algorithm == ORACLE:
        return "twin", "the oracle searches the twin's state"
    return plan.backend(plan.cell_config(cell.value, cell.seed, out_dir))


def evaluate_cell(
    plan: Plan, cell: Cell, out_dir: Path, calibration: str | Path | None, run_dir: Path | None
) -> dict[str, Any]:
    """Evaluate the cell (the trained actors of `run_dir`, or the heuristic); the entry
    `results.json` holds for it."""
    from coordinator.evaluation import evaluate

    cfg = plan.cell_config(cell.value, cell.seed, out_dir, calibration)
    algo, value, seed = cell.algorithm, cell.value, cell.seed
    if run_dir is not None:
        policy = parse_policy(f"{algo}={run_dir}")
    else:
        policy = PolicyChoice(algo, heuristic=algo)
    where, reason = cell_backend(plan, cell, out_dir)
    res = evaluate(cfg, policy, seed, plan.slots, where, out_dir / "evals")
    twin_reward = res.reward
    if where != "twin":  # what the twin promised for the same tasks (the gap, the report)
        twin_reward = evaluate(cfg, policy, seed, plan.slots, "twin", out_dir).reward
    return {
        "algorithm": algo, "value": value, "seed": seed, "backend": where,
        "backend_reason": reason, "slots": plan.slots,
        "twin_reward": twin_reward,
        "metrics": {
            "latency_ms": res.latency_ms, "latency_p95_ms": res.latency_p95_ms,
            "energy_j": res.energy_j, "completion_rate": res.completion_rate,
            "reward": res.reward, "tasks": res.tasks,
            "energy_methods": res.energy_methods, "failures": res.failures,
        },
        "train_run": str(run_dir) if run_dir else None,
        "eval_run": res.run_dir or None,
    }  # fmt: skip


def cell_note(doc: dict[str, Any]) -> str:
    """The progress line of a finished cell."""
    done = f"{100 * doc['metrics']['completion_rate']:.0f}% done"
    return f"{doc['algorithm']} {doc['value']}/{doc['seed']} ({doc['backend']}): {done}, " \
        f"{doc['metrics']['latency_ms']:.0f} ms"  # fmt: skip


# ---------------------------------------------------------------------------- sequential


def run_sequential(plan: Plan, out_dir: Path) -> Results:
    """Train and evaluate every missing cell of `plan` into `out_dir`, one after the
    other in this process."""
    from coordinator.progress import ProgressBar

    out_dir.mkdir(parents=True, exist_ok=True)
    results = Results(out_dir / "results.json", plan.spec)
    trained = trained_algorithms(plan)
    todo = pending_cells(plan, results, out_dir)
    n_train = sum(1 for c in todo if c.algorithm in trained and not reusable_training(results, c))
    announce(plan, todo, n_train, Executor.SEQUENTIAL)
    if not todo:
        return results
    bar = ProgressBar(len(todo) + n_train, f"experiment {plan.spec.name}")
    calibrations: dict[str, str | None] = {}
    for cell in todo:
        key = str(cell.value)
        if key not in calibrations:
            calibrations[key] = None
            if plan.spec.calibrate_slots:
                calibrations[key] = results.calibration(cell.value)
                if calibrations[key] is None:
                    path = calibrate_value(plan, cell.value, out_dir)
                    results.add_calibration(cell.value, path)
                    calibrations[key] = str(path)
        run_dir: Path | None = None
        if cell.algorithm in trained:
            run_dir = reusable_training(results, cell)
            if run_dir is None:
                t0 = time.monotonic()
                run_dir = train_cell(plan, cell, out_dir, calibrations[key])
                results.add_training(cell.algorithm, cell.value, cell.seed, run_dir)
                bar.update(1, f"trained {cell.algorithm} ({time.monotonic() - t0:.0f} s)")
        doc = evaluate_cell(plan, cell, out_dir, calibrations[key], run_dir)
        results.add(doc)
        bar.update(1, cell_note(doc))
    return results
