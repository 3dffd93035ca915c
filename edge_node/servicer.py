"""The EdgeService gRPC servicer: unpack, call the node, pack. Nothing else.

SubmitTask refuses a bad request with INVALID_ARGUMENT saying what was wrong: a first
message that is not a header, a header outside the edge's bounds or with a task id
already in progress (edge_node/validation.py, checked before any data is read), a second
header, more data than announced (the stream is aborted there, nothing more is read)
or less. When the caller goes away (cancelled, deadline passed) the task is abandoned.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import NoReturn

import grpc

from edge_node.node import EdgeNode
from edge_node.validation import InvalidTaskRequest
from testbed import serde
from testbed.messages import EdgeTaskRequest
from testbed.rpc.v1 import edge_pb2, edge_pb2_grpc
from testbed.types import TestbedError


class EdgeServicer(edge_pb2_grpc.EdgeServiceServicer):
    def __init__(self, node: EdgeNode) -> None:
        self._node = node

    def SubmitTask(self, request_iterator, context: grpc.ServicerContext) -> edge_pb2.TaskResult:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            _refuse(context, "the first message must be a header")
        accepted_at = time.perf_counter()
        request = serde.task_header_from_pb(first.header)
        try:
            self._node.admit(request)
        except InvalidTaskRequest as exc:
            _refuse(context, str(exc))
        submitted = False
        try:
            data = read_task_data(request_iterator, request)
            receive_ms = (time.perf_counter() - accepted_at) * 1e3
            left_s = context.time_remaining()
            deadline = None if left_s is None else time.monotonic() + left_s
            job = self._node.submit(request, data, receive_ms, accepted_at, deadline)
            submitted = True
        except InvalidTaskRequest as exc:
            _refuse(context, str(exc))
        finally:
            if not submitted:
                self._node.release(request.task_id)
        if not context.add_callback(lambda: self._node.abandon(job, "the caller went away")):
            self._node.abandon(job, "the caller went away")  # it had already
        return serde.task_result_to_pb(job.future.result())

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

    def SetAllocation(
        self, request: edge_pb2.SetAllocationRequest, context
    ) -> edge_pb2.ModelOpResult:
        try:
            self._node.allocation.set(dict(request.compute_share), dict(request.steps))
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


def read_task_data(
    messages: Iterator[edge_pb2.SubmitTaskRequest], request: EdgeTaskRequest
) -> bytes:
    """The data that follows a header: exactly `request.data_bytes` bytes, read no
    further than that. Raises InvalidTaskRequest on a second header or a wrong amount."""
    announced = request.data_bytes
    data = bytearray()
    for message in messages:
        part = message.WhichOneof("part")
        if part == "header":
            raise InvalidTaskRequest("a second header on one stream")
        if part == "data":
            if len(data) + len(message.data) > announced:
                raise InvalidTaskRequest(f"more data than the {announced} bytes announced")
            data += message.data
    if len(data) != announced:
        raise InvalidTaskRequest(f"header announced {announced} bytes, {len(data)} arrived")
    return bytes(data)


def _refuse(context: grpc.ServicerContext, detail: str) -> NoReturn:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, detail)
    raise AssertionError("unreachable: abort raises")
