"""A client of EdgeService for agents, the coordinator, benchmarks and tests.

`submit` streams a task's data in chunks of at most 1 MiB (paced to the emulated link
rate when a pacer is given) and always returns an `EdgeTaskResult`: transport failures
become outcomes with a reason (edge_unreachable, timeout), never exceptions, so every
task ends in exactly one recorded outcome.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from testbed import serde
from testbed.daemon import GRPC_OPTIONS
from testbed.links import Pacer
from testbed.messages import (
    EdgeStateSnapshot,
    EdgeTaskRequest,
    EdgeTaskResult,
    EdgeTiming,
    ModelRef,
)
from testbed.rpc.v1 import edge_pb2, edge_pb2_grpc
from testbed.security.credentials import PLAINTEXT, GrpcIdentity
from testbed.types import FailureReason, Outcome

CHUNK_BYTES = 1024 * 1024  # gRPC messages stay well under the 4 MiB default limit


@dataclass(frozen=True)
class Submission:
    """An edge's result plus what the sender measured."""

    result: EdgeTaskResult
    upload_s: float  # header sent -> last chunk handed to gRPC (paced)
    round_trip_s: float  # call start -> reply


@dataclass(frozen=True)
class ModelOp:
    ok: bool
    reason: FailureReason
    detail: str
    timing: EdgeTiming
    state: EdgeStateSnapshot | None


class EdgeClient:
    def __init__(self, address: str, edge_id: str = "", identity: GrpcIdentity = PLAINTEXT) -> None:
        """`identity`: the caller's gRPC credentials; with TLS the channel reaches only
        the edge `edge_id` (testbed/security/credentials.py)."""
        self.address = address
        self.edge_id = edge_id
        self._channel = identity.channel(address, peer_id=edge_id or None, options=GRPC_OPTIONS)
        self._stub = edge_pb2_grpc.EdgeServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(
        self,
        request: EdgeTaskRequest,
        data: bytes,
        *,
        timeout_s: float,
        pacer: Pacer | None = None,
    ) -> Submission:
        upload = {"end": 0.0}
        t0 = time.perf_counter()

        def messages() -> Iterator[edge_pb2.SubmitTaskRequest]:
            yield edge_pb2.SubmitTaskRequest(header=serde.task_header_to_pb(request))
            view = memoryview(data)
            for offset in range(0, len(data), CHUNK_BYTES):
                chunk = view[offset : offset + CHUNK_BYTES]
                if pacer is not None:
                    pacer.wait(len(chunk))
                yield edge_pb2.SubmitTaskRequest(data=bytes(chunk))
            upload["end"] = time.perf_counter()

        try:
            reply = self._stub.SubmitTask(messages(), timeout=timeout_s)
            result = serde.task_result_from_pb(reply)
        except grpc.RpcError as exc:
            result = self._failed(request, exc)
        end = time.perf_counter()
        upload_s = (upload["end"] or end) - t0
        return Submission(result, upload_s, end - t0)

    def _failed(self, request: EdgeTaskRequest, exc: grpc.RpcError) -> EdgeTaskResult:
        code = exc.code() if hasattr(exc, "code") else None
        reason = {
            grpc.StatusCode.DEADLINE_EXCEEDED: FailureReason.TIMEOUT,
            grpc.StatusCode.INVALID_ARGUMENT: FailureReason.INVALID_REQUEST,
            grpc.StatusCode.RESOURCE_EXHAUSTED: FailureReason.INVALID_REQUEST,
        }.get(code, FailureReason.EDGE_UNREACHABLE)  # type: ignore[arg-type]
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return EdgeTaskResult(
            task_id=request.task_id,
            edge_id=self.edge_id,
            outcome=Outcome.FAILED,
            reason=reason,
            detail=f"{code.name if code else 'error'}: {details}",
        )

    def state(self, timeout_s: float = 5.0) -> EdgeStateSnapshot:
        return serde.edge_state_from_pb(
            self._stub.GetState(edge_pb2.GetStateRequest(), timeout=timeout_s)
        )

    def prefetch(self, ref: ModelRef, timeout_s: float = 120.0) -> ModelOp:
        reply = self._stub.PrefetchModel(
            edge_pb2.ModelRequest(model=serde.model_ref_to_pb(ref)), timeout=timeout_s
        )
        return self._op(reply)

    def evict(self, ref: ModelRef, timeout_s: float = 10.0) -> ModelOp:
        reply = self._stub.EvictModel(
            edge_pb2.ModelRequest(model=serde.model_ref_to_pb(ref)), timeout=timeout_s
        )
        return self._op(reply)

    def set_allocation(
        self, shares: dict[str, float], steps: dict[str, int], timeout_s: float = 5.0
    ) -> ModelOp:
        """Replace the edge's compute share and steps per model (docs/share-executor.md)."""
        request = edge_pb2.SetAllocationRequest(compute_share=shares, steps=steps)
        return self._op(self._stub.SetAllocation(request, timeout=timeout_s))

    @staticmethod
    def _op(reply: edge_pb2.ModelOpResult) -> ModelOp:
        return ModelOp(
            ok=reply.ok,
            reason=serde.reason_from_pb(reply.reason) if not reply.ok else FailureReason.NONE,
            detail=reply.detail,
            timing=serde.timing_from_pb(reply.timing),
            state=serde.edge_state_from_pb(reply.state) if reply.HasField("state") else None,
        )
