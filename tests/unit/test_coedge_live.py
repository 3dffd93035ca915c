"""The live §B bench's coordinator side without processes: the slot clock, the owed
tasks of several tasks per slot, a board's report settled against them, the reward,
shares.csv and the summary's finish-time spread (coordinator/coedge_live.py,
coordinator/coedge_shares.py, coordinator/recorder.py)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import grpc
import pytest

from coordinator.boards import BoardHandle, OwedTasks
from coordinator.coedge_live import (
    CoedgePending,
    SlotClock,
    coedge_reward,
    receive_report,
    status_reason,
)
from coordinator.coedge_run import coedge_policy, summary_line
from coordinator.coedge_shares import (
    CLOCKED_SLOT_FIELDS,
    SHARE_FIELDS,
    coedge_summary,
    finish_spread_ms,
)
from coordinator.recorder import RunRecorder, RunStatus
from coordinator.records import CSV_FIELDS, read_records
from testbed import serde
from testbed.coedge.tasks import slot_tasks
from testbed.config import config_from_dict
from testbed.exit_codes import TestbedExit
from testbed.messages import ShareResult, TaskRecord
from testbed.records import new_record
from testbed.rpc.v1 import agent_pb2
from testbed.tasks import Task, TaskGenerator
from testbed.types import FailureReason, Outcome


def _cfg(**coedge: object):
    return config_from_dict(
        {
            "edges": {"count": 3},
            "agents": {"count": 3},
            "run": {"system": "coedge", "slot_mode": "clocked"},
            "coedge": {"edge_ghz": [10.0, 20.0, 30.0], "max_tasks": 4, "arrival_prob": 1.0,
                       **coedge},
        }
    )  # fmt: skip


def _owed(agent_id: str = "agent-0") -> OwedTasks:
    cfg = _cfg()
    return OwedTasks(agent_id, TaskGenerator(agent_id, cfg.tasks.active_types, 1.0, 0))


def _tasks(agent_id: str = "agent-0", slot: int = 0) -> list[Task]:
    return slot_tasks(_cfg(), 0, agent_id, slot)


def _record(task: Task, latency_ms: float, shares: list[ShareResult] = ()) -> TaskRecord:
    record = new_record(task, task.slot)
    record.outcome = Outcome.COMPLETED
    record.latency_ms = latency_ms
    record.shares = list(shares)
    return record


def _share(edge: str, share: float, finish_ms: float, ok: bool = True) -> ShareResult:
    return ShareResult(
        edge, share, units=int(share * 10), finish_ms=finish_ms, planned_finish_ms=100.0,
        outcome=Outcome.COMPLETED if ok else Outcome.FAILED,
        reason=FailureReason.NONE if ok else FailureReason.EDGE_UNREACHABLE,
    )  # fmt: skip


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_the_clock_starts_slots_at_t0_plus_s_delta_and_never_waits_when_late() -> None:
    fake = FakeTime()
    clock = SlotClock(0.5, now=fake.now, sleep=fake.sleep)
    assert clock.wait_for(0) == (0.0, 0.0) and not fake.slept
    fake.t += 0.1  # the slot's Steps took 0.1 s
    planned, actual = clock.wait_for(1)
    assert planned == 0.5 and math.isclose(actual, 0.5) and math.isclose(fake.slept[-1], 0.4)
    fake.t += 1.2  # slot 1 overran: slot 2 (planned 1.0) starts at once, late
    planned, actual = clock.wait_for(2)
    assert planned == 1.0 and math.isclose(actual, 1.7) and len(fake.slept) == 1
    fake.t += 0.05  # slot 3 is still planned at 1.5 s: the clock does not slip
    planned, actual = clock.wait_for(3)
    assert planned == 1.5 and math.isclose(actual, 1.75)


def test_the_clock_counts_from_the_first_slot_it_is_given() -> None:
    fake = FakeTime()
    clock = SlotClock(2.0, now=fake.now, sleep=fake.sleep)
    assert clock.wait_for(5, first_slot=5) == (0.0, 0.0)
    assert clock.wait_for(6, first_slot=5)[0] == 2.0


def test_the_reward_is_minus_the_delay_or_the_deadline_penalty() -> None:
    task = _tasks()[0]
    on_time = _record(task, 250.0)
    assert coedge_reward(on_time, 10.0) == pytest.approx(-0.25)
    late = _record(task, task.deadline_s * 1e3 + 1)
    assert coedge_reward(late, 10.0) == pytest.approx(-10.0 * task.deadline_s)
    failed = _record(task, 10.0)
    failed.outcome = Outcome.FAILED
    assert coedge_reward(failed, 3.0) == pytest.approx(-3.0 * task.deadline_s)


def _pending(owed: OwedTasks, tasks: list[Task], slot: int) -> CoedgePending:
    owed.owe(tasks)
    handle = BoardHandle(owed.agent_id, "127.0.0.1:1", owed)
    return CoedgePending(handle, slot, tasks=tasks, request=agent_pb2.StepRequest(slot=slot))


def _report(records: list[TaskRecord], in_flight: int) -> agent_pb2.StepReport:
    report = agent_pb2.StepReport(agent_id="agent-0", in_flight=in_flight, acted=True)
    report.tasks.extend(serde.task_record_to_pb(r) for r in records)
    return report


def test_several_tasks_per_slot_are_owed_by_id_until_a_record_settles_them() -> None:
    owed = _owed()
    first, second = _tasks(slot=0), _tasks(slot=1)
    assert len(first) == 4 and len({t.task_id for t in first}) == 4
    # clocked: slot 0's Step returns at once, every task still in flight
    _, records, flying = receive_report(_pending(owed, first, 0), _report([], in_flight=4))
    assert records == [] and flying == 4
    # slot 1: two of slot 0's tasks finished; the board has the other six in flight
    done = [_record(t, 100.0) for t in first[:2]]
    _, records, flying = receive_report(_pending(owed, second, 1), _report(done, in_flight=6))
    assert [r.task_id for r in records] == [t.task_id for t in first[:2]] and flying == 6
    # a record twice, or of a task never drawn, is refused
    forged = _record(slot_tasks(_cfg(), 0, "agent-0", 7)[0], 1.0)
    _, records, _ = receive_report(_pending(owed, [], 2), _report([done[0], forged], 6))
    assert records == [] and owed.refused == [done[0].task_id, forged.task_id]


def test_a_board_owing_more_than_it_has_in_flight_has_the_oldest_recorded_missing() -> None:
    owed = _owed()
    first, second = _tasks(slot=0), _tasks(slot=1)
    receive_report(_pending(owed, first, 0), _report([], in_flight=4))
    _, records, flying = receive_report(_pending(owed, second, 1), _report([], in_flight=5))
    assert [r.task_id for r in records] == [t.task_id for t in first[:3]]
    assert all(r.reason is FailureReason.RECORD_MISSING for r in records) and flying == 5


class _Error(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "boom"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (grpc.StatusCode.DEADLINE_EXCEEDED, FailureReason.AGENT_UNREACHABLE),
        (grpc.StatusCode.UNAVAILABLE, FailureReason.AGENT_UNREACHABLE),
        (grpc.StatusCode.INVALID_ARGUMENT, FailureReason.INVALID_REQUEST),
        (grpc.StatusCode.INTERNAL, FailureReason.INTERNAL),
    ],
)
def test_a_failed_step_records_the_tasks_it_drew_and_keeps_earlier_ones_owed(
    code: grpc.StatusCode, reason: FailureReason
) -> None:
    assert status_reason(_Error(code)) is reason
    owed = _owed()
    first, second = _tasks(slot=0), _tasks(slot=1)
    receive_report(_pending(owed, first, 0), _report([], in_flight=4))
    step, records, flying = receive_report(_pending(owed, second, 1), _Error(code))
    assert not step.reachable and flying == 0
    assert [r.task_id for r in records] == [t.task_id for t in second]
    assert all(r.reason is reason and "boom" in r.detail for r in records)
    assert list(owed.tasks) == [t.task_id for t in first]


def test_finish_spread_and_the_summary() -> None:
    a, b, c, d = _tasks()
    split = _record(a, 130.0, [_share("edge-0", 0.6, 120.0), _share("edge-1", 0.4, 130.0)])
    split2 = _record(b, 110.0, [_share("edge-0", 0.5, 110.0), _share("edge-2", 0.5, 80.0)])
    one = _record(c, 50.0, [_share("edge-1", 1.0, 50.0)])
    broken = _record(d, 0.0, [_share("edge-0", 0.5, 90.0), _share("edge-1", 0.5, 0.0, ok=False)])
    broken.outcome, broken.reason = Outcome.FAILED, FailureReason.EDGE_UNREACHABLE
    assert finish_spread_ms(split) == 10.0 and finish_spread_ms(split2) == 30.0
    assert finish_spread_ms(one) is None and finish_spread_ms(broken) is None
    summary = coedge_summary([split, split2, one, broken])
    assert summary["tasks_split"] == 3 and summary["shares"] == 7
    assert summary["completion_rate"] == 0.75
    assert summary["mean_delay_s"] == pytest.approx((0.13 + 0.11 + 0.05) / 3)
    assert summary["share_finish_spread_ms"] == {
        "tasks": 2, "mean": 20.0, "p50": 20.0, "p95": pytest.approx(29.0), "max": 30.0,
    }  # fmt: skip
    assert summary["delay_minus_plan_ms"]["mean"] == pytest.approx(20.0)  # 30 and 10 over 100
    assert summary_line(summary).endswith(
        "3 task(s) split, share finish spread p50 20.0 ms, p95 29.0 ms"
    )
    alone = summary_line(coedge_summary([one, broken]))
    assert alone.endswith("1 task(s) split, none with every share completed")


def test_the_recorder_writes_shares_csv_and_the_clocked_slot_columns(tmp_path: Path) -> None:
    a, b = _tasks()[:2]
    split = _record(a, 130.0, [_share("edge-0", 0.6, 120.0), _share("edge-1", 0.4, 130.0)])
    home = _record(b, 40.0, [_share("edge-0", 1.0, 40.0)])
    recorder = RunRecorder(tmp_path, slot_fields=CLOCKED_SLOT_FIELDS, shares_name="shares.csv")
    recorder.add_slot(0, [split], {"drawn": 4, "in_flight": 3, "planned_start_s": 0.0,
                                   "actual_start_s": 0.002, "lateness_ms": 2.0})  # fmt: skip
    recorder.add_records([home])
    recorder.finish(RunStatus.COMPLETED)
    with open(tmp_path / "shares.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == SHARE_FIELDS
    assert [(r["task_id"], r["edge_id"], r["share"], r["finish_ms"]) for r in rows] == [
        (a.task_id, "edge-0", "0.6", "120.0"), (a.task_id, "edge-1", "0.4", "130.0"),
        (b.task_id, "edge-0", "1.0", "40.0"),
    ]  # fmt: skip
    slots = (tmp_path / "slots.csv").read_text().splitlines()
    assert slots[0].split(",") == CLOCKED_SLOT_FIELDS
    assert slots[1].split(",")[:8] == ["0", "1", "1", "4", "3", "0.000", "0.002", "2.000"]
    assert "shares" not in CSV_FIELDS  # tasks.csv keeps one scalar per column
    assert [r.task_id for r in read_records(tmp_path / "tasks.csv")] == [a.task_id, b.task_id]
    assert json.loads((tmp_path / "summary.json").read_text())["tasks"] == 2


def test_a_mato_recorder_writes_no_shares_file(tmp_path: Path) -> None:
    RunRecorder(tmp_path).finish(RunStatus.COMPLETED)
    assert not (tmp_path / "shares.csv").exists()
    assert (tmp_path / "slots.csv").read_text().startswith("slot,tasks,completed,wall_ms,")


def test_policies_of_the_coedge_bench(tmp_path: Path) -> None:
    cfg = _cfg()
    assert coedge_policy(cfg, "split-all") == ("split-all", coedge_policy(cfg, "split-all")[1])
    assert coedge_policy(cfg, "lq=least-queue")[0] == "lq"
    assert coedge_policy(cfg, "home")[1].name == "home"
    with pytest.raises(TestbedExit, match="unknown §B policy 'greedy'"):
        coedge_policy(cfg, "greedy")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(TestbedExit, match=r"bad\.onnx"):
        coedge_policy(cfg, str(bad))
