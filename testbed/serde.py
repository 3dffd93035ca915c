"""The one place that translates between protobuf messages and domain dataclasses."""

from __future__ import annotations

import dataclasses
from typing import Any

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
from testbed.rpc.v1 import agent_pb2 as agent_pb
from testbed.rpc.v1 import common_pb2 as pb
from testbed.rpc.v1 import edge_pb2 as edge_pb
from testbed.types import EnergyMethod, EnergyPart, FailureReason, Outcome

_OUTCOME_TO_PB = {
    Outcome.COMPLETED: pb.TASK_OUTCOME_COMPLETED,
    Outcome.FAILED: pb.TASK_OUTCOME_FAILED,
}
_OUTCOME_FROM_PB: dict[int, Outcome] = {v: k for k, v in _OUTCOME_TO_PB.items()}

_REASON_TO_PB = {
    r: (
        pb.FAILURE_REASON_UNSPECIFIED
        if r is FailureReason.NONE
        else pb.FailureReason.Value(f"FAILURE_REASON_{r.name}")
    )
    for r in FailureReason
}
_REASON_FROM_PB: dict[int, FailureReason] = {v: k for k, v in _REASON_TO_PB.items()}

_METHOD_TO_PB = {m: pb.EnergyMethod.Value(f"ENERGY_METHOD_{m.name}") for m in EnergyMethod}
_METHOD_FROM_PB = {v: k for k, v in _METHOD_TO_PB.items()}


def outcome_to_pb(outcome: Outcome) -> Any:
    return _OUTCOME_TO_PB[outcome]


def outcome_from_pb(value: int) -> Outcome:
    return _OUTCOME_FROM_PB.get(value, Outcome.FAILED)


def reason_to_pb(reason: FailureReason) -> Any:
    return _REASON_TO_PB[reason]


def reason_from_pb(value: int) -> FailureReason:
    return _REASON_FROM_PB.get(value, FailureReason.INTERNAL)


def energy_to_pb(part: EnergyPart) -> pb.EnergyPart:
    return pb.EnergyPart(part=part.part, energy_j=part.energy_j, method=_METHOD_TO_PB[part.method])


def energy_from_pb(msg: pb.EnergyPart) -> EnergyPart:
    return EnergyPart(msg.part, msg.energy_j, _METHOD_FROM_PB[msg.method])


def model_ref_to_pb(ref: ModelRef) -> pb.ModelRef:
    return pb.ModelRef(model_id=ref.model_id, version=ref.version)


def model_ref_from_pb(msg: pb.ModelRef) -> ModelRef:
    return ModelRef(msg.model_id, msg.version)


_TIMING_FIELDS = tuple(f.name for f in dataclasses.fields(EdgeTiming))


def timing_to_pb(t: EdgeTiming) -> pb.EdgeTiming:
    return pb.EdgeTiming(**{f: getattr(t, f) for f in _TIMING_FIELDS})


def timing_from_pb(msg: pb.EdgeTiming) -> EdgeTiming:
    return EdgeTiming(**{f: getattr(msg, f) for f in _TIMING_FIELDS})


def task_header_to_pb(req: EdgeTaskRequest) -> edge_pb.TaskHeader:
    return edge_pb.TaskHeader(
        task_id=req.task_id,
        agent_id=req.agent_id,
        task_type=req.task_type,
        model=model_ref_to_pb(req.model),
        share=req.share,
        units=req.units,
        steps=req.steps,
        download=req.download,
        data_bytes=req.data_bytes,
        slot=req.slot,
        upload_rate_mbps=req.upload_rate_mbps,
    )


def task_header_from_pb(msg: edge_pb.TaskHeader) -> EdgeTaskRequest:
    return EdgeTaskRequest(
        task_id=msg.task_id,
        agent_id=msg.agent_id,
        task_type=msg.task_type,
        model=model_ref_from_pb(msg.model),
        share=msg.share,
        units=msg.units,
        steps=msg.steps,
        download=msg.download,
        data_bytes=msg.data_bytes,
        slot=msg.slot,
        upload_rate_mbps=msg.upload_rate_mbps,
    )


def task_result_to_pb(r: EdgeTaskResult) -> edge_pb.TaskResult:
    return edge_pb.TaskResult(
        task_id=r.task_id,
        edge_id=r.edge_id,
        outcome=outcome_to_pb(r.outcome),
        reason=reason_to_pb(r.reason),
        detail=r.detail,
        timing=timing_to_pb(r.timing),
        energy=[energy_to_pb(p) for p in r.energy],
        cache_hit=r.cache_hit,
        units_done=r.units_done,
        bytes_fetched=r.bytes_fetched,
        output_sha256=r.output_sha256,
    )


def task_result_from_pb(msg: edge_pb.TaskResult) -> EdgeTaskResult:
    return EdgeTaskResult(
        task_id=msg.task_id,
        edge_id=msg.edge_id,
        outcome=outcome_from_pb(msg.outcome),
        reason=reason_from_pb(msg.reason),
        detail=msg.detail,
        timing=timing_from_pb(msg.timing),
        energy=tuple(energy_from_pb(p) for p in msg.energy),
        cache_hit=msg.cache_hit,
        units_done=msg.units_done,
        bytes_fetched=msg.bytes_fetched,
        output_sha256=msg.output_sha256,
    )


def edge_state_to_pb(s: EdgeStateSnapshot) -> edge_pb.EdgeState:
    c = s.counters
    return edge_pb.EdgeState(
        edge_id=s.edge_id,
        seq=s.seq,
        queue_length=s.queue_length,
        running=s.running,
        cached=[
            edge_pb.CachedModel(
                model=model_ref_to_pb(m.model),
                size_bytes=m.size_bytes,
                in_use=m.in_use,
                last_used_seq=m.last_used_seq,
                compute_share=m.compute_share,
                steps=m.steps,
            )
            for m in s.cached
        ],
        cache_used_bytes=s.cache_used_bytes,
        cache_capacity_bytes=s.cache_capacity_bytes,
        counters=edge_pb.CacheCounters(
            hits=c.hits,
            misses=c.misses,
            evictions=c.evictions,
            fetches=c.fetches,
            bytes_fetched=c.bytes_fetched,
            checksum_failures=c.checksum_failures,
            rejected_missing=c.rejected_missing,
        ),
        cpu_ghz=s.cpu_ghz,
        position=pb.Position(x_m=s.position_m[0], y_m=s.position_m[1]),
        runtime=s.runtime,
        address=s.address,
        uplink_capacity_mbps=s.uplink_capacity_mbps,
        timestamp_unix_s=s.timestamp_unix_s,
    )


def edge_state_from_pb(msg: edge_pb.EdgeState) -> EdgeStateSnapshot:
    c = msg.counters
    return EdgeStateSnapshot(
        edge_id=msg.edge_id,
        seq=msg.seq,
        queue_length=msg.queue_length,
        running=msg.running,
        cached=tuple(
            CachedModelInfo(
                model=model_ref_from_pb(m.model),
                size_bytes=m.size_bytes,
                in_use=m.in_use,
                last_used_seq=m.last_used_seq,
                compute_share=m.compute_share,
                steps=m.steps,
            )
            for m in msg.cached
        ),
        cache_used_bytes=msg.cache_used_bytes,
        cache_capacity_bytes=msg.cache_capacity_bytes,
        counters=CacheCounters(
            hits=c.hits,
            misses=c.misses,
            evictions=c.evictions,
            fetches=c.fetches,
            bytes_fetched=c.bytes_fetched,
            checksum_failures=c.checksum_failures,
            rejected_missing=c.rejected_missing,
        ),
        cpu_ghz=msg.cpu_ghz,
        position_m=(msg.position.x_m, msg.position.y_m),
        runtime=msg.runtime,
        address=msg.address,
        uplink_capacity_mbps=msg.uplink_capacity_mbps,
        timestamp_unix_s=msg.timestamp_unix_s,
    )


_RECORD_SCALARS = (
    "task_id", "agent_id", "slot", "served_slot", "task_type", "model_id", "size_mbit",
    "density_cycles_per_bit", "deadline_s", "units", "steps", "edge_id", "share", "download",
    "detail", "latency_ms", "t_local_ms", "t_tx_ms", "t_switch_ms", "t_edge_queue_ms",
    "t_edge_compute_ms", "t_agent_queue_ms", "cache_hit", "local_units", "edge_units",
)  # fmt: skip


def task_record_to_pb(r: TaskRecord) -> agent_pb.TaskRecord:
    timing = EdgeTiming(
        fetch_ms=r.fetch_ms, verify_ms=r.verify_ms, load_ms=r.load_ms, warmup_ms=r.warmup_ms,
        queue_ms=r.t_edge_queue_ms, compute_ms=r.t_edge_compute_ms,
    )  # fmt: skip
    return agent_pb.TaskRecord(
        **{name: getattr(r, name) for name in _RECORD_SCALARS},
        outcome=outcome_to_pb(r.outcome),
        reason=reason_to_pb(r.reason),
        edge_timing=timing_to_pb(timing),
        energy=[energy_to_pb(p) for p in r.energy],
        targets=[pb.TargetShare(edge_id=r.edge_id, share=r.share)] if r.edge_id else [],
    )


def task_record_from_pb(msg: agent_pb.TaskRecord) -> TaskRecord:
    t = msg.edge_timing
    return TaskRecord(
        **{name: getattr(msg, name) for name in _RECORD_SCALARS},
        outcome=outcome_from_pb(msg.outcome),
        reason=reason_from_pb(msg.reason),
        fetch_ms=t.fetch_ms,
        verify_ms=t.verify_ms,
        load_ms=t.load_ms,
        warmup_ms=t.warmup_ms,
        energy=[energy_from_pb(p) for p in msg.energy],
    )
