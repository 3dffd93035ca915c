"""Run records: percentiles, the summary and the CSV a run writes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from coordinator.records import TaskRecord, percentile, summarise, write_csv
from testbed.types import EnergyMethod, EnergyPart, FailureReason, Outcome


def _row(i: int, outcome: Outcome, latency_ms: float, reason=FailureReason.NONE) -> TaskRecord:
    return TaskRecord(
        task_id=f"a/t{i}", agent_id="a", slot=i, task_type="k", model_id="m", size_mbit=1.0,
        density_cycles_per_bit=10.0, deadline_s=1.0, units=2, outcome=outcome, reason=reason,
        latency_ms=latency_ms,
        energy=[EnergyPart("compute", 0.5, EnergyMethod.ESTIMATED),
                EnergyPart("tx", 0.25, EnergyMethod.MODELED)],
    )  # fmt: skip


def test_percentile_interpolates() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10], 95) == 10
    assert math.isnan(percentile([], 50))


def test_summary_counts_outcomes_and_energy_by_method() -> None:
    rows = [_row(0, Outcome.COMPLETED, 100), _row(1, Outcome.FAILED, 300, FailureReason.DEADLINE)]
    s = summarise(rows)
    assert (s["tasks"], s["completed"], s["completion_rate"]) == (2, 1, 0.5)
    assert s["failure_reasons"] == {"deadline": 1}
    assert s["latency_ms"]["p50"] == 200
    assert s["energy_j"]["total"] == 1.5
    assert s["energy_j"]["by_part"] == {"compute": {"estimated": 1.0}, "tx": {"modeled": 0.5}}


def test_csv_has_one_row_per_task_with_energy_labels(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    assert write_csv(path, [_row(0, Outcome.COMPLETED, 100)]) == 1
    (row,) = csv.DictReader(path.open())
    assert row["outcome"] == "completed"
    assert row["energy_parts"] == "compute=0.5:estimated;tx=0.25:modeled"
