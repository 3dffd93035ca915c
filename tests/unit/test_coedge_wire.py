"""What the live §B bench adds to the wire and the config: per-share results on the
task record, each edge's queued work and compute per unit in its state, a board's
tasks in flight, and the config's checks of `run.system` and `run.slot_mode`."""

from __future__ import annotations

import json
import math

import pytest

from agent_node.edges import BadState, state_changes
from testbed import serde
from testbed.config import BenchSystem, ConfigError, SlotMode, config_from_dict
from testbed.messages import (
    CacheCounters,
    EdgeStateSnapshot,
    ShareResult,
    TaskRecord,
)
from testbed.rpc.v1 import agent_pb2
from testbed.types import FailureReason, Outcome


def split_record() -> TaskRecord:
    shares = [
        ShareResult("edge-0", 0.6, 6, Outcome.COMPLETED, finish_ms=210.0, planned_finish_ms=200.0,
                    t_tx_ms=0.0, t_edge_queue_ms=40.0, t_edge_compute_ms=170.0),
        ShareResult("edge-2", 0.4, 4, Outcome.FAILED, FailureReason.EDGE_UNREACHABLE, "gone",
                    finish_ms=15.0, planned_finish_ms=200.0, t_tx_ms=12.5),
    ]  # fmt: skip
    return TaskRecord("agent-0/s000003/k001", "agent-0", 3, "t", "cgan-s", 3.0, 200.0, 1.0, 10,
                      Outcome.FAILED, FailureReason.EDGE_UNREACHABLE, "edge-2: gone",
                      edge_id="edge-0+edge-2", share=1.0, edge_units=10, download=True,
                      latency_ms=210.0, shares=shares)  # fmt: skip


def test_a_split_records_shares_survive_the_wire() -> None:
    r = split_record()
    back = serde.task_record_from_pb(serde.task_record_to_pb(r))
    assert back.shares == r.shares
    assert back == r


def test_a_mato_record_keeps_one_target_and_no_shares() -> None:
    r = TaskRecord("agent-0/s000003", "agent-0", 3, "t", "cgan-s", 3.0, 200.0, 1.0, 10,
                   Outcome.COMPLETED, edge_id="edge-1", share=0.4)  # fmt: skip
    msg = serde.task_record_to_pb(r)
    assert [(t.edge_id, t.share) for t in msg.targets] == [("edge-1", 0.4)]
    assert serde.task_record_from_pb(msg).shares == []


def test_the_edges_queued_work_and_unit_compute_survive_protobuf_and_json() -> None:
    state = EdgeStateSnapshot(
        edge_id="edge-1", seq=4, queue_length=2, running=1, cached=(), cache_used_bytes=0,
        cache_capacity_bytes=10, counters=CacheCounters(), queued_work_s=1.25,
        unit_compute_ms={"cgan-s": 3.5, "ae-s": 0.25},
    )  # fmt: skip
    assert serde.edge_state_from_pb(serde.edge_state_to_pb(state)) == state
    assert EdgeStateSnapshot.from_json(state.to_json()) == state
    changes = state_changes("edge-1", state.to_json().encode())
    assert changes["queued_work_s"] == 1.25 and changes["unit_compute_ms"]["cgan-s"] == 3.5


def test_a_step_report_says_how_many_tasks_are_in_flight() -> None:
    report = agent_pb2.StepReport(agent_id="agent-0", slot=3, in_flight=7)
    assert agent_pb2.StepReport.FromString(report.SerializeToString()).in_flight == 7


def state(**fields: object) -> bytes:
    base = {"edge_id": "edge-0", "queue_length": 0, "running": 0, "cached": [],
            "cache_used_bytes": 0, "cache_capacity_bytes": 1}  # fmt: skip
    return json.dumps({**base, **fields}).encode()


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"queued_work_s": -0.5}, "queued_work_s"),
        ({"queued_work_s": math.nan}, "queued_work_s"),
        ({"queued_work_s": math.inf}, "queued_work_s"),
        ({"queued_work_s": "1"}, "queued_work_s"),
        ({"queued_work_s": True}, "queued_work_s"),
        ({"unit_compute_ms": [1.0]}, "unit_compute_ms"),
        ({"unit_compute_ms": {"cgan-s": -1.0}}, "unit_compute_ms"),
        ({"unit_compute_ms": {"cgan-s": math.nan}}, "unit_compute_ms"),
    ],
)
def test_the_board_refuses_a_state_whose_load_is_not_finite_and_non_negative(
    fields: dict, what: str
) -> None:
    with pytest.raises(BadState, match=what):
        state_changes("edge-0", state(**fields))


def test_an_edge_of_an_older_version_publishes_no_load_and_counts_as_idle() -> None:
    changes = state_changes("edge-0", state())
    assert changes["queued_work_s"] == 0.0 and changes["unit_compute_ms"] == {}


def test_the_config_names_the_system_and_slot_mode_and_checks_them() -> None:
    assert config_from_dict({}).run.system is BenchSystem.MATO
    assert config_from_dict({}).run.slot_mode is SlotMode.BARRIER
    coedge = {"system": "coedge", "slot_mode": "clocked"}
    cfg = config_from_dict(
        {"run": coedge, "edges": {"count": 3}, "agents": {"count": 3},
         "coedge": {"edge_ghz": [10.0, 20.0, 30.0]}}
    )  # fmt: skip
    assert (cfg.run.system, cfg.run.slot_mode) == (BenchSystem.COEDGE, SlotMode.CLOCKED)
    with pytest.raises(ConfigError, match=r"run\.system: expected coedge"):
        config_from_dict({"run": {"slot_mode": "clocked"}})
    with pytest.raises(ConfigError, match=r"agents\.count: expected 3 \(edges\.count"):
        config_from_dict(
            {"run": coedge, "edges": {"count": 3}, "agents": {"count": 2},
             "coedge": {"edge_ghz": [10.0, 20.0, 30.0]}}
        )  # fmt: skip
    with pytest.raises(ConfigError, match=r"coedge\.edge_ghz: expected 3 entries"):
        config_from_dict({"run": coedge, "edges": {"count": 3}, "agents": {"count": 3}})
    with pytest.raises(ConfigError, match=r"run\.slot_mode"):
        config_from_dict({"run": {"slot_mode": "sometimes"}})
