"""Per-task records of a run, the CSV they are written to, and the run summary.

One `TaskRecord` per generated task, whatever happened to it: the row carries the
outcome, the reason, every measured latency part and every energy part with the
method that produced it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coordinator.jsonout import jsonable
from testbed.messages import TaskRecord
from testbed.types import EnergyMethod, EnergyPart, EnergyPartName, FailureReason, Outcome

_SCALARS = tuple(f for f in dataclasses.fields(TaskRecord) if f.name not in ("energy", "shares"))
# a split task's shares (§B) have a file of their own: shares.csv (coordinator/coedge_shares.py)
_ENERGY_COLUMNS = tuple(
    column for part in EnergyPartName for column in (f"energy_{part}_j", f"energy_{part}_method")
)
CSV_FIELDS = [*(f.name for f in _SCALARS), "energy_j", *_ENERGY_COLUMNS]
"""The columns of tasks.csv: the record's fields, the task's total energy, then each
energy part's joules and the method that measured it (docs/energy.md); a part the
task did not have is left empty."""


def csv_row(record: TaskRecord) -> dict[str, Any]:
    """One task's row of tasks.csv (`read_records` reads it back)."""
    row: dict[str, Any] = {f.name: getattr(record, f.name) for f in _SCALARS}
    row["outcome"] = record.outcome.value
    row["reason"] = record.reason.value
    row["energy_j"] = round(record.energy_j, 9)
    for part in record.energy:
        name = EnergyPartName(part.part)  # an unknown part is a bug: no column would hold it
        if f"energy_{name}_j" in row:
            raise ValueError(f"{record.task_id}: energy part {name} twice")
        row[f"energy_{name}_j"] = part.energy_j
        row[f"energy_{name}_method"] = part.method.value
    return row


def write_csv(path: Path, rows: Iterable[TaskRecord]) -> int:
    n = 0
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(csv_row(row))
            n += 1
    return n


def read_records(path: Path) -> list[TaskRecord]:
    """Task records back from a tasks.csv that `write_csv` wrote."""
    with open(path, newline="") as f:
        return [_from_row(row) for row in csv.DictReader(f)]


def _from_row(row: dict[str, str]) -> TaskRecord:
    values: dict[str, Any] = {}
    for f in _SCALARS:
        text = row[f.name]
        values[f.name] = (
            Outcome(text) if f.name == "outcome"
            else FailureReason(text) if f.name == "reason"
            else text == "True" if f.type == "bool"
            else int(text) if f.type == "int"
            else float(text) if f.type == "float"
            else text
        )  # fmt: skip
    energy = [
        EnergyPart(part.value, float(row[f"energy_{part}_j"]), method)
        for part in EnergyPartName
        if (method_text := row.get(f"energy_{part}_method"))
        for method in [EnergyMethod(method_text)]
    ]
    return TaskRecord(**values, energy=energy)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); NaN for no values."""
    return float(np.percentile(values, q)) if len(values) else math.nan


def summarise(rows: Sequence[TaskRecord], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run summary: counts, completion, latency, energy per part and method."""
    done = [r for r in rows if r.outcome is Outcome.COMPLETED]
    latencies = [r.latency_ms for r in rows if r.latency_ms > 0]
    energy: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        for p in r.energy:
            energy[p.part][p.method.value] += p.energy_j
    reasons = Counter(r.reason.value for r in rows if r.outcome is Outcome.FAILED)
    return {
        "tasks": len(rows),
        "completed": len(done),
        "failed": len(rows) - len(done),
        "completion_rate": len(done) / len(rows) if rows else math.nan,
        "failure_reasons": dict(sorted(reasons.items())),
        "latency_ms": {
            "mean": sum(latencies) / len(latencies) if latencies else math.nan,
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "max": max(latencies) if latencies else math.nan,
        },
        "energy_j": {
            "total": sum(r.energy_j for r in rows),
            "mean_per_task": sum(r.energy_j for r in rows) / len(rows) if rows else math.nan,
            "by_part": {part: dict(methods) for part, methods in sorted(energy.items())},
        },
        "offloaded": sum(1 for r in rows if r.edge_id),
        "cache_hits": sum(1 for r in rows if r.edge_id and r.cache_hit),
        "reward_mean": sum(r.reward for r in rows) / len(rows) if rows else math.nan,
        **(extra or {}),
    }


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (NaN and infinities as null), as `--json` prints it."""
    path.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def format_table(summary: dict[str, Any], cache: dict[str, dict[str, int]] | None = None) -> str:
    """The results table `testbed up` prints."""
    lat = summary["latency_ms"]
    lines = [
        f"tasks          {summary['tasks']}  (completed {summary['completed']}, "
        f"failed {summary['failed']})",
        f"completion     {100 * summary['completion_rate']:.1f} %",
        f"latency (ms)   mean {lat['mean']:.1f}   p50 {lat['p50']:.1f}   p95 {lat['p95']:.1f}"
        f"   max {lat['max']:.1f}",
        f"energy (J)     total {summary['energy_j']['total']:.3f}   per task "
        f"{summary['energy_j']['mean_per_task']:.4f}",
    ]
    for part, methods in summary["energy_j"]["by_part"].items():
        detail = ", ".join(f"{j:.3f} {m}" for m, j in methods.items())
        lines.append(f"  {part:<12} {detail}")
    if summary["failure_reasons"]:
        reasons = ", ".join(f"{k} {v}" for k, v in summary["failure_reasons"].items())
        lines.append(f"failures       {reasons}")
    if cache:
        lines.append("cache          edge       hits  misses  evictions  fetched MB")
        for edge_id, c in sorted(cache.items()):
            lines.append(
                f"               {edge_id:<10} {c['hits']:>4}  {c['misses']:>6}  "
                f"{c['evictions']:>9}  {c['bytes_fetched'] / 1e6:>10.1f}"
            )
    return "\n".join(lines)
