"""The §C live run's folder, written as slots finish (docs/quality-live.md): tasks.csv
(one `QualityRecord` per request), slots.csv (one row per slot: the assignment's counts,
the allocation, the measured and the planned utility), summary.json (replaced
atomically after every slot; `status` running, completed, interrupted or failed) and
calibration.json (the latency requests timed before slot 0 and the curves fitted).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coordinator.quality_stream import RECORD_FIELDS, QualityRecord, record_row
from coordinator.recorder import RunStatus
from coordinator.records import write_json
from coordinator.stats import t_interval

SLOT_FIELDS = [
    "slot", "requests", "completed", "tasks_per_model", "steps_per_model", "share_per_model",
    "utility", "planned_utility", "mean_score", "mean_latency_ms", "plan_ms", "wall_ms",
]  # fmt: skip


def _mean_ci(values: list[float]) -> dict[str, float]:
    """Mean and the half-width of its Student-t 95 % interval (coordinator/stats.py;
    nan below two values)."""
    interval = t_interval(values)
    return {"n": interval.n, "mean": interval.mean, "ci95": interval.half_width}


def quality_summary(records: list[QualityRecord], slot_utilities: list[float],
                    latency_weight_per_s: float) -> dict[str, Any]:  # fmt: skip
    """Counts, failures, score and latency by model and by category, utility per slot."""
    done = [r for r in records if r.completed]
    reasons: dict[str, int] = {}
    for r in records:
        if not r.completed:
            reasons[r.reason.value] = reasons.get(r.reason.value, 0) + 1

    def groups(key: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in dict.fromkeys(getattr(r, key) for r in records):
            mine = [r for r in records if getattr(r, key) == name]
            out[name] = {
                "requests": len(mine),
                "completed": sum(r.completed for r in mine),
                "score": _mean_ci([r.score for r in mine if r.completed]),
                "latency_ms": _mean_ci([r.latency_ms for r in mine]),
            }
        return out

    return {
        "requests": len(records),
        "completed": len(done),
        "failed": len(records) - len(done),
        "failure_reasons": dict(sorted(reasons.items())),
        "score": _mean_ci([r.score for r in done]),
        "latency_ms": _mean_ci([r.latency_ms for r in records]),
        "utility_per_slot": _mean_ci(slot_utilities),
        "utility_per_request": _mean_ci([r.utility(latency_weight_per_s) for r in records]),
        "score_methods": sorted({r.score_method for r in done}),
        "by_model": groups("model"),
        "by_category": groups("category"),
    }


class QualityRecorder:
    """Appends records and slot rows as slots finish; keeps summary.json current."""

    def __init__(self, run_dir: Path, latency_weight_per_s: float,
                 extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.run_dir = run_dir
        self.records: list[QualityRecord] = []
        self.slot_utilities: list[float] = []
        self.last_slot: int | None = None
        self.extra = dict(extra or {})
        self._lat = latency_weight_per_s
        self._tasks_file = open(run_dir / "tasks.csv", "w", newline="")  # noqa: SIM115
        self._tasks = csv.DictWriter(self._tasks_file, fieldnames=RECORD_FIELDS)
        self._tasks.writeheader()
        self._slots_file = open(run_dir / "slots.csv", "w", newline="")  # noqa: SIM115
        self._slots = csv.DictWriter(self._slots_file, fieldnames=SLOT_FIELDS)
        self._slots.writeheader()
        self._flush()
        self.summary(RunStatus.RUNNING)

    def add_slot(self, slot: int, records: list[QualityRecord], row: dict[str, Any]) -> None:
        self._append(records)
        self._slots.writerow(row)
        self.slot_utilities.append(float(row["utility"]))
        self.last_slot = slot
        self._flush()
        self.summary(RunStatus.RUNNING)

    def add_records(self, records: Iterable[QualityRecord]) -> None:
        """Records of no finished slot (a slot stopped by Ctrl-C or SIGTERM)."""
        self._append(list(records))
        self._flush()

    def finish(self, status: RunStatus, **extra: Any) -> dict[str, Any]:
        self._flush()
        self._tasks_file.close()
        self._slots_file.close()
        self.extra.update(extra)
        return self.summary(status)

    def summary(self, status: RunStatus) -> dict[str, Any]:
        out = {
            **quality_summary(self.records, self.slot_utilities, self._lat),
            **self.extra,
            "status": status.value,
            "slots_done": len(self.slot_utilities),
            "last_slot": self.last_slot,
        }
        tmp = self.run_dir / "summary.json.tmp"
        write_json(tmp, out)
        os.replace(tmp, self.run_dir / "summary.json")
        return out

    def _append(self, records: list[QualityRecord]) -> None:
        for record in records:
            self._tasks.writerow(record_row(record))
        self.records.extend(records)

    def _flush(self) -> None:
        for f in (self._tasks_file, self._slots_file):
            if not f.closed:
                f.flush()


def format_quality_table(summary: dict[str, Any]) -> str:
    """The results table `testbed quality run` prints (means ± 95 % half-widths)."""

    def cell(stat: dict[str, float], digits: int = 2) -> str:
        if not math.isfinite(stat["mean"]):
            return "-"
        half = stat["ci95"]
        return f"{stat['mean']:.{digits}f}" + (f" ± {half:.{digits}f}" if math.isfinite(half)
                                               else "")  # fmt: skip

    lines = [
        f"requests       {summary['requests']}  (completed {summary['completed']}, "
        f"failed {summary['failed']})",
        f"score          {cell(summary['score'])}   ({', '.join(summary['score_methods']) or '-'})",
        f"latency (ms)   {cell(summary['latency_ms'], 1)}",
        f"utility/slot   {cell(summary['utility_per_slot'])}",
        "model          requests  score            latency (ms)",
    ]
    for name, g in summary["by_model"].items():
        lines.append(f"  {name:<12} {g['requests']:>8}  {cell(g['score']):<16} "
                     f"{cell(g['latency_ms'], 1)}")  # fmt: skip
    lines.append("category       requests  score")
    for name, g in summary["by_category"].items():
        lines.append(f"  {name:<12} {g['requests']:>8}  {cell(g['score'])}")
    if summary["failure_reasons"]:
        reasons = ", ".join(f"{k} {v}" for k, v in summary["failure_reasons"].items())
        lines.append(f"failures       {reasons}")
    return "\n".join(lines)
