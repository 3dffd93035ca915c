"""`testbed report`: the paper's figures and tables from experiment results.

Input: one or more experiment folders (each with `results.json`, written by
`testbed experiment run`). Output, into the first folder (or `--out`): PNG figures —
latency, energy and completion rate against the swept variable, one line per
algorithm with error bars over seeds (mean ± std), and the training curves — and
`report.md`: the numbers behind every point and MATO's improvement over each baseline
in % (latency and energy: reduction relative to the baseline; completion: relative
increase, with the difference in points beside it).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.policy_choice import ORACLE
from testbed.exit_codes import ExitCode, TestbedExit

METRICS = (
    ("latency_ms", "latency (ms)", "lower"),
    ("energy_j", "energy per task (J)", "lower"),
    ("completion_rate", "completion rate", "higher"),
)
REFERENCE = "mato"
"""The algorithm every other is compared with in the report's tables."""


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
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TestbedExit(
            ExitCode.USAGE, f"{folder} has no results.json: run `testbed experiment run` first"
        ) from None


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def aggregate(results: dict[str, Any]) -> dict[str, dict[Any, dict[str, tuple[float, float]]]]:
    """algorithm -> sweep value -> metric -> (mean, std) over seeds."""
    grouped: dict[str, dict[Any, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for cell in results["cells"]:
        for key, _label, _better in METRICS:
            grouped[cell["algorithm"]][cell["value"]][key].append(float(cell["metrics"][key]))
    return {
        algo: {
            value: {key: _mean_std(vals) for key, vals in metrics.items()}
            for value, metrics in by_value.items()
        }
        for algo, by_value in grouped.items()
    }


def improvements(agg: dict[str, Any], values: Sequence[Any]) -> dict[str, dict[str, float]]:
    """MATO's improvement over each baseline in %, averaged over the sweep values."""
    if REFERENCE not in agg:
        return {}
    out: dict[str, dict[str, float]] = {}
    for algo in agg:
        if algo in (REFERENCE, ORACLE):
            continue
        per: dict[str, list[float]] = defaultdict(list)
        for v in values:
            ours, theirs = agg[REFERENCE].get(v), agg[algo].get(v)
            if not ours or not theirs:
                continue
            for key, _label, better in METRICS:
                a, b = ours[key][0], theirs[key][0]
                if math.isnan(a) or math.isnan(b) or b == 0:
                    continue
                change = (b - a) / b if better == "lower" else (a - b) / b
                per[key].append(100.0 * change)
                if key == "completion_rate":
                    per["completion_points"].append(100.0 * (a - b))
        out[algo] = {k: statistics.fmean(v) for k, v in per.items() if v}
    return out


def optimality_gaps(results: dict[str, Any]) -> dict[str, dict[Any, tuple[float, float]]]:
    """algorithm -> sweep value -> (mean, std over seeds) of the gap in %:
    (R_oracle − R_policy) / |R_oracle| with R the mean reward per task in the twin, on
    the same seed's tasks (cells evaluated live carry their twin reward)."""
    oracle = {
        (str(c["value"]), c["seed"]): float(c["metrics"]["reward"])
        for c in results["cells"]
        if c["algorithm"] == ORACLE
    }
    gaps: dict[str, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in results["cells"]:
        best = oracle.get((str(c["value"]), c["seed"]))
        if c["algorithm"] == ORACLE or best is None or best == 0:
            continue
        reward = c.get("twin_reward")
        if reward is None and c["backend"] == "twin":
            reward = c["metrics"].get("reward")
        if reward is None or math.isnan(float(reward)):
            continue
        gaps[c["algorithm"]][c["value"]].append(100.0 * (best - float(reward)) / abs(best))
    return {a: {v: _mean_std(g) for v, g in by_v.items()} for a, by_v in gaps.items()}


def _plot_metrics(results: dict[str, Any], agg: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = results["sweep"]
    values = sweep["values"]
    paths = []
    for key, label, _better in METRICS:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for algo, by_value in sorted(agg.items()):
            xs = [v for v in values if v in by_value]
            means = [by_value[v][key][0] for v in xs]
            stds = [by_value[v][key][1] for v in xs]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=_name(algo))
        ax.set(xlabel=sweep.get("label", sweep["key"]), ylabel=label)
        if all(isinstance(v, int | float) for v in values):
            ax.set_xticks(values)
        ax.set_title(f"{results['experiment']}: {label} ({_backends(results)})", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"{results['experiment']}_{key}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def _plot_training(results: dict[str, Any], out: Path) -> Path | None:
    curves: dict[str, list[tuple[list[float], list[float]]]] = defaultdict(list)
    for cell in results["cells"]:
        run = cell.get("train_run")
        if not run or not (Path(run) / "metrics.csv").exists():
            continue
        steps, rewards = [], []
        with open(Path(run) / "metrics.csv") as f:
            for row in csv.DictReader(f):
                value = row.get("eval_reward") or ""
                if value not in ("", "nan"):
                    steps.append(float(row["step"]))
                    rewards.append(float(value))
        if steps:
            curves[cell["algorithm"]].append((steps, rewards))
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for algo, runs in sorted(curves.items()):
        shortest = min(len(s) for s, _ in runs)
        xs = runs[0][0][:shortest]
        mean = [statistics.fmean(r[i] for _, r in runs) for i in range(shortest)]
        ax.plot(xs, mean, label=f"{algo} ({len(runs)} runs)")
    ax.set(xlabel="training step", ylabel="evaluation reward (mean per task)")
    ax.set_title(f"{results['experiment']}: training curves", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = out / f"{results['experiment']}_training.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _backends(results: dict[str, Any]) -> str:
    kinds = sorted({c["backend"] for c in results["cells"]})
    return "evaluated on " + " and ".join("the live bench" if k == "live" else "the twin"
                                          for k in kinds)  # fmt: skip


def _name(algo: str) -> str:
    return f"{algo} (twin)" if algo == ORACLE else algo


def _any_gap(gaps: dict[str, dict[Any, Any]], value: Any) -> bool:
    return any(value in by_value for by_value in gaps.values())


def _fmt(mean: float, std: float, digits: int) -> str:
    return "n/a" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(results: dict[str, Any], agg: dict[str, Any], figures: list[Path]) -> str:
    sweep = results["sweep"]
    values = sweep["values"]
    seeds = sorted({c["seed"] for c in results["cells"]})
    lines = [
        f"# {results['experiment']}",
        "",
        results.get("description", ""),
        "",
        f"Swept `{sweep['key']}` ({sweep.get('label', '')}) over {values}; seeds {seeds}; "
        f"{_backends(results)}. Every number is a mean ± std over seeds, measured by "
        "`testbed experiment run`; energy figures are per task, with the methods listed below.",
        "",
    ]
    for key, label, better in METRICS:
        digits = 3 if key == "completion_rate" else 1 if key == "latency_ms" else 3
        lines += [f"## {label} ({better} is better)", ""]
        lines.append("| algorithm | " + " | ".join(str(v) for v in values) + " |")
        lines.append("|---|" + "---|" * len(values))
        for algo, by_value in sorted(agg.items()):
            cells = [
                _fmt(by_value[v][key][0], by_value[v][key][1], digits) if v in by_value else "n/a"
                for v in values
            ]
            lines.append(f"| {_name(algo)} | " + " | ".join(cells) + " |")
        lines.append("")
    gains = improvements(agg, values)
    if gains:
        lines += [
            "## MATO's improvement over each baseline (mean over the sweep)",
            "",
            "| baseline | latency | energy | completion | completion (points) |",
            "|---|---|---|---|---|",
        ]
        for algo, g in sorted(gains.items()):
            lat, en = g.get("latency_ms", math.nan), g.get("energy_j", math.nan)
            done, points = g.get("completion_rate", math.nan), g.get("completion_points", math.nan)
            lines.append(f"| {algo} | {lat:+.2f} % | {en:+.2f} % | {done:+.2f} % | {points:+.2f} |")
        lines += [
            "",
            "Latency and energy: reduction relative to the baseline (positive: MATO lower). "
            "Completion: relative increase (positive: MATO higher). The paper reports MATO "
            "6.98 % lower latency, 7.12 % lower energy and 3.72 % higher completion on average "
            "over 3→6 models — +6.98 %, +7.12 %, +3.72 % in this table's convention.",
            "",
        ]
    gaps = optimality_gaps(results)
    if gaps:
        lines += [
            "## Optimality gap against the per-slot oracle (twin)",
            "",
            "The oracle (coordinator/envs/oracle.py) searches every joint decision of a "
            "slot's agents over a grid (local, or ratio 0.25/0.5/0.75/1 to each edge, d ∈ "
            "{0, 1}) in the twin and takes the best total reward (18). Gap = (R_oracle − "
            "R_policy) / |R_oracle| in % of the mean reward per task, same seeds and tasks, "
            "in the twin. The oracle is myopic and its ratios discrete, so a negative gap "
            "is possible.",
            "",
            "| algorithm | " + " | ".join(str(v) for v in values if _any_gap(gaps, v)) + " |",
            "|---|" + "---|" * sum(1 for v in values if _any_gap(gaps, v)),
        ]
        for algo, by_value in sorted(gaps.items()):
            cells = [_fmt(*by_value[v], 1) + " %" if v in by_value else "n/a"
                     for v in values if _any_gap(gaps, v)]  # fmt: skip
            lines.append(f"| {algo} | " + " | ".join(cells) + " |")
        lines.append("")
    where: dict[str, set[str]] = defaultdict(set)
    for c in results["cells"]:
        if c["algorithm"] != ORACLE:
            where[str(c["value"])].add(c["backend"])
    lines += ["Evaluated on: " + "; ".join(
        f"{sweep['key']}={v}: {' and '.join(sorted(where[str(v)]))}" for v in values
        if str(v) in where) + ".", ""]  # fmt: skip
    methods = sorted({m for c in results["cells"] for m in c["metrics"].get("energy_methods", [])})
    if methods:
        lines += [f"Energy methods in these runs: {', '.join(methods)}.", ""]
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    return "\n".join(lines) + "\n"


def write_report(folders: Sequence[Path], out: Path | None = None) -> Path:
    results = [load_results(f) for f in folders]
    merged = results[0]
    for extra in results[1:]:
        if extra["sweep"]["key"] != merged["sweep"]["key"]:
            raise TestbedExit(ExitCode.USAGE, "the folders sweep different keys")
        merged["cells"] += extra["cells"]
    out = out or folders[0]
    out.mkdir(parents=True, exist_ok=True)
    agg = aggregate(merged)
    figures = _plot_metrics(merged, agg, out)
    training = _plot_training(merged, out)
    if training is not None:
        figures.append(training)
    path = out / "report.md"
    path.write_text(markdown(merged, agg, figures))
    return path


def run_report(args: argparse.Namespace) -> int:
    path = write_report([Path(f) for f in args.folders], Path(args.out) if args.out else None)
    print(path.read_text())
    print(f"wrote {path} and its figures")
    return 0
