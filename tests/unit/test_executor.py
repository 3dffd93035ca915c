"""The edge's FIFO executor: order, capacity, shutdown — one outcome per task."""

from __future__ import annotations

import threading

from edge_node.executor import FifoExecutor, Job
from testbed.messages import EdgeTaskRequest, EdgeTaskResult, ModelRef
from testbed.types import FailureReason, Outcome
from tests.waiting import WAIT_S, wait_until


def _job(i: int) -> Job:
    return Job(EdgeTaskRequest(f"t{i}", ModelRef("m"), 1, True), b"", 0.0)


def _result(job: Job, outcome=Outcome.COMPLETED, reason=FailureReason.NONE) -> EdgeTaskResult:
    return EdgeTaskResult(job.request.task_id, "e", outcome, reason)


def test_tasks_start_in_arrival_order() -> None:
    started: list[str] = []
    gate = threading.Event()

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        gate.wait(WAIT_S)
        started.append(job.request.task_id)
        return _result(job)

    ex = FifoExecutor(1, 100, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    futures = [ex.submit(_job(i)) for i in range(20)]
    gate.set()
    assert all(f.result(WAIT_S).outcome is Outcome.COMPLETED for f in futures)
    assert started == [f"t{i}" for i in range(20)]
    ex.shutdown()


def test_full_queue_and_shutdown_answer_every_task() -> None:
    gate = threading.Event()
    started = threading.Event()

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        started.set()
        gate.wait(WAIT_S)
        return _result(job)

    def answer(job: Job) -> FailureReason:
        return ex.submit(job).result(WAIT_S).reason

    ex = FifoExecutor(1, 2, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    running = ex.submit(_job(0))
    assert started.wait(WAIT_S)  # t0 is running, the queue is empty
    waiting = [ex.submit(_job(i)) for i in (1, 2)]
    assert answer(_job(3)) is FailureReason.QUEUE_FULL
    stopper = threading.Thread(target=ex.shutdown)
    stopper.start()
    # the executor has closed once a new task is refused for shutting down, not for a
    # full queue; only then may t0 finish, or its slot would take t1 first
    assert wait_until(lambda: answer(_job(8)) is FailureReason.SHUTTING_DOWN)
    gate.set()
    stopper.join(WAIT_S)
    assert not stopper.is_alive()
    assert running.result(WAIT_S).outcome is Outcome.COMPLETED
    assert [w.result(WAIT_S).reason for w in waiting] == [FailureReason.SHUTTING_DOWN] * 2
    assert answer(_job(9)) is FailureReason.SHUTTING_DOWN


def test_handler_bug_is_an_internal_outcome() -> None:
    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        raise RuntimeError("boom")

    ex = FifoExecutor(1, 4, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    assert ex.submit(_job(0)).result(WAIT_S).reason is FailureReason.INTERNAL
    ex.shutdown()


def test_a_waiting_task_whose_caller_left_is_answered_at_once() -> None:
    gate = threading.Event()
    started: list[str] = []

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        started.append(job.request.task_id)
        gate.wait(WAIT_S)
        return _result(job)

    ex = FifoExecutor(1, 8, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    running = ex.submit(_job(0))
    assert wait_until(lambda: ex.running == 1)
    waiting, gone = _job(1), _job(2)
    ex.submit(waiting)
    ex.submit(gone)
    ex.abandon(gone, "the caller cancelled")
    assert gone.future.result(WAIT_S).reason is FailureReason.CANCELLED  # not behind t0
    assert ex.queue_length == 1 and ex.cancelled == 1
    gate.set()
    assert running.result(WAIT_S).outcome is Outcome.COMPLETED
    assert waiting.future.result(WAIT_S).outcome is Outcome.COMPLETED
    assert started == ["t0", "t1"]  # the abandoned task never ran
    ex.shutdown()


def test_a_running_task_is_asked_to_stop_and_its_slot_freed() -> None:
    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        while not job.should_stop():  # a run checks between invocations
            threading.Event().wait(0.001)
        return _result(job, Outcome.FAILED, FailureReason.CANCELLED)

    ex = FifoExecutor(1, 8, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    long = _job(0)
    ex.submit(long)
    assert wait_until(lambda: ex.running == 1)
    ex.abandon(long, "the caller's deadline passed")
    assert long.future.result(WAIT_S).reason is FailureReason.CANCELLED
    assert "deadline" in long.stop_reason
    assert ex.cancelled == 1
    ex.shutdown()


def test_a_task_whose_deadline_passed_in_the_queue_does_not_run() -> None:
    ran: list[str] = []

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        ran.append(job.request.task_id)
        return _result(job)

    ex = FifoExecutor(1, 8, handler, lambda j, r, d: _result(j, Outcome.FAILED, r))
    late = _job(0)
    late.deadline = 0.0  # monotonic time long past
    assert ex.submit(late).result(WAIT_S).reason is FailureReason.CANCELLED
    assert not ran and ex.cancelled == 1
    ex.shutdown()
