"""The edge's FIFO executor: order, capacity, shutdown — one outcome per task."""

from __future__ import annotations

import threading
import time

from edge_node.executor import FifoExecutor, Job
from testbed.messages import EdgeTaskRequest, EdgeTaskResult, ModelRef
from testbed.types import FailureReason, Outcome


def _job(i: int) -> Job:
    return Job(EdgeTaskRequest(f"t{i}", ModelRef("m"), 1, True), b"", 0.0)


def _result(job: Job, outcome=Outcome.COMPLETED, reason=FailureReason.NONE) -> EdgeTaskResult:
    return EdgeTaskResult(job.request.task_id, "e", outcome, reason)


def test_tasks_start_in_arrival_order() -> None:
    started: list[str] = []
    gate = threading.Event()

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        gate.wait(5)
        started.append(job.request.task_id)
        return _result(job)

    ex = FifoExecutor(1, 100, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    futures = [ex.submit(_job(i)) for i in range(20)]
    gate.set()
    assert all(f.result(5).outcome is Outcome.COMPLETED for f in futures)
    assert started == [f"t{i}" for i in range(20)]
    ex.shutdown()


def test_full_queue_and_shutdown_answer_every_task() -> None:
    gate = threading.Event()

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        gate.wait(5)
        return _result(job)

    ex = FifoExecutor(1, 2, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    running = ex.submit(_job(0))
    time.sleep(0.1)  # t0 is running, the queue is empty
    waiting = [ex.submit(_job(i)) for i in (1, 2)]
    rejected = ex.submit(_job(3))
    assert rejected.result(1).reason is FailureReason.QUEUE_FULL
    stopper = threading.Thread(target=ex.shutdown)
    stopper.start()
    time.sleep(0.1)
    gate.set()
    stopper.join(5)
    assert running.result(1).outcome is Outcome.COMPLETED
    assert [w.result(1).reason for w in waiting] == [FailureReason.SHUTTING_DOWN] * 2
    assert ex.submit(_job(9)).result(1).reason is FailureReason.SHUTTING_DOWN


def test_handler_bug_is_an_internal_outcome() -> None:
    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        raise RuntimeError("boom")

    ex = FifoExecutor(1, 4, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    assert ex.submit(_job(0)).result(5).reason is FailureReason.INTERNAL
    ex.shutdown()
