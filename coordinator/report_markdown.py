"""`report.md` of `testbed report`: every mean over seeds with its 95 % confidence
interval, MATO against each baseline paired by seed with its significance, the
optimality gaps, where each value was evaluated and the energy methods."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator.policy_choice import ORACLE
from coordinator.report_tables import (
    COMPLETION_POINTS,
    DIGITS,
    METRICS,
    REFERENCE,
    aggregate,
    backends_text,
    common_n,
    display_name,
    improvements,
    optimality_gaps,
    paired_differences,
    reference_in_twin_and_live,
    twin_and_live,
)
from coordinator.stats import Interval, PairedTest, format_interval, format_test, t_quantile

STATISTICS = (
    "95 % confidence intervals: Student-t with the sample standard deviation (ddof = 1), "
    "mean ± t(0.975, n − 1) · s / √n, written `mean [low, high]`; a cell with one seed "
    "has no interval and says so. A difference is *significant* when a two-sided paired "
    "t-test over seeds (the same seed runs the same tasks for every algorithm) gives "
    "p < 0.05, that is when its 95 % interval excludes 0; a difference that is the same "
    "on every seed has no t-test and says so. A difference that is not significant is "
    "not evidence of no difference."
)


def _statistics_text(usual: int) -> str:
    if usual < 2:
        return STATISTICS
    factor = t_quantile(0.975, usual - 1)
    return (f"{STATISTICS} With n = {usual} seeds the interval is ± {factor:.2f} standard "
            f"errors (t(0.975, {usual - 1})), so only large or consistent differences are "
            "significant.")  # fmt: skip


def _with_n(text: str, n: int, usual: int) -> str:
    """A cell's text, with its number of seeds where that differs from the table's."""
    return text if n in (usual, 0, 1) else f"{text} (n = {n})"


def _interval_cell(interval: Interval, digits: int, usual: int, suffix: str = "") -> str:
    text = format_interval(interval, digits)
    return _with_n(text + (suffix if text != "n/a" else ""), interval.n, usual)


def _test_cell(test: PairedTest, digits: int, usual: int) -> str:
    return _with_n(format_test(test, digits), test.difference.n, usual)


def _metric_tables(agg: dict[str, Any], values: Sequence[Any], usual: int) -> list[str]:
    lines: list[str] = []
    for key, label, better in METRICS:
        lines += [f"## {label} ({better} is better)", ""]
        lines.append("| algorithm | " + " | ".join(str(v) for v in values) + " |")
        lines.append("|---|" + "---|" * len(values))
        for algo, by_value in sorted(agg.items()):
            cells = [_interval_cell(by_value[v][key], DIGITS[key], usual)
                     if v in by_value else "n/a" for v in values]  # fmt: skip
            lines.append(f"| {display_name(algo)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _paired_tables(results: dict[str, Any], values: Sequence[Any], usual: int) -> list[str]:
    tests = paired_differences(results, values)
    if not tests:
        return []
    lines = [
        "## MATO against each baseline at each value, paired by seed",
        "",
        "MATO − baseline on the same seed's tasks, in the metric's unit: the mean over "
        f"seeds [95 % interval], the paired t-test's p and whether the difference is "
        f"significant at 95 % (n = {usual} pairs unless a cell says otherwise).",
        "",
    ]
    for key, label, better in METRICS:
        if key not in tests:
            continue
        lines += [f"### {label}: MATO − baseline ({better} is better for MATO)", ""]
        lines.append("| baseline | " + " | ".join(str(v) for v in values) + " |")
        lines.append("|---|" + "---|" * len(values))
        for algo, by_value in sorted(tests[key].items()):
            cells = [_test_cell(by_value[v], DIGITS[key], usual) if v in by_value else "n/a"
                     for v in values]  # fmt: skip
            lines.append(f"| {algo} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _improvement_table(results: dict[str, Any], values: Sequence[Any], usual: int) -> list[str]:
    gains = improvements(results, values)
    if not gains:
        return []
    lines = [
        "## MATO's improvement over each baseline (mean over the sweep)",
        "",
        "| baseline | latency (%) | energy (%) | completion (%) | completion (points) |",
        "|---|---|---|---|---|",
    ]
    for algo, g in sorted(gains.items()):
        keys = ("latency_ms", "energy_j", "completion_rate", COMPLETION_POINTS)
        cells = [_test_cell(g[k], 2, usual) if k in g else "n/a" for k in keys]
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    return [
        *lines,
        "",
        "Each seed's change averaged over the sweep values, then the mean over seeds "
        f"[95 % interval] and the t-test of no change over those per-seed changes (paired: "
        f"MATO and the baseline ran each seed's tasks; n = {usual} seeds unless a cell says "
        "otherwise). Latency and energy: reduction relative to the baseline (positive: "
        "MATO lower). Completion: relative increase (positive: MATO higher); points: the "
        "difference of the rates × 100. The paper reports MATO 6.98 % lower latency, "
        "7.12 % lower energy and 3.72 % higher completion on average over 3→6 models — "
        "+6.98 %, +7.12 %, +3.72 % in this table's convention.",
        "",
    ]


def _gap_table(results: dict[str, Any], values: Sequence[Any]) -> list[str]:
    gaps = optimality_gaps(results)
    if not gaps:
        return []
    shown = [v for v in values if any(v in by_value for by_value in gaps.values())]
    usual = common_n([i for by_value in gaps.values() for i in by_value.values()])
    lines = [
        "## Optimality gap against the per-slot oracle (twin)",
        "",
        "The oracle (coordinator/envs/oracle.py, docs/optimum.md) finds the best joint "
        "decision of a slot's agents over a grid (local, or ratio 0.25/0.5/0.75/1 to "
        "each edge, d ∈ {0, 1}) in the twin, the best total reward (18): exactly, by a "
        "dynamic programme per edge (exhaustive search where edges have several "
        "servers). Gap = (R_oracle − "
        "R_policy) / |R_oracle| in % of the mean reward per task, same seeds and tasks, "
        "in the twin, mean over seeds [95 % interval]. The oracle is myopic and its "
        "ratios discrete, so a negative gap is possible.",
        "",
        "| algorithm | " + " | ".join(str(v) for v in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for algo, by_value in sorted(gaps.items()):
        cells = [_interval_cell(by_value[v], 1, usual, " %") if v in by_value else "n/a"
                 for v in shown]  # fmt: skip
        lines.append(f"| {algo} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _twin_table(results: dict[str, Any], values: Sequence[Any]) -> list[str]:
    promised = twin_and_live(results)
    if not promised:
        return []
    usual = common_n([twin for twin, _live, _diff in promised.values()])
    lines = [
        "## What the twin promised and what the live bench gave (reward per task)",
        "",
        "Every cell evaluated live also ran the same policy on the same seed's tasks in "
        "the twin it was trained in (`twin_reward` in results.json). Live − twin is "
        "paired by seed; a twin that prices the bench well leaves it near 0 for every "
        "algorithm, and one that favours an algorithm shows it as a larger gap.",
        "",
        "| algorithm | value | twin | live | live − twin |",
        "|---|---|---|---|---|",
    ]
    shown = [(a, v) for a in sorted({a for a, _ in promised}) for v in values if (a, v) in promised]
    for algo, v in shown:
        twin, live, diff = promised[algo, v]
        lines.append(
            f"| {display_name(algo)} | {v} | {_interval_cell(twin, 3, usual)} | "
            f"{_interval_cell(live, 3, usual)} | {_test_cell(diff, 3, usual)} |"
        )
    compared = reference_in_twin_and_live(results, values)
    if compared:
        lines += ["", "| MATO − baseline | value | in the twin | live |", "|---|---|---|---|"]
        for (algo, v), (twin_diff, live_diff) in compared.items():
            lines.append(
                f"| {display_name(REFERENCE)} − {display_name(algo)} | {v} | "
                f"{_test_cell(twin_diff, 3, usual)} | {_test_cell(live_diff, 3, usual)} |"
            )
    return [*lines, ""]


def _seeds_line(results: dict[str, Any], usual: int, sizes: list[int]) -> str:
    seeds = sorted({c["seed"] for c in results["cells"]})
    if len(sizes) > 1:
        count = f"n = {sizes[0]}–{sizes[-1]} seeds per cell, {usual} in most (cells say theirs)"
    else:
        count = f"n = {usual} seed{'s' if usual != 1 else ''} per cell"
    single = " With one seed there are no intervals and no tests." if usual == 1 else ""
    return f"seeds {seeds}, {count}.{single}"


def markdown(
    results: dict[str, Any], figures: Sequence[Path], training_note: str | None = None
) -> str:
    """The report's text; `training_note` explains a training figure not rebuilt here."""
    sweep = results["sweep"]
    values = sweep["values"]
    agg = aggregate(results)
    intervals = [i for by_value in agg.values() for m in by_value.values() for i in m.values()]
    usual, sizes = common_n(intervals), sorted({i.n for i in intervals if i.n > 0})
    lines = [
        f"# {results['experiment']}",
        "",
        results.get("description", ""),
        "",
        f"Swept `{sweep['key']}` ({sweep.get('label', '')}) over {values}; "
        f"{_seeds_line(results, usual, sizes)} {backends_text(results).capitalize()}. Every "
        "number is a mean over seeds with its 95 % confidence interval, measured by `testbed "
        "experiment run`; energy figures are per task, with the methods listed below.",
        "",
        _statistics_text(usual),
        "",
    ]
    lines += _metric_tables(agg, values, usual)
    if REFERENCE in agg:
        lines += _improvement_table(results, values, usual)
        lines += _paired_tables(results, values, usual)
    lines += _gap_table(results, values)
    lines += _twin_table(results, values)
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
    lines += ["## Figures", ""]
    if training_note:
        lines += [training_note, ""]
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    return "\n".join(lines) + "\n"
