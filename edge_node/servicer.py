"""The EdgeService gRPC servicer: unpack, call the node, pack. Nothing else."""

from __future__ import annotations

import time

import grpc

from edge_node.node import EdgeNode
from testbed import serde
from testbed.rpc.v1 import edge_pb2, edge_pb2_grpc
from testbed.types import TestbedError


class EdgeServicer(edge_pb2_grpc.EdgeServiceServicer):
    def __init__(self, node: EdgeNode) -> None:
        self._node = node

    def SubmitTask(self, request_iterator, context: grpc.ServicerContext) -> edge_pb2.TaskResult:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a header")
            raise AssertionError("unreachable: abort raises")
        accepted_at = time.perf_counter()
        request = serde.task_header_from_pb(first.header)
        parts = [msg.data for msg in request_iterator if msg.WhichOneof("part") == "data"]
        receive_ms = (time.perf_counter() - accepted_at) * 1e3
        future = self._node.submit(request, b"".join(parts), receive_ms, accepted_at)
        while True:  # stop waiting if the caller has gone (its deadline passed)
            try:
                return serde.task_result_to_pb(future.result(timeout=1.0))
            except TimeoutError:
                if not context.is_active():
                    context.abort(grpc.StatusCode.CANCELLED, "the caller went away")

    def GetState(self, request, context) -> edge_pb2.EdgeState:
        return serde.edge_state_to_pb(self._node.snapshot())

    def PrefetchModel(self, request: edge_pb2.ModelRequest, context) -> edge_pb2.ModelOpResult:
        ref = serde.model_ref_from_pb(request.model)
        try:
            timing = self._node.prefetch(ref)
        except TestbedError as exc:
            return self._op(False, exc)
        return edge_pb2.ModelOpResult(
            ok=True,
            timing=serde.timing_to_pb(timing),
            state=serde.edge_state_to_pb(self._node.snapshot()),
        )

    def EvictModel(self, request: edge_pb2.ModelRequest, context) -> edge_pb2.ModelOpResult:
        try:
            self._node.evict(serde.model_ref_from_pb(request.model))
        except TestbedError as exc:
            return self._op(False, exc)
        return edge_pb2.ModelOpResult(ok=True, state=serde.edge_state_to_pb(self._node.snapshot()))

    def _op(self, ok: bool, exc: TestbedError) -> edge_pb2.ModelOpResult:
        return edge_pb2.ModelOpResult(
            ok=ok,
            reason=serde.reason_to_pb(exc.reason),
            detail=exc.detail,
            state=serde.edge_state_to_pb(self._node.snapshot()),
        )
