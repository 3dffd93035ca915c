"""The figures of `testbed report` (matplotlib, headless): every metric against the swept
variable with 95 % confidence intervals over seeds as error bars, and the training curves
(the paper's Fig. 2) with their intervals as bands."""

from __future__ import annotations

import itertools
import math
import textwrap
from pathlib import Path
from typing import Any

from coordinator.report_tables import (
    METRICS,
    Curve,
    backends_text,
    common_n,
    curve_intervals,
    display_name,
)
from coordinator.stats import Interval


def _interval_note(intervals: list[Interval]) -> str:
    """What the error bars are, with the number of seeds behind them."""
    n = common_n(intervals)
    sizes = sorted({i.n for i in intervals if i.n > 0})
    seeds = f"n = {n} seeds" if len(sizes) <= 1 else f"n = {sizes[0]}–{sizes[-1]} seeds"
    if n < 2 and len(sizes) <= 1:
        return f"{seeds}: no interval"
    single = ", none where n = 1" if 1 in sizes else ""
    return f"95 % CI, Student-t, {seeds}{single}"


def _dodged(xs: list[Any], values: list[Any], rank: int, count: int) -> list[Any]:
    """Numeric x positions shifted a little per algorithm so error bars do not overlap."""
    if count < 2 or not all(isinstance(v, int | float) for v in values):
        return xs
    ordered = sorted(set(values))
    spacing = min((b - a for a, b in itertools.pairwise(ordered)), default=1)
    shift = (rank - (count - 1) / 2) * 0.12 * spacing / (count - 1)
    return [x + shift for x in xs]


def plot_metrics(
    results: dict[str, Any], agg: dict[str, dict[Any, dict[str, Interval]]], out: Path
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = results["sweep"]
    values = sweep["values"]
    paths = []
    for key, label, _better in METRICS:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        shown: list[Interval] = []
        for rank, (algo, by_value) in enumerate(sorted(agg.items())):
            xs = [v for v in values if v in by_value]
            points = [by_value[v][key] for v in xs]
            shown += points
            bars = [p.half_width if p.has_interval else math.nan for p in points]
            ax.errorbar(_dodged(xs, values, rank, len(agg)), [p.mean for p in points],
                        yerr=bars, marker="o", capsize=3, label=display_name(algo))  # fmt: skip
        ax.set(xlabel=sweep.get("label", sweep["key"]), ylabel=label)
        if all(isinstance(v, int | float) for v in values):
            ax.set_xticks(values)
        ax.set_title(f"{results['experiment']}: {label} ({backends_text(results)})\n"
                     f"error bars: {_interval_note(shown)}", fontsize=9)  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = out / f"{results['experiment']}_{key}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_training(
    results: dict[str, Any], curves: dict[tuple[str, Any], list[Curve]], out: Path
) -> Path | None:
    """One panel per sweep value: each trained algorithm's evaluation reward against the
    training step, mean over seeds with its 95 % interval as a band."""
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = results["sweep"]
    values = [v for v in sweep["values"] if any(value == v for _, value in curves)]
    columns = min(2, len(values))
    rows = math.ceil(len(values) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 4.2 * rows), squeeze=False)
    shown: list[Interval] = []
    for ax, value in zip(axes.flat, values, strict=False):
        for (algo, v), runs in sorted(curves.items(), key=lambda item: str(item[0])):
            if v != value:
                continue
            steps, intervals = curve_intervals(runs)
            shown += intervals
            line = ax.plot(steps, [i.mean for i in intervals], label=f"{algo} (n = {len(runs)})")
            banded = [(s, i) for s, i in zip(steps, intervals, strict=True) if i.has_interval]
            if banded:
                ax.fill_between([s for s, _ in banded], [i.low for _, i in banded],
                                [i.high for _, i in banded], color=line[0].get_color(),
                                alpha=0.2, linewidth=0)  # fmt: skip
        ax.set(xlabel="training step", ylabel="evaluation reward (mean per task)",
               title=f"{sweep.get('label', sweep['key'])} = {value}")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(values) :]:
        ax.set_visible(False)
    title = f"{results['experiment']}: training curves; mean over seeds, band: " \
        f"{_interval_note(shown)}"  # fmt: skip
    fig.suptitle(textwrap.fill(title, 80 * columns), fontsize=10)  # one panel: 80 fit
    fig.tight_layout()
    path = out / f"{results['experiment']}_training.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
