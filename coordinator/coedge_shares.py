"""What the live §B bench records beyond tasks.csv: one row per share of a split task
(`shares.csv`), the slot clock's row (`slots.csv` in clocked mode) and the summary's
§B part: mean delay, completion and how well "finish together" held on real
execution (the spread of a split task's share finish times, docs/coedge.md, "On the
live bench").

Pure functions of `TaskRecord`s (testbed/messages.py): the slot driver
(coordinator/coedge_live.py) and the recorder (coordinator/recorder.py) call them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from coordinator.records import percentile
from testbed.messages import TaskRecord
from testbed.types import Outcome

SHARE_FIELDS = [
    "task_id", "agent_id", "slot", "edge_id", "share", "units", "outcome", "reason",
    "planned_finish_ms", "finish_ms", "t_tx_ms", "t_edge_queue_ms", "t_edge_compute_ms",
]  # fmt: skip
"""The columns of shares.csv: the task's ids, then one share's fields (ShareResult)."""

CLOCKED_SLOT_FIELDS = [
    "slot", "tasks", "completed", "drawn", "in_flight", "planned_start_s", "actual_start_s",
    "lateness_ms", "wall_ms", "max_step_ms", "overhead_ms",
]  # fmt: skip
"""The columns of slots.csv on the live §B bench: `tasks`/`completed` are the records
that arrived in the slot's Step (tasks of any earlier slot, in clocked mode), `drawn`
the tasks that arrived in the slot, `in_flight` those the boards still serve after it;
the slot's planned start t0 + s·Δ and its actual start (seconds since t0) and how late
it was."""


def share_rows(record: TaskRecord) -> list[dict[str, Any]]:
    """One task's rows of shares.csv (none for a task that no edge got units of)."""
    return [
        {
            "task_id": record.task_id,
            "agent_id": record.agent_id,
            "slot": record.slot,
            "edge_id": s.edge_id,
            "share": round(s.share, 9),
            "units": s.units,
            "outcome": s.outcome.value,
            "reason": s.reason.value,
            "planned_finish_ms": round(s.planned_finish_ms, 3),
            "finish_ms": round(s.finish_ms, 3),
            "t_tx_ms": round(s.t_tx_ms, 3),
            "t_edge_queue_ms": round(s.t_edge_queue_ms, 3),
            "t_edge_compute_ms": round(s.t_edge_compute_ms, 3),
        }
        for s in record.shares
    ]


def finish_spread_ms(record: TaskRecord) -> float | None:
    """The latest minus the earliest finish of a split task's shares; None for a task
    with fewer than two shares or a failed share (it has no finish to compare)."""
    if len(record.shares) < 2 or not all(s.outcome is Outcome.COMPLETED for s in record.shares):
        return None
    finishes = [s.finish_ms for s in record.shares]
    return max(finishes) - min(finishes)


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": sum(values) / len(values) if values else math.nan,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else math.nan,
    }


def coedge_summary(records: Sequence[TaskRecord]) -> dict[str, Any]:
    """The summary's §B part: the mean delay (s) of tasks that were served, the
    completion rate, and over tasks split with every share completed the spread of
    their share finish times and the later finish minus the split rule's plan T."""
    served = [r.latency_ms / 1e3 for r in records if r.latency_ms > 0]
    done = sum(r.outcome is Outcome.COMPLETED for r in records)
    split = [r for r in records if finish_spread_ms(r) is not None]
    spreads = [s for r in split if (s := finish_spread_ms(r)) is not None]
    late_vs_plan = [
        r.latency_ms - r.shares[0].planned_finish_ms
        for r in split
        if r.shares[0].planned_finish_ms > 0
    ]
    return {
        "mean_delay_s": sum(served) / len(served) if served else math.nan,
        "completion_rate": done / len(records) if records else math.nan,
        "tasks_split": sum(len(r.shares) >= 2 for r in records),
        "shares": sum(len(r.shares) for r in records),
        "share_finish_spread_ms": {"tasks": len(spreads), **_stats(spreads)},
        "delay_minus_plan_ms": {"tasks": len(late_vs_plan), **_stats(late_vs_plan)},
    }
