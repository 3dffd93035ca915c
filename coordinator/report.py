"""`testbed report`: the paper's figures and tables from experiment results.

Input: one or more experiment folders (each with `results.json`, written by
`testbed experiment run`). Output, into the first folder (or `--out`): PNG figures —
latency, energy and completion rate against the swept variable, one line per
algorithm with 95 % confidence intervals over seeds as error bars, and the training
curves with their intervals (coordinator/report_figures.py) — and `report.md`
(coordinator/report_markdown.py): the numbers behind every point as mean [95 %
interval], MATO's improvement over each baseline in % and its difference at each value,
both paired by seed with whether they are significant, and the optimality gaps. The
statistics: coordinator/stats.py, docs/experiments.md ("Statistics").
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.experiment_results import REPORTED, read_results
from coordinator.report_figures import plot_metrics, plot_training
from coordinator.report_markdown import markdown
from coordinator.report_tables import aggregate, training_curves
from testbed.exit_codes import ExitCode, TestbedExit

STALE_TRAINING_NOTE = (
    "The training runs' evaluation curves are not in results.json and their metrics.csv "
    "are absent, so the training figure was not rebuilt: `{name}` is the one the original "
    "run drew (mean over seeds, without intervals)."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", **help_texts(
        "figures and tables from experiment results",
        "testbed report runs/experiments/mato_devices",
        "testbed report runs/experiments/a runs/experiments/b --out docs/results/ab",
        details="Reads each folder's results.json (`testbed experiment run`); writes the\n"
        "figures and report.md into the first folder or --out.",
    ))  # fmt: skip
    p.add_argument("folders", nargs="+", help="experiment folders (with results.json)")
    p.add_argument("--out", default=None, help="where to write (default: the first folder)")
    p.set_defaults(func=run_report)


def load_results(folder: Path) -> dict[str, Any]:
    path = folder / "results.json"
    if not path.is_file():
        raise TestbedExit(
            ExitCode.USAGE, f"{folder} has no results.json: run `testbed experiment run` first"
        )
    return read_results(path, REPORTED)


def write_report(folders: Sequence[Path], out: Path | None = None) -> Path:
    results = [load_results(f) for f in folders]
    merged = results[0]
    for extra in results[1:]:
        if extra["sweep"]["key"] != merged["sweep"]["key"]:
            raise TestbedExit(ExitCode.USAGE, "the folders sweep different keys")
        merged["cells"] += extra["cells"]
        merged["curves"] = {**merged.get("curves", {}), **extra.get("curves", {})}
    out = out or folders[0]
    out.mkdir(parents=True, exist_ok=True)
    figures = plot_metrics(merged, aggregate(merged), out)
    training = plot_training(merged, training_curves(merged), out)
    note = None
    if training is None and (out / f"{merged['experiment']}_training.png").exists():
        training = out / f"{merged['experiment']}_training.png"
        note = STALE_TRAINING_NOTE.format(name=training.name)
    if training is not None:
        figures.append(training)
    path = out / "report.md"
    path.write_text(markdown(merged, figures, note))
    return path


def run_report(args: argparse.Namespace) -> int:
    path = write_report([Path(f) for f in args.folders], Path(args.out) if args.out else None)
    print(path.read_text())
    print(f"wrote {path} and its figures")
    return 0
