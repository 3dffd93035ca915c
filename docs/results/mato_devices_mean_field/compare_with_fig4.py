"""This run's 20-device cells against Fig. 4's, paired by seed (README.md, "What it found").

    python docs/results/mato_devices_mean_field/compare_with_fig4.py

Both runs evaluated every seed on the same tasks in the same twin (Greedy's and Random's
cells are equal in the two), so a cell of one pairs with the same seed's cell of the other.
"""

from __future__ import annotations

import json
from pathlib import Path

from coordinator.stats import format_interval, format_test, paired_test, t_interval

HERE = Path(__file__).resolve().parent
RUNS = {"fig4": HERE.parent / "mato_devices" / "results.json", "mf": HERE / "results.json"}
METRICS = {"reward": 3, "latency_ms": 0, "energy_j": 2, "completion_rate": 3}
PAIRS = [
    ("mf:mato", "fig4:greedy"), ("mf:mato", "fig4:saddpg"), ("mf:mato", "fig4:mappo"),
    ("mf:mato", "fig4:mato"), ("mf:nomodel", "fig4:nomodel"), ("mf:mato", "mf:nomodel"),
    ("mf:greedy", "fig4:greedy"),
]  # fmt: skip


def cells() -> dict[tuple[str, int], dict[str, float]]:
    """(run:algorithm, seed) → metrics of every 20-device cell of both runs."""
    out = {}
    for run, path in RUNS.items():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["value"] == 20 and cell.get("metrics"):
                out[(f"{run}:{cell['algorithm']}", cell["seed"])] = cell["metrics"]
    return out


def main() -> None:
    m = cells()
    seeds = sorted({s for _, s in m})
    for metric, digits in METRICS.items():
        print(f"== {metric}, mean over seeds [95 % interval]")
        for algo in sorted({a for a, _ in m}):
            values = [m[(algo, s)][metric] for s in seeds if (algo, s) in m]
            print(f"  {algo:14s} {format_interval(t_interval(values), digits)}")
    for metric, digits in METRICS.items():
        for x, y in PAIRS:
            both = [s for s in seeds if (x, s) in m and (y, s) in m]
            test = paired_test([m[(x, s)][metric] for s in both], [m[(y, s)][metric] for s in both])
            print(f"{metric}: {x} − {y} ({len(both)} seeds): {format_test(test, digits)}")


if __name__ == "__main__":
    main()
