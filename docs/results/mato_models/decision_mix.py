"""Where the live time went, per algorithm and swept value: the decision mix and the
latency components of every live task of an experiment.

    python docs/results/mato_models/decision_mix.py                 # from tasks.csv.gz here
    python docs/results/mato_models/decision_mix.py --collect runs/experiments/mato_models
    python docs/results/mato_models/decision_mix.py --tasks docs/results/mato_devices/tasks.csv.gz

`--collect DIR` reads DIR/results.json, gathers the `tasks.csv` of every live cell's
evaluation run (each task's outcome, decision and timings, docs/live-loop.md) into
`--tasks` (default: tasks.csv.gz beside this script), with the cell's value, algorithm
and seed in front, then prints the table. Without it the table comes from the
`--tasks` file, the swept key's label (DIR's results.json) heading the first column.
Columns: tasks; local % (share 0); mean offloaded share; d = 1 % (the download flag);
cache hits among offloaded tasks; then means over all tasks, in ms: latency, on the
board, transmission, edge queue, edge compute, model fetch + load + warm-up.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEYS = ("value", "algorithm", "seed")
COLUMNS = ("agent_id", "slot", "task_type", "model_id", "deadline_s", "outcome", "reason",
           "edge_id", "share", "download", "latency_ms", "t_local_ms", "t_tx_ms",
           "t_switch_ms", "t_edge_queue_ms", "t_edge_compute_ms", "t_agent_queue_ms",
           "fetch_ms", "verify_ms", "load_ms", "warmup_ms", "cache_hit", "reward",
           "energy_j")  # fmt: skip
"""What tasks.csv.gz keeps of each task (tasks.csv has these and the energy breakdown)."""


def collect(folder: Path, out: Path) -> None:
    results = json.loads((folder / "results.json").read_text())
    rows: list[dict[str, str]] = []
    for cell in results["cells"]:
        if cell.get("backend") != "live" or not cell.get("eval_run"):
            continue
        run = Path(cell["eval_run"])
        run = run if run.is_absolute() else folder / "evals" / run.name
        with open(run / "tasks.csv", newline="") as f:
            rows += [{**{k: str(cell[k]) for k in KEYS}, **{k: row[k] for k in COLUMNS}}
                     for row in csv.DictReader(f)]  # fmt: skip
    with gzip.open(out, "wt", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{out}: {len(rows)} tasks")


def _num(text: str) -> float:
    return float(text) if text else 0.0


def table(path: Path, label: str) -> None:
    groups: dict[tuple[int, str], list[dict[str, str]]] = defaultdict(list)
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            groups[(int(row["value"]), row["algorithm"])].append(row)
    print(f"| {label} | algorithm | tasks | local % | share | d = 1 % | hit % | latency | "
          "board | tx | queue | edge | fetch+load |")  # fmt: skip
    print("|" + "---|" * 13)
    for (value, algorithm), rows in sorted(groups.items()):
        off = [r for r in rows if _num(r["share"]) > 0]

        def mean(key: str, rows: list[dict[str, str]] = rows) -> float:
            return statistics.mean(_num(r[key]) for r in rows)

        fetch = statistics.mean(_num(r["fetch_ms"]) + _num(r["load_ms"]) + _num(r["warmup_ms"])
                                for r in rows)  # fmt: skip
        print(
            f"| {value} | {algorithm} | {len(rows)} "
            f"| {100 * (len(rows) - len(off)) / len(rows):.1f} "
            f"| {mean('share', off) if off else 0:.2f} "
            f"| {100 * sum(r['download'] == 'True' for r in rows) / len(rows):.1f} "
            f"| {100 * sum(r['cache_hit'] == 'True' for r in off) / max(1, len(off)):.1f} "
            f"| {mean('latency_ms'):.0f} | {mean('t_local_ms'):.0f} | {mean('t_tx_ms'):.0f} "
            f"| {mean('t_edge_queue_ms'):.0f} | {mean('t_edge_compute_ms'):.0f} | {fetch:.0f} |"
        )


def _label(folder: Path) -> str:
    """The swept key's label in `folder`'s results.json ("models" for "number of
    models"), or "value" without one."""
    path = folder / "results.json"
    if not path.is_file():
        return "value"
    sweep = json.loads(path.read_text())["sweep"]
    return str(sweep.get("label") or sweep["key"]).removeprefix("number of ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collect", type=Path, metavar="DIR",
                        help="an experiment folder: gather its live tasks first")  # fmt: skip
    parser.add_argument("--tasks", type=Path, default=HERE / "tasks.csv.gz",
                        help="the gathered tasks (default: tasks.csv.gz here)")  # fmt: skip
    args = parser.parse_args()
    if args.collect:
        collect(args.collect, args.tasks)
    table(args.tasks, _label(args.collect or args.tasks.parent))


if __name__ == "__main__":
    main()
