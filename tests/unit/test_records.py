"""Run records: percentiles, the summary and the CSV a run writes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from coordinator.records import TaskRecord, percentile, read_records, summarise, write_csv
from testbed.types import EnergyMethod, EnergyPart, FailureReason, Outcome


def _row(i: int, outcome: Outcome, latency_ms: float, reason=FailureReason.NONE) -> TaskRecord:
    return TaskRecord(
        task_id=f"a/t{i}", agent_id="a", slot=i, task_type="k", model_id="m", size_mbit=1.0,
        density_cycles_per_bit=10.0, deadline_s=1.0, units=2, outcome=outcome, reason=reason,
        latency_ms=latency_ms,
        energy=[EnergyPart("local_compute", 0.5, EnergyMethod.ESTIMATED),
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
    assert s["energy_j"]["by_part"] == {
        "local_compute": {"estimated": 1.0},
        "tx": {"modeled": 0.5},
    }


def test_csv_has_one_row_per_task_with_energy_labels(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    assert write_csv(path, [_row(0, Outcome.COMPLETED, 100)]) == 1
    (row,) = csv.DictReader(path.open())
    assert row["outcome"] == "completed"
    assert (row["energy_local_compute_j"], row["energy_local_compute_method"]) == (
        "0.5",
        "estimated",
    )
    assert (row["energy_tx_j"], row["energy_tx_method"]) == ("0.25", "modeled")
    assert row["energy_edge_compute_j"] == row["energy_edge_compute_method"] == ""


def test_csv_round_trip_gives_back_every_record(tmp_path: Path) -> None:
    rows = [
        _row(0, Outcome.COMPLETED, 100.125),
        _row(1, Outcome.FAILED, 0.0, FailureReason.DEADLINE),
    ]
    rows[1].edge_id, rows[1].cache_hit, rows[1].detail = "edge-0", True, 'a, "quoted" detail'
    rows[1].energy = [  # parts come back in EnergyPartName's order
        EnergyPart("cloud_tx", 2e-9, EnergyMethod.MODELED),
        EnergyPart("edge_compute", 1 / 3, EnergyMethod.NVML_COUNTER),
    ]
    rows[0].reward = -0.123456789012345
    path = tmp_path / "tasks.csv"
    write_csv(path, rows)
    back = read_records(path)
    assert back == rows


def test_a_part_twice_in_one_record_is_refused(tmp_path: Path) -> None:
    row = _row(0, Outcome.COMPLETED, 1.0)
    row.energy.append(EnergyPart("tx", 1.0, EnergyMethod.MODELED))
    with pytest.raises(ValueError, match="twice"):
        write_csv(tmp_path / "tasks.csv", [row])
