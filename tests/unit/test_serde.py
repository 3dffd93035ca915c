"""testbed/serde.py: every domain message survives protobuf and back, field by field."""

from __future__ import annotations

import dataclasses

import pytest

from testbed import serde
from testbed.messages import (
    CacheCounters,
    CachedModelInfo,
    EdgeStateSnapshot,
    EdgeTaskRequest,
    EdgeTaskResult,
    EdgeTiming,
    ModelRef,
    TaskRecord,
)
from testbed.rpc.v1 import edge_pb2
from testbed.types import EnergyMethod, EnergyPart, FailureReason, Outcome


def test_header_round_trip() -> None:
    header = EdgeTaskRequest(
        task_id="agent-1/7", model=ModelRef("ddpm-s", "2"), units=12, download=True,
        agent_id="agent-1", task_type="trajectory", share=0.25, steps=40, data_bytes=4096,
        slot=7, upload_rate_mbps=12.5,
    )  # fmt: skip
    assert serde.task_header_from_pb(serde.task_header_to_pb(header)) == header


def test_result_round_trip() -> None:
    result = EdgeTaskResult(
        task_id="agent-1/7", edge_id="edge-2", outcome=Outcome.FAILED,
        reason=FailureReason.CHECKSUM_MISMATCH, detail="sha256 differs",
        timing=EdgeTiming(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 28.0),
        energy=(EnergyPart("edge_compute", 0.5, EnergyMethod.NVML_COUNTER),),
        cache_hit=True, units_done=3, bytes_fetched=1 << 20, output_sha256=b"\x01" * 32,
    )  # fmt: skip
    assert serde.task_result_from_pb(serde.task_result_to_pb(result)) == result


def test_state_round_trip() -> None:
    state = EdgeStateSnapshot(
        edge_id="edge-0", seq=9, queue_length=2, running=1,
        cached=(CachedModelInfo(ModelRef("cgan-s", "1"), 1000, True, 4, 0.5, 20),),
        cache_used_bytes=1000, cache_capacity_bytes=5000,
        counters=CacheCounters(1, 2, 3, 4, 5, 6, 7), cpu_ghz=7.0, position_m=(10.0, -5.0),
        runtime="CPUExecutionProvider", address="127.0.0.1:5000", uplink_capacity_mbps=100.0,
        timestamp_unix_s=1.5e9,
    )  # fmt: skip
    assert serde.edge_state_from_pb(serde.edge_state_to_pb(state)) == state


def test_record_round_trip_keeps_every_field_but_the_reward() -> None:
    names = [f.name for f in dataclasses.fields(TaskRecord)]
    record = TaskRecord(
        task_id="agent-0/3", agent_id="agent-0", slot=3, task_type="k", model_id="m",
        size_mbit=2.0, density_cycles_per_bit=100.0, deadline_s=1.5, units=4,
        outcome=Outcome.COMPLETED, edge_id="edge-1", share=0.5, download=True,
        energy=[EnergyPart("tx", 0.1, EnergyMethod.MODELED)],
    )  # fmt: skip
    for i, name in enumerate(names):  # a distinct value in every plain number field
        if isinstance(getattr(record, name), float) and name not in ("share", "reward"):
            setattr(record, name, 10.0 + i)
    back = serde.task_record_from_pb(serde.task_record_to_pb(record))
    assert back == record  # reward is 0 on both sides: it is the coordinator's


def test_a_field_missing_on_the_wire_fails_at_import() -> None:
    @dataclasses.dataclass
    class Grown:
        edge_id: str
        new_field: int

    with pytest.raises(TypeError, match="new_field"):
        serde._same_names(Grown, edge_pb2.EdgeState)
