"""The numbers of `testbed report`, from an experiment's `results.json`: means over seeds
with 95 % confidence intervals, MATO against each baseline paired by seed, optimality
gaps, and the training curves (coordinator/stats.py has the statistics; docs/experiments.md,
"Statistics", says which and why)."""

from __future__ import annotations

import csv
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator.policy_choice import ORACLE
from coordinator.stats import Interval, PairedTest, difference_test, t_interval

METRICS = (
    ("latency_ms", "latency (ms)", "lower"),
    ("energy_j", "energy per task (J)", "lower"),
    ("completion_rate", "completion rate", "higher"),
)
DIGITS = {"latency_ms": 1, "energy_j": 3, "completion_rate": 3}
"""Decimals each metric is printed with."""
REFERENCE = "mato"
"""The algorithm every other is compared with in the report's tables."""
COMPLETION_POINTS = "completion_points"
"""MATO's completion rate minus the baseline's, in percentage points."""

Curve = tuple[list[float], list[float]]
"""(training steps, evaluation reward per task at those steps) of one training run."""


def aggregate(results: dict[str, Any]) -> dict[str, dict[Any, dict[str, Interval]]]:
    """algorithm -> sweep value -> metric -> mean over seeds and its 95 % interval."""
    grouped: dict[str, dict[Any, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for cell in results["cells"]:
        for key, _label, _better in METRICS:
            grouped[cell["algorithm"]][cell["value"]][key].append(float(cell["metrics"][key]))
    return {
        algo: {
            value: {key: t_interval(vals) for key, vals in metrics.items()}
            for value, metrics in by_value.items()
        }
        for algo, by_value in grouped.items()
    }


def _metrics_by_cell(results: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """(algorithm, str(value), seed) -> the cell's metrics."""
    return {(c["algorithm"], str(c["value"]), c["seed"]): c["metrics"] for c in results["cells"]}


def _baselines(results: dict[str, Any]) -> list[str]:
    algos = {c["algorithm"] for c in results["cells"]}
    return sorted(algos - {REFERENCE, ORACLE}) if REFERENCE in algos else []


def _seeds(results: dict[str, Any]) -> list[int]:
    return sorted({c["seed"] for c in results["cells"]})


def _change_pct(ours: float, theirs: float, better: str) -> float:
    """MATO's improvement over a baseline in %: reduction for lower-is-better metrics,
    relative increase for higher-is-better ones; NaN where undefined."""
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return math.nan
    return 100.0 * ((theirs - ours) if better == "lower" else (ours - theirs)) / theirs


def improvements(
    results: dict[str, Any], values: Sequence[Any]
) -> dict[str, dict[str, PairedTest]]:
    """baseline -> metric (and `completion_points`) -> MATO's improvement in %, paired by
    seed: each seed's change averaged over the sweep values, then the mean over seeds,
    its 95 % interval and the t-test of "no change" (both ran on each seed's tasks)."""
    cells = _metrics_by_cell(results)
    out: dict[str, dict[str, PairedTest]] = {}
    for algo in _baselines(results):
        per_seed: dict[str, list[float]] = defaultdict(list)
        for seed in _seeds(results):
            changes: dict[str, list[float]] = defaultdict(list)
            for v in values:
                ours, theirs = cells.get((REFERENCE, str(v), seed)), cells.get((algo, str(v), seed))
                if ours is None or theirs is None:
                    continue
                for key, _label, better in METRICS:
                    a, b = float(ours[key]), float(theirs[key])
                    changes[key].append(_change_pct(a, b, better))
                    if key == "completion_rate" and not (math.isnan(a) or math.isnan(b)):
                        changes[COMPLETION_POINTS].append(100.0 * (a - b))
            for key, vals in changes.items():
                finite = [c for c in vals if not math.isnan(c)]
                if finite:
                    per_seed[key].append(statistics.fmean(finite))
        if per_seed:
            out[algo] = {key: difference_test(vals) for key, vals in per_seed.items()}
    return out


def paired_differences(
    results: dict[str, Any], values: Sequence[Any]
) -> dict[str, dict[str, dict[Any, PairedTest]]]:
    """metric -> baseline -> sweep value -> MATO − baseline in the metric's unit, paired by
    seed (the same seed's tasks): mean difference, 95 % interval, paired t-test."""
    cells = _metrics_by_cell(results)
    out: dict[str, dict[str, dict[Any, PairedTest]]] = defaultdict(dict)
    for key, _label, _better in METRICS:
        for algo in _baselines(results):
            by_value: dict[Any, PairedTest] = {}
            for v in values:
                ours = [cells.get((REFERENCE, str(v), s)) for s in _seeds(results)]
                theirs = [cells.get((algo, str(v), s)) for s in _seeds(results)]
                diffs = [float(a[key]) - float(b[key])
                         for a, b in zip(ours, theirs, strict=True) if a and b]  # fmt: skip
                if diffs:
                    by_value[v] = difference_test(diffs)
            if by_value:
                out[key][algo] = by_value
    return dict(out)


def optimality_gaps(results: dict[str, Any]) -> dict[str, dict[Any, Interval]]:
    """algorithm -> sweep value -> the gap in % over seeds (mean, 95 % interval):
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
    return {a: {v: t_interval(g) for v, g in by_v.items()} for a, by_v in gaps.items()}


def read_eval_curve(run_dir: Path) -> Curve | None:
    """The evaluation rows of a training run's metrics.csv; None without that file."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return None
    steps, rewards = [], []
    with open(path) as f:
        for row in csv.DictReader(f):
            value = row.get("eval_reward") or ""
            if value not in ("", "nan"):
                steps.append(float(row["step"]))
                rewards.append(float(value))
    return (steps, rewards) if steps else None


def training_curves(results: dict[str, Any]) -> dict[tuple[str, Any], list[Curve]]:
    """(algorithm, sweep value) -> one evaluation curve per seed: from results.json's
    `curves` (kept with the results), else from each cell's training run folder."""
    kept = results.get("curves", {})
    out: dict[tuple[str, Any], list[Curve]] = defaultdict(list)
    for cell in results["cells"]:
        stored = kept.get(f"{cell['algorithm']}/{cell['value']}/{cell['seed']}")
        curve: Curve | None = None
        if stored:
            curve = (list(stored["step"]), list(stored["eval_reward"]))
        elif cell.get("train_run"):
            curve = read_eval_curve(Path(cell["train_run"]))
        if curve is not None:
            out[cell["algorithm"], cell["value"]].append(curve)
    return dict(out)


def curve_intervals(runs: list[Curve]) -> tuple[list[float], list[Interval]]:
    """The steps every run evaluated at, and at each the mean reward over the runs with
    its 95 % interval."""
    common = set(runs[0][0]).intersection(*(set(steps) for steps, _ in runs[1:]))
    steps = sorted(common)
    at = [dict(zip(s, r, strict=True)) for s, r in runs]
    return steps, [t_interval([run[step] for run in at]) for step in steps]


def common_n(intervals: Sequence[Interval]) -> int:
    """The most frequent sample size among `intervals` (0 when there are none)."""
    counts = Counter(i.n for i in intervals if i.n > 0)
    return counts.most_common(1)[0][0] if counts else 0


def backends_text(results: dict[str, Any]) -> str:
    kinds = sorted({c["backend"] for c in results["cells"]})
    return "evaluated on " + " and ".join("the live bench" if k == "live" else "the twin"
                                          for k in kinds)  # fmt: skip


def display_name(algo: str) -> str:
    return f"{algo} (twin)" if algo == ORACLE else algo


def twin_and_live(
    results: dict[str, Any],
) -> dict[tuple[str, Any], tuple[Interval, Interval, PairedTest]]:
    """(algorithm, sweep value) -> the reward per task the twin gave its live cells on the
    same seeds' tasks (`twin_reward`), the live reward, and live − twin paired by seed;
    only algorithms evaluated live with a twin reward."""
    pairs: dict[tuple[str, Any], list[tuple[float, float]]] = defaultdict(list)
    for c in results["cells"]:
        twin = c.get("twin_reward")
        if c["backend"] != "live" or twin is None or c["algorithm"] == ORACLE:
            continue
        pairs[c["algorithm"], c["value"]].append((float(twin), float(c["metrics"]["reward"])))
    return {
        key: (t_interval([t for t, _ in p]), t_interval([r for _, r in p]),
              difference_test([r - t for t, r in p]))
        for key, p in pairs.items()
    }  # fmt: skip


def reference_in_twin_and_live(
    results: dict[str, Any], values: Sequence[Any]
) -> dict[tuple[str, Any], tuple[PairedTest, PairedTest]]:
    """(baseline, sweep value) -> MATO − baseline in reward per task, paired by seed, in
    the twin (`twin_reward`) and live, over the seeds where both ran live."""
    live = {(c["algorithm"], str(c["value"]), c["seed"]): c for c in results["cells"]
            if c["backend"] == "live" and c.get("twin_reward") is not None}  # fmt: skip
    out: dict[tuple[str, Any], tuple[PairedTest, PairedTest]] = {}
    for algo in _baselines(results):
        for v in values:
            both = [(live[REFERENCE, str(v), s], live[algo, str(v), s]) for s in _seeds(results)
                    if (REFERENCE, str(v), s) in live and (algo, str(v), s) in live]  # fmt: skip
            if both:
                twin = [float(a["twin_reward"]) - float(b["twin_reward"]) for a, b in both]
                real = [float(a["metrics"]["reward"]) - float(b["metrics"]["reward"])
                        for a, b in both]  # fmt: skip
                out[algo, v] = (difference_test(twin), difference_test(real))
    return out
