"""The record of a task split over several edges (testbed/records.py `judge_shares`):
its latency is the latest share's, it fails with the first failed share's reason (in
edge order), else by its deadline; energy parts sum over the shares, one per name."""

from __future__ import annotations

import pytest

from testbed.edge_client import Submission
from testbed.messages import EdgeTaskResult, EdgeTiming, ShareResult, TaskRecord
from testbed.records import add_share_energy, judge_shares, merge_energy, share_result
from testbed.types import EnergyMethod, EnergyPart, FailureReason, Outcome


def record(deadline_s: float = 1.0) -> TaskRecord:
    return TaskRecord("agent-0/s000001/k000", "agent-0", 1, "t", "cgan-s", 3.0, 200.0,
                      deadline_s, 0, Outcome.FAILED)  # fmt: skip


def share(edge: str, finish_ms: float, units: int = 5, reason: FailureReason | None = None,
          **times: float) -> ShareResult:  # fmt: skip
    outcome = Outcome.COMPLETED if reason is None else Outcome.FAILED
    return ShareResult(edge, units / 10, units, outcome, reason or FailureReason.NONE,
                       f"{edge} says" if reason else "", finish_ms, 300.0, **times)  # fmt: skip


def test_the_latency_is_the_latest_shares_finish_with_its_parts() -> None:
    early = share("edge-0", 200.0, 6, t_tx_ms=0.0, t_edge_queue_ms=50.0, t_edge_compute_ms=150.0)
    late = share("edge-2", 420.0, 4, t_tx_ms=20.0, t_edge_queue_ms=100.0, t_edge_compute_ms=300.0)
    r = judge_shares(record(), [early, late])
    assert r.outcome is Outcome.COMPLETED and r.reason is FailureReason.NONE
    assert r.latency_ms == 420.0
    assert (r.t_tx_ms, r.t_edge_queue_ms, r.t_edge_compute_ms) == (20.0, 100.0, 300.0)
    assert (r.edge_id, r.share, r.units, r.edge_units, r.local_units) == ("edge-0+edge-2", 1.0,
                                                                         10, 10, 0)  # fmt: skip
    assert r.shares == [early, late]


def test_a_failed_share_fails_the_task_with_the_first_failed_shares_reason() -> None:
    shares = [
        share("edge-0", 100.0),
        share("edge-1", 900.0, reason=FailureReason.EDGE_UNREACHABLE),
        share("edge-2", 50.0, reason=FailureReason.MODEL_MISSING),
    ]
    r = judge_shares(record(), shares)
    assert r.outcome is Outcome.FAILED and r.reason is FailureReason.EDGE_UNREACHABLE
    assert r.detail == "edge-1: edge-1 says" and r.latency_ms == 900.0


def test_a_task_past_its_deadline_fails_as_deadline() -> None:
    r = judge_shares(record(deadline_s=0.5), [share("edge-0", 499.0), share("edge-1", 501.0)])
    assert r.outcome is Outcome.FAILED and r.reason is FailureReason.DEADLINE
    assert judge_shares(record(deadline_s=0.5), [share("edge-0", 500.0)]).completed


def test_a_task_with_no_share_is_a_bug_never_a_success() -> None:
    r = judge_shares(record(), [])
    assert r.outcome is Outcome.FAILED and r.reason is FailureReason.INTERNAL


def test_each_share_adds_its_energy_one_part_per_name() -> None:
    def sub(joules: float, method: EnergyMethod) -> Submission:
        result = EdgeTaskResult("t", "edge-0", Outcome.COMPLETED, timing=EdgeTiming(queue_ms=3.0),
                                energy=(EnergyPart("edge_compute", joules, method),))  # fmt: skip
        return Submission(result, upload_s=0.5, round_trip_s=1.0)

    r = record()
    add_share_energy(r, sub(2.0, EnergyMethod.RAPL), transmit_power_w=0.2)
    add_share_energy(r, sub(3.0, EnergyMethod.RAPL), transmit_power_w=0.2)
    assert [(p.part, p.method) for p in r.energy] == [
        ("tx", EnergyMethod.MODELED), ("edge_compute", EnergyMethod.RAPL)
    ]  # fmt: skip
    assert r.energy[0].energy_j == pytest.approx(0.2) and r.energy[1].energy_j == 5.0
    mixed = merge_energy([EnergyPart("edge_compute", 1.0, EnergyMethod.RAPL),
                          EnergyPart("edge_compute", 1.0, EnergyMethod.NVML_POWER)])  # fmt: skip
    assert mixed == [EnergyPart("edge_compute", 2.0, EnergyMethod.ESTIMATED)]
    s = share_result("edge-0", 3, 10, sub(1.0, EnergyMethod.RAPL), 80.0, 75.0)
    assert (s.share, s.units, s.finish_ms, s.planned_finish_ms, s.t_tx_ms, s.t_edge_queue_ms) == (
        0.3, 3, 80.0, 75.0, 500.0, 3.0)  # fmt: skip
