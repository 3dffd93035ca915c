"""report.md of a §B experiment (coordinator/coedge_experiments.py): the delay and
completion of every scheduler per sweep value with 95 % intervals, DDRL-AMSA's
reductions beside the paper's, and the learners' training curves — every figure
labelled with where it was measured: the twin, or the live bench (a live cell's twin
evaluation beside it)."""

from __future__ import annotations

import json
import math
from typing import Any

from coordinator.schedulers import COEDGE_TRAIN, SCHEDULERS
from coordinator.stats import Interval, format_interval, format_p

TWIN_DIGITS = {"twin_delay_s": 4, "twin_completion": 3, "twin_sampled_delay_s": 4}
"""A live cell's twin figures, shown beside its live ones."""


def _interval(figures: dict[str, Any], digits: int) -> str:
    return format_interval(Interval(**figures), digits)


def _reduction_cell(red: dict[str, Any]) -> str:
    """`+12.3 % [+8.1, +16.5] (p = 0.004, significant)`."""
    if red["n"] == 0:
        return "n/a"
    if red["n"] < 2 or math.isnan(red["low"]):
        return f"{red['mean']:+.1f} % (n = {red['n']}, {red['verdict']})"
    return (f"{red['mean']:+.1f} % [{red['low']:+.1f}, {red['high']:+.1f}] "
            f"({format_p(red['p_value'])}, {red['verdict']})")  # fmt: skip


def _scheduler_tables(spec: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    label = spec["sweep"]["label"] or spec["sweep"]["key"]
    where = summary.get("label", "twin")
    twin = where != "twin"  # live cells: their twin evaluation beside
    lines = []
    for entry in summary["per_value"].values():
        extra = " | twin: mean delay (s) | twin: completion | twin: sampled delay (s)"
        lines += [
            f"### {label} = {entry['value']} ({where})", "",
            "| scheduler | mean delay (s) | completion | sampled: mean delay (s) | "
            f"sampled: completion | training s per run{extra if twin else ''} |",
            "|---|---|---|---|---|---|" + ("---|---|---|" if twin else ""),
        ]  # fmt: skip
        for algo, figures in entry["schedulers"].items():
            digits = {"delay_s": 4, "completion": 3, "sampled_delay_s": 4,
                      "sampled_completion": 3, "train_s": 1,
                      **(TWIN_DIGITS if twin else {})}  # fmt: skip
            cells = [_interval(figures[key], d) for key, d in digits.items() if key in figures]
            lines.append(f"| {algo} | {' | '.join(cells)} |")
        lines.append("")
    return lines


def _reduction_table(spec: dict[str, Any], summary: dict[str, Any], sampled: bool) -> list[str]:
    suffix = "_sampled" if sampled else ""
    bases = list(summary["over_sweep" + suffix])
    if not bases:
        return ["DDRL-AMSA or both of its baselines are not in this experiment: no reductions.", ""]
    label = spec["sweep"]["label"] or spec["sweep"]["key"]
    head = " | ".join(f"vs {b} (paper: ≥ {summary['over_sweep'][b]['paper_at_least_pct']} %)"
                      for b in bases)  # fmt: skip
    title = "its draws from π" if sampled else "its greedy decisions"
    lines = [
        f"## DDRL-AMSA's delay reduction, {title} ({summary.get('label', 'twin')})", "",
        f"Per seed, 100 · (delay of the baseline − delay of ddrl-amsa, {title}) / delay "
        "of the baseline (greedy), on the same evaluation tasks; the mean over seeds with "
        "its 95 % Student-t interval and the paired t-test that it is 0. Over the sweep: "
        "every (value, seed) pair. Positive: DDRL-AMSA is faster.", "",
        f"| {label} | {head} |", "|---|" + "---|" * len(bases),
    ]  # fmt: skip
    for entry in summary["per_value"].values():
        cells = " | ".join(_reduction_cell(entry["reductions" + suffix][b]) for b in bases)
        lines.append(f"| {entry['value']} | {cells} |")
    cells = " | ".join(_reduction_cell(summary["over_sweep" + suffix][b]) for b in bases)
    lines += [f"| **over the sweep** | {cells} |", ""]
    return lines


def _twin_reduction_table(summary: dict[str, Any]) -> list[str]:
    """A live experiment's headline again from the same cells' twin evaluations."""
    greedy, sampled = summary.get("over_sweep_twin"), summary.get("over_sweep_twin_sampled")
    if not greedy:
        return []
    lines = [
        "## The same reductions in the twin (the live cells' twin evaluations)", "",
        "The schedulers of the cells above, evaluated in the twin of the same config "
        "(`twin_*` in results.json); over the sweep, every (value, seed) pair.", "",
        "| DDRL-AMSA | " + " | ".join(
            f"vs {b} (paper: ≥ {greedy[b]['paper_at_least_pct']} %)" for b in greedy
        ) + " |",
        "|---|" + "---|" * len(greedy),
        "| greedy (twin) | " + " | ".join(_reduction_cell(greedy[b]) for b in greedy) + " |",
    ]  # fmt: skip
    if sampled:
        cells = " | ".join(_reduction_cell(sampled[b]) for b in sampled)
        lines.append(f"| draws from π (twin) | {cells} |")
    return [*lines, ""]


def _every_scheduler_table(summary: dict[str, Any]) -> list[str]:
    """Each scheduler's greedy delay reduction against the paper's two baselines, over
    the sweep: how much of DDRL-AMSA's margin any scheduler of its action space has."""
    table = summary.get("over_sweep_every_scheduler", {})
    where = summary.get("label", "twin")
    bases = sorted({b for reds in table.values() for b in reds})
    if not bases:
        return []
    lines = [
        f"## Every scheduler against DRLCoEdge and SMCoEdge, over the sweep ({where})", "",
        "The same paired reduction as above for each scheduler's greedy decisions "
        "(every (value, seed) pair): what part of DDRL-AMSA's margin its action space and "
        "the split rule give without learning (random, optimum).", "",
        "| scheduler | " + " | ".join(f"vs {b}" for b in bases) + " |",
        "|---|" + "---|" * len(bases),
    ]  # fmt: skip
    for algo, reds in table.items():
        lines.append(f"| {algo} | " + " | ".join(_reduction_cell(reds[b]) for b in bases) + " |")
    return [*lines, ""]


def mean_curve(runs: list[dict[str, Any]]) -> list[float]:
    """The training curves' mean delay per window, mean over runs (as long as the
    shortest)."""
    curves = [r["curve_delay_s"] for r in runs if r.get("curve_delay_s")]
    if not curves:
        return []
    length = min(map(len, curves))
    return [sum(c[i] for c in curves) / len(curves) for i in range(length)]


def _curve_table(spec: dict[str, Any], cells: list[dict[str, Any]]) -> list[str]:
    learned = [a for a in spec["algorithms"] if SCHEDULERS[a].learned]
    rows = []
    label = spec["sweep"]["label"] or spec["sweep"]["key"]
    for value in spec["sweep"]["values"]:
        for algo in learned:
            runs = [c for c in cells if str(c["value"]) == str(value) and c["algorithm"] == algo]
            curve = mean_curve(runs)
            if curve:
                rows.append(f"| {value} | {algo} | " + " | ".join(f"{d:.3f}" for d in curve) + " |")
    if not rows:
        return []
    width = max(row.count("|") for row in rows) - 3
    return [
        "## Training curves (twin)", "",
        "Mean delay (s) of the decisions each learned scheduler made while training (exploring; "
        "the first window is mostly the random warm-up), in equal windows of the run's "
        "environment steps, mean over seeds. A curve still falling in its last windows "
        "had not reached a plateau at this budget. Every point: `curve_delay_s` in "
        "`results.json`.", "",
        f"| {label} | scheduler | " + " | ".join(f"w{i + 1}" for i in range(width)) + " |",
        "|---|---|" + "---|" * width, *rows, "",
    ]  # fmt: skip


WHERE = {
    "twin": ("in the twin", "**Every figure on this page is from the twin** "
             "(coordinator/envs/coedge_twin.py), not the live bench."),
    "live": ("on the live bench", "**Delay and completion on this page are from the live "
             "bench** (coordinator/coedge_live_eval.py: the trained schedulers on the boards, "
             "exported to ONNX); training and the training curves are the twin's, and the "
             "columns named *twin* are the same schedulers evaluated in the twin."),
    "live and twin": ("live and in the twin", "**Each cell says where it was evaluated** "
                      "(`backend` in results.json): schedulers with no board form (the "
                      "optima) in the twin, the others on the live bench."),
}  # fmt: skip
"""A report's title suffix and its first statement, by the summary's label."""


def _settings(results: dict[str, Any]) -> dict[str, Any]:
    """The learners' settings the cells ran with (the first learned cell's; runs from
    before `coedge_learners:` existed: the defaults, which they equal)."""
    spec, cells = results["spec"], results["cells"]
    for cell in cells:
        if "learner_settings" in cell:
            return dict(cell["learner_settings"])
    return {**COEDGE_TRAIN, **spec["train"]["overrides"]}


def render_report(results: dict[str, Any]) -> str:
    spec, summary, cells = results["spec"], results["summary"], results["cells"]
    done, expected = len(cells), results["cells_expected"]
    settings = _settings(results)
    where = summary.get("label", "twin")
    title, statement = WHERE.get(where, WHERE["twin"])
    live = where != "twin"
    ev = spec["evaluate"]
    lines = [
        f"# {spec['name']}: the §B schedulers {title}", "",
        spec["description"], "",
        statement, "",
        f"Command: `{results['command']}`; commit `{results['commit']}`.", "",
        f"Sweep `{spec['sweep']['key']}` over {spec['sweep']['values']}; seeds "
        f"{spec['seeds']}; overrides `{json.dumps(spec['set'])}`. Training: "
        f"{spec['train']['env_steps']} environment steps on {spec['train']['num_envs']} "
        f"environments per run, settings `{json.dumps(settings)}`. "
        f"Evaluation: greedy (the DSAC schedulers also sampled: each decision drawn "
        f"from π), {spec['evaluate']['steps']} steps of "
        f"{spec['evaluate']['num_envs']} environments from seed 10000 + seed, the same "
        "tasks for every scheduler of a seed"
        + (f"; live: {ev.get('slots')} clocked slots of a fresh bench with master seed "
           "10000 + seed (the same tasks for every scheduler of a seed), drained"
           if live else "")
        + ". Means over seeds with 95 % Student-t "
        "intervals; completion is the share of tasks within the deadline.", "",
    ]  # fmt: skip
    if done < expected:
        lines += [f"**Partial: {done} of {expected} cells.**", ""]
    lines += _reduction_table(spec, summary, sampled=False)
    lines += _reduction_table(spec, summary, sampled=True)
    lines += _twin_reduction_table(summary)
    lines += _every_scheduler_table(summary)
    lines += [f"## Delay and completion per value ({where})", ""]
    lines += _scheduler_tables(spec, summary)
    lines += _curve_table(spec, cells)
    lines += ["Every cell (its figures and training curve) and every figure: `results.json`.", ""]
    return "\n".join(lines)
