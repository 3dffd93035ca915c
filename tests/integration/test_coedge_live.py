"""The live §B bench with real processes (docs/coedge.md, "On the live bench"): three
heterogeneous edges (their own clocks, stretched by the compute emulation), one
scheduler board per base station, clocked and barrier slots, a real broker and the
coordinator's registry and slot driver (coordinator/coedge_live.py)."""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path

import pytest

from coordinator.coedge_live import CoedgeBench, CoedgeSlot
from coordinator.coedge_run import coedge_policy
from coordinator.coedge_shares import coedge_summary
from coordinator.policy_choice import PolicySource
from coordinator.registry import NodeState
from coordinator.run_folder import write_config
from testbed.coedge.tasks import slot_tasks
from testbed.config import load_config
from testbed.config.coedge import CoedgeActionMode
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.messages import TaskRecord
from testbed.types import FailureReason, Outcome

from .harness import write_coedge_config

pytestmark = pytest.mark.slow


def make_bench(tmp_path: Path, tiny_zoo: Path, slot_mode: str = "clocked") -> CoedgeBench:
    path = write_coedge_config(
        tmp_path / "testbed.yaml", tiny_zoo, slot_mode,
        registry={"heartbeat_interval_s": 0.3, "missing_after_beats": 3},
    )  # fmt: skip
    cfg = load_config(path, env={})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return CoedgeBench(cfg, run_dir, write_config(run_dir, cfg), tiny_zoo)


def owed_ids(bench: CoedgeBench, slots: range) -> set[str]:
    """Every task the boards draw in `slots` (the coordinator's own draw)."""
    return {
        t.task_id
        for agent_id in bench.agents
        for slot in slots
        for t in slot_tasks(bench.cfg, bench.cfg.seed, agent_id, slot)
    }


def run_slots(bench: CoedgeBench, slots: range) -> tuple[list[CoedgeSlot], list[TaskRecord]]:
    results = [bench.step(slot) for slot in slots]
    return results, [r for res in results for r in res.records]


def check_shares(record: TaskRecord) -> None:
    """A completed task: one completed share per edge that got units, units and shares
    summing to the task's, its delay the latest share's finish."""
    assert record.outcome is Outcome.COMPLETED, (record.reason, record.detail)
    assert record.shares and all(s.outcome is Outcome.COMPLETED for s in record.shares)
    assert sum(s.units for s in record.shares) == record.units > 0
    assert sum(s.share for s in record.shares) == pytest.approx(1.0, abs=1e-9)
    assert record.edge_id == "+".join(s.edge_id for s in record.shares)
    assert record.latency_ms == pytest.approx(max(s.finish_ms for s in record.shares), abs=1.0)
    assert all(s.units > 0 and s.finish_ms > 0 for s in record.shares)


def test_clocked_slots_split_tasks_over_heterogeneous_edges(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo) as bench:
        bench.start(PolicySource("split-all"))
        results, records = run_slots(bench, range(4))
        drained = bench.drain()
        records += drained
        ids = [r.task_id for r in records]
        assert len(ids) == len(set(ids)) and set(ids) == owed_ids(bench, range(4))
        assert not bench.refused_records() and bench.in_flight() == 0
        for record in records:
            check_shares(record)
            assert record.reward == pytest.approx(-record.latency_ms / 1e3)
        split = [r for r in records if len(r.shares) >= 2]
        assert split, "split-all over three edges split no task"
        assert {s.edge_id for r in split for s in r.shares} >= {"edge-0", "edge-2"}
        # clocked: each slot at t0 + s·Δ, its Step answered at once with what finished
        assert [r.planned_start_s for r in results] == pytest.approx([0.0, 0.4, 0.8, 1.2])
        assert all(r.drawn == 2 * 3 for r in results)
        assert all(r.actual_start_s >= r.planned_start_s - 1e-6 for r in results)
        assert results[0].in_flight > 0  # slot 0's tasks were still running when it ended
        summary = coedge_summary(records)
        assert summary["share_finish_spread_ms"]["tasks"] > 0


def test_barrier_slots_on_the_same_bench(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo, slot_mode="barrier") as bench:
        bench.start(PolicySource("least-queue"))
        results, records = run_slots(bench, range(3))
        for slot, result in enumerate(results):  # a barrier: each slot's own tasks, all done
            assert result.in_flight == 0 and len(result.records) == 2 * 3
            assert {r.slot for r in result.records} == {slot}
        for record in records:
            check_shares(record)
            assert len(record.shares) == 1  # least-queue picks one edge
        assert {r.task_id for r in records} == owed_ids(bench, range(3))
        assert bench.drain() == []


def test_an_edge_killed_mid_run_fails_its_shares_and_loses_no_task(
    tmp_path: Path, tiny_zoo: Path
) -> None:
    with make_bench(tmp_path, tiny_zoo) as bench:
        bench.start(PolicySource("split-all"))
        _, before = run_slots(bench, range(2))
        bench.launcher.kill("edge-1", signal.SIGKILL)
        _, after = run_slots(bench, range(2, 6))
        deadline = time.monotonic() + 5  # the registry marks it missing (a late slot 6)
        while bench.node_states().get("edge-1") != NodeState.MISSING:
            assert time.monotonic() < deadline, "the registry never lost edge-1"
            time.sleep(0.1)
        _, late = run_slots(bench, range(6, 8))
        after += late
        records = before + after + bench.drain()
        ids = [r.task_id for r in records]
        assert len(ids) == len(set(ids)) and set(ids) == owed_ids(bench, range(8))
        assert not bench.refused_records()
        failed = [r for r in records if r.outcome is not Outcome.COMPLETED]
        assert failed, "no task had a share on the killed edge"
        for record in failed:  # the dead edge's share fails the task with its reason
            assert record.reason is FailureReason.EDGE_UNREACHABLE, (record.reason, record.detail)
            dead = [s for s in record.shares if s.edge_id == "edge-1"]
            assert dead and all(s.reason is FailureReason.EDGE_UNREACHABLE for s in dead)
            assert record.reward == pytest.approx(-bench.cfg.coedge.deadline_penalty * 10.0)
        for record in records:  # any other share of any task completed
            others = [s for s in record.shares if s.edge_id != "edge-1"]
            assert all(s.outcome is Outcome.COMPLETED for s in others), record.task_id
        late = [r for r in records if r.slot >= 6]  # the boards know edge-1 is gone
        assert late and all("edge-1" not in r.edge_id for r in late)
        assert all(r.outcome is Outcome.COMPLETED for r in late)


def test_a_trained_scheduler_decides_on_the_boards(tmp_path: Path, tiny_zoo: Path) -> None:
    from coordinator.algorithms.discrete_export import export_trained
    from coordinator.schedulers import train_scheduler

    with make_bench(tmp_path, tiny_zoo) as bench:
        trained = train_scheduler("ddrl-amsa", bench.cfg, 0, 64, num_envs=4)
        path = export_trained(trained, 0, tmp_path / "actor").onnx_path
        assert path is not None
        one = dataclasses.replace(bench.cfg.coedge, action_mode=CoedgeActionMode.ONE)
        with pytest.raises(TestbedExit, match="trained for 3 stations, subset") as refused:
            coedge_policy(dataclasses.replace(bench.cfg, coedge=one), str(path))
        assert refused.value.code == ExitCode.MODEL_INVALID
        label, source = coedge_policy(bench.cfg, f"amsa=sampled:{path}")
        assert (label, source.name) == ("amsa", "onnx-sampled")
        bench.start(source)
        _, records = run_slots(bench, range(2))
        bench.load_policy(coedge_policy(bench.cfg, str(path))[1])  # greedy, sent before slot 2
        _, greedy = run_slots(bench, range(2, 4))
        records += greedy + bench.drain()
        assert {r.task_id for r in records} == owed_ids(bench, range(4))
        for record in records:
            check_shares(record)
        assert len({r.edge_id for r in records}) > 1  # sampled: more than one subset
