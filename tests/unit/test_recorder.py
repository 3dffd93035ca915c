"""coordinator/recorder.py: records are on disk as slots finish; a stopped run says where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coordinator.bench_run import record_slots
from coordinator.boards import SlotResult
from coordinator.recorder import RunRecorder, RunStatus
from coordinator.records import read_records
from testbed.messages import TaskRecord
from testbed.types import FailureReason, Outcome


def _record(slot: int, agent: str = "a", outcome: Outcome = Outcome.COMPLETED) -> TaskRecord:
    return TaskRecord(
        task_id=f"{agent}/t{slot}", agent_id=agent, slot=slot, task_type="k", model_id="m",
        size_mbit=1.0, density_cycles_per_bit=1.0, deadline_s=1.0, units=1, outcome=outcome,
        latency_ms=10.0 + slot,
    )  # fmt: skip


def _summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def test_each_slot_is_on_disk_before_the_next(tmp_path: Path) -> None:
    recorder = RunRecorder(tmp_path)
    assert _summary(tmp_path)["status"] == "running" and read_records(tmp_path / "tasks.csv") == []
    for slot in range(3):
        recorder.add_slot(slot, [_record(slot)], {"wall_ms": 5.0})
        assert [r.slot for r in read_records(tmp_path / "tasks.csv")] == list(range(slot + 1))
        summary = _summary(tmp_path)
        assert (summary["tasks"], summary["last_slot"], summary["status"]) == (
            slot + 1,
            slot,
            "running",
        )
    lines = (tmp_path / "slots.csv").read_text().splitlines()
    assert lines[0].startswith("slot,tasks,completed") and len(lines) == 4
    final = recorder.finish(RunStatus.COMPLETED, note="x")
    assert final == _summary(tmp_path) and final["status"] == "completed" and final["note"] == "x"


class _Bench:
    """A bench stand-in whose third slot is interrupted (pure logic of record_slots)."""

    def __init__(self) -> None:
        self.drained = False

    def step(self, slot: int) -> SlotResult:
        if slot == 2:
            raise KeyboardInterrupt
        return SlotResult(slot, [_record(slot)], {}, 1.0, 0.5)

    def drain(self) -> list[TaskRecord]:
        self.drained = True
        return []

    def interrupted(self, detail: str) -> list[TaskRecord]:
        record = _record(2, outcome=Outcome.FAILED)
        record.reason, record.detail = FailureReason.INTERRUPTED, detail
        return [record]


def test_an_interrupted_run_keeps_its_slots_and_says_where(tmp_path: Path) -> None:
    bench = _Bench()
    with pytest.raises(KeyboardInterrupt):
        record_slots(bench, RunRecorder(tmp_path), range(5))  # type: ignore[arg-type]
    summary = _summary(tmp_path)
    assert summary["status"] == "interrupted"
    assert (summary["last_slot"], summary["interrupted_in_slot"]) == (1, 2)
    rows = read_records(tmp_path / "tasks.csv")
    assert [(r.slot, r.reason) for r in rows] == [
        (0, FailureReason.NONE),
        (1, FailureReason.NONE),
        (2, FailureReason.INTERRUPTED),
    ]
    assert not bench.drained
