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
    ShareResult,
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


def _same_names(
    cls: type, message: Any, *, special: tuple[str, ...] = (), local: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The fields that `cls` and the protobuf `message` share by name, copied as they are.
    Every field of `cls` must be one of those, converted by hand (`special`), or kept
    off the wire (`local`): a field added to a dataclass and not to the message fails
    here, at import, instead of vanishing on the wire."""
    on_wire = set(message.DESCRIPTOR.fields_by_name)
    names = tuple(f.name for f in dataclasses.fields(cls))
    unmapped = [n for n in names if n not in on_wire and n not in special and n not in local]
    if unmapped:
        raise TypeError(f"{cls.__name__} fields not on {message.DESCRIPTOR.name}: {unmapped}")
    return tuple(n for n in names if n in on_wire and n not in special)


def _copy(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in names}


_TIMING = _same_names(EdgeTiming, pb.EdgeTiming)
_HEADER = _same_names(EdgeTaskRequest, edge_pb.TaskHeader, special=("model",))
_RESULT = _same_names(
    EdgeTaskResult, edge_pb.TaskResult, special=("outcome", "reason", "timing", "energy")
)
_CACHED = _same_names(CachedModelInfo, edge_pb.CachedModel, special=("model",))
_COUNTERS = _same_names(CacheCounters, edge_pb.CacheCounters)
_STATE = _same_names(
    EdgeStateSnapshot,
    edge_pb.EdgeState,
    special=("cached", "counters", "position_m", "unit_compute_ms"),
)
_RECORD = _same_names(
    TaskRecord,
    agent_pb.TaskRecord,
    special=("outcome", "reason", "energy"),
    # the edge's switch parts travel in `edge_timing`; the reward is the coordinator's;
    # the shares travel as `targets`
    local=("fetch_ms", "verify_ms", "load_ms", "warmup_ms", "reward", "shares"),
)
_SHARE = _same_names(ShareResult, pb.TargetShare, special=("outcome", "reason"))


def timing_to_pb(t: EdgeTiming) -> pb.EdgeTiming:
    return pb.EdgeTiming(**_copy(t, _TIMING))


def timing_from_pb(msg: pb.EdgeTiming) -> EdgeTiming:
    return EdgeTiming(**_copy(msg, _TIMING))


def task_header_to_pb(req: EdgeTaskRequest) -> edge_pb.TaskHeader:
    return edge_pb.TaskHeader(**_copy(req, _HEADER), model=model_ref_to_pb(req.model))


def task_header_from_pb(msg: edge_pb.TaskHeader) -> EdgeTaskRequest:
    return EdgeTaskRequest(**_copy(msg, _HEADER), model=model_ref_from_pb(msg.model))


def task_result_to_pb(r: EdgeTaskResult) -> edge_pb.TaskResult:
    return edge_pb.TaskResult(
        **_copy(r, _RESULT),
        outcome=outcome_to_pb(r.outcome),
        reason=reason_to_pb(r.reason),
        timing=timing_to_pb(r.timing),
        energy=[energy_to_pb(p) for p in r.energy],
    )


def task_result_from_pb(msg: edge_pb.TaskResult) -> EdgeTaskResult:
    return EdgeTaskResult(
        **_copy(msg, _RESULT),
        outcome=outcome_from_pb(msg.outcome),
        reason=reason_from_pb(msg.reason),
        timing=timing_from_pb(msg.timing),
        energy=tuple(energy_from_pb(p) for p in msg.energy),
    )


def edge_state_to_pb(s: EdgeStateSnapshot) -> edge_pb.EdgeState:
    return edge_pb.EdgeState(
        **_copy(s, _STATE),
        cached=[
            edge_pb.CachedModel(**_copy(m, _CACHED), model=model_ref_to_pb(m.model))
            for m in s.cached
        ],
        counters=edge_pb.CacheCounters(**_copy(s.counters, _COUNTERS)),
        position=pb.Position(x_m=s.position_m[0], y_m=s.position_m[1]),
        unit_compute_ms=s.unit_compute_ms,
    )


def edge_state_from_pb(msg: edge_pb.EdgeState) -> EdgeStateSnapshot:
    return EdgeStateSnapshot(
        **_copy(msg, _STATE),
        cached=tuple(
            CachedModelInfo(**_copy(m, _CACHED), model=model_ref_from_pb(m.model))
            for m in msg.cached
        ),
        counters=CacheCounters(**_copy(msg.counters, _COUNTERS)),
        position_m=(msg.position.x_m, msg.position.y_m),
        unit_compute_ms=dict(msg.unit_compute_ms),
    )


def share_to_pb(s: ShareResult) -> pb.TargetShare:
    return pb.TargetShare(
        **_copy(s, _SHARE), outcome=outcome_to_pb(s.outcome), reason=reason_to_pb(s.reason)
    )


def share_from_pb(msg: pb.TargetShare) -> ShareResult:
    return ShareResult(
        **_copy(msg, _SHARE),
        outcome=outcome_from_pb(msg.outcome),
        reason=reason_from_pb(msg.reason),
    )


def _targets(r: TaskRecord) -> list[pb.TargetShare]:
    """A §B record's shares, each with its result; a MATO record's one edge and share."""
    if r.shares:
        return [share_to_pb(s) for s in r.shares]
    return [pb.TargetShare(edge_id=r.edge_id, share=r.share)] if r.edge_id else []


def task_record_to_pb(r: TaskRecord) -> agent_pb.TaskRecord:
    timing = EdgeTiming(
        fetch_ms=r.fetch_ms, verify_ms=r.verify_ms, load_ms=r.load_ms, warmup_ms=r.warmup_ms,
        queue_ms=r.t_edge_queue_ms, compute_ms=r.t_edge_compute_ms,
    )  # fmt: skip
    return agent_pb.TaskRecord(
        **_copy(r, _RECORD),
        outcome=outcome_to_pb(r.outcome),
        reason=reason_to_pb(r.reason),
        edge_timing=timing_to_pb(timing),
        energy=[energy_to_pb(p) for p in r.energy],
        targets=_targets(r),
    )


def task_record_from_pb(msg: agent_pb.TaskRecord) -> TaskRecord:
    t = msg.edge_timing
    return TaskRecord(
        **_copy(msg, _RECORD),
        outcome=outcome_from_pb(msg.outcome),
        reason=reason_from_pb(msg.reason),
        fetch_ms=t.fetch_ms,
        verify_ms=t.verify_ms,
        load_ms=t.load_ms,
        warmup_ms=t.warmup_ms,
        energy=[energy_from_pb(p) for p in msg.energy],
        # a §B share always has an outcome; a MATO target never does
        shares=[share_from_pb(t) for t in msg.targets if t.outcome != pb.TASK_OUTCOME_UNSPECIFIED],
    )
