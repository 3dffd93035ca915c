"""report.md of the §C experiments from their JSON files alone (profile.json,
assignment.json, allocation.json in one folder; docs/quality-experiments.md).
`python -m coordinator.quality_report DIR` writes it again.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

PAPER_ASSIGNMENT = "+0.2 to +2.4 CLIPScore, up to +2.5 % utility"
PAPER_ALLOCATION = {
    "optimal_step": "−30.2 % time, +17.8 % utility",
    "equal_allocation": "−39.1 % time, +12.7 % utility",
}


def _ci(cell: dict[str, Any], digits: int = 2, scale: float = 1.0) -> str:
    mean, low, high = (cell.get(k, math.nan) for k in ("mean", "low", "high"))
    if mean is None or math.isnan(mean):
        return "–"
    if low is None or math.isnan(low):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _profile(p: dict[str, Any]) -> list[str]:
    spec = p["spec"]
    lines = [f"## Quality profile ({p['label']})", "",
             f"Per-category scores of the medium model at {spec['profile']['reference_steps']} "
             f"steps, {spec['profile']['category_requests']} requests per category and seed, "
             f"{len(spec['seeds'])} seeds; the Gaussian fit over all of them, and the mean's "
             "95 % interval over seeds.", ""]  # fmt: skip
    rows = []
    for name, c in p["categories"].items():
        f = c["fit"]
        rows.append([name, f"{f['mean']:.2f}", f"{f['std']:.2f}", str(f["n"]),
                     f"{f['ks_statistic']:.3f}", f"{100 * f['zero_fraction']:.1f} %",
                     _ci(c["seed_mean"])])  # fmt: skip
    lines += _table(["category", "μ_c", "σ_c", "n", "KS distance", "scores at 0",
                     "mean over seeds [95 %]"], rows)  # fmt: skip
    theta = ", ".join(f"{t:.2f}" for t in p["score_thresholds"])
    lines += ["", f"Thresholds (the load rule of `model_loads`, this project's choice): "
              f"θ = {theta}.", ""]  # fmt: skip
    models = list(p["curves"])
    steps = sorted(int(k) for k in p["curves"][models[0]])
    lines += [f"Score against steps ({spec['profile']['requests_per_seed']} requests per seed, "
              "the same for every model and step count; mean over seeds [95 %]) and the "
              "latency of one request, fastest / median of the repeats (ms, this host, "
              "one ORT thread; the fits use the fastest):", ""]  # fmt: skip
    rows = []
    for k in steps:
        row = [str(k)]
        for m in models:
            from coordinator.stats import t_interval

            i = t_interval(p["curves"][m][str(k)])
            times = sorted(p["latency_s"][m][str(k)])
            row.append(
                f"{_ci(i.__dict__)} · {1000 * times[0]:.2f} / "
                f"{1000 * times[len(times) // 2]:.2f} ms"
            )
        rows.append(row)
    lines += _table(["steps", *models], rows)
    for grid, fits in p["fits"].items():
        lines += ["", f"Fits on the {grid} grid: ŝ(k) = a − b·e^(−k/c); T(k, φ=1) = f + p·k.", ""]
        rows = [[m, f"{f['score']['ceiling_score']:.2f}", f"{f['score']['gap_score']:.2f}",
                 f"{f['score']['scale_steps']:.2f}", f"{f['score']['r_squared']:.3f}",
                 f"{1000 * f['latency']['fixed_s']:.3f}",
                 f"{1000 * f['latency']['per_step_s']:.3f}",
                 f"{f['latency']['r_squared']:.3f}"] for m, f in fits.items()]  # fmt: skip
        lines += _table(["model", "a", "b", "c", "R² (score)", "f (ms)", "p (ms/step)",
                         "R² (latency)"], rows)  # fmt: skip
    return lines


def _assignment(a: dict[str, Any]) -> list[str]:
    lines = [f"## Assignment ({a['label']})", "",
             f"λ = {a['latency_weight_per_s']} per s, grid {a['grid']}, θ = "
             f"{', '.join(f'{t:.2f}' for t in a.get('score_thresholds', []))}; steps and "
             "shares of each slot from the annealing. Mean over seeds [95 %].", ""]  # fmt: skip
    rows = []
    for method, s in a["summary"].items():
        by_model = " / ".join(_ci(c, 1) for c in s["score_by_model"])
        frac = " / ".join(f"{100 * f:.0f} %" for f in s["fraction_by_model"])
        rows.append([method, _ci(s["score"]), _ci(s["utility_per_task"]), by_model, frac])
    lines += _table(["method", "score", "utility per task", "score per model (s / m / l)",
                     "requests per model"], rows)  # fmt: skip
    lines += ["", f"Probabilistic against the others (paper: {PAPER_ASSIGNMENT}):", ""]
    rows = [[other, _ci(v["score"]), _ci(v["utility_percent"]) + " %", v["score"]["verdict"]]
            for other, v in a["probabilistic_vs"].items()]  # fmt: skip
    lines += _table(["vs", "score difference", "utility difference", "score: t-test"], rows)
    lines += ["", "Score CDF (pooled quantiles):", ""]
    qs = list(next(iter(a["summary"].values()))["score_quantiles"])
    rows = [[m, *(f"{s['score_quantiles'][q]:.1f}" for q in qs)] for m, s in a["summary"].items()]
    return lines + _table(["method"] + [f"q{q}" for q in qs], rows)


def _allocation(al: dict[str, Any]) -> list[str]:
    lines = [f"## Allocation ({al['label']})", ""]
    for grid, cell in al["grids"].items():
        lines += [f"### Grid {grid}: K = {cell['step_grid']}, fixed {cell['fixed_steps']}", ""]
        for lam, c in cell["by_lambda"].items():
            lines += [f"λ = {lam} per s ({c['slots']} slots; the annealing exact on "
                      f"{c['annealing_exact_slots']}, its worst gap to the optimum "
                      f"{c['annealing_worst_gap_percent']:.2g} %):", ""]  # fmt: skip
            rows = []
            for solver, m in c["solvers"].items():
                rows.append([solver, _ci(m["latency_s"], 3, 1000), _ci(m["twin_score"]),
                             _ci(m["twin_utility_per_task"]), _ci(m["measured_score"]),
                             _ci(m["measured_utility_per_task"]), _ci(m["solve_s"], 2, 1000),
                             str(c["typical_steps"][solver])])  # fmt: skip
            lines += _table(["solver", "latency (ms)", "score (twin)", "utility (twin)",
                             "score (measured)", "utility (measured)", "solve (ms)",
                             "typical steps"], rows)  # fmt: skip
            rows = [[o, _ci(v["time_reduction_percent"], 1) + " %",
                     _ci(v["twin_utility_percent"], 1) + " %",
                     _ci(v["measured_utility_percent"], 1) + " %", PAPER_ALLOCATION.get(o, "–")]
                    for o, v in c["annealing_vs"].items()]  # fmt: skip
            lines += ["", *_table(["annealing vs", "time saved", "utility gain (twin)",
                                    "utility gain (measured)", "paper"], rows), ""]  # fmt: skip
    return lines


def write_report(folder: Path) -> Path:
    """Write folder/report.md from the JSON files there."""
    lines = ["# The §C experiments", ""]
    for name, render in (("profile", _profile), ("assignment", _assignment),
                         ("allocation", _allocation)):  # fmt: skip
        path = folder / f"{name}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            lines += [*render(data), "", f"Command: `{data.get('command', '')}`; commit "
                      f"{data.get('commit', '?')}, started {data.get('started_utc', '?')}, "
                      f"load average {data.get('load_average', '?')}.", ""]  # fmt: skip
    out = folder / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out


if __name__ == "__main__":
    print(write_report(Path(sys.argv[1])))
