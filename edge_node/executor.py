"""A FIFO executor: tasks start in arrival order on a fixed number of slots.

`submit` answers at once with a future; a full queue is an immediate QUEUE_FULL
result, and shutting down answers every waiting task with SHUTTING_DOWN, so each task
ends in exactly one outcome.

A task whose caller has gone (it cancelled, or its deadline passed) is `abandon`ed: one
still waiting is answered CANCELLED at once and never runs; a running one is asked to
stop, and its handler ends it at the next invocation boundary (`Job.should_stop`), so
no caller that left keeps a slot busy.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from testbed.messages import EdgeTaskRequest, EdgeTaskResult
from testbed.types import FailureReason

log = logging.getLogger(__name__)


class JobPhase(enum.Enum):
    NEW = "new"
    WAITING = "waiting"
    RUNNING = "running"
    ABANDONED = "abandoned"  # answered CANCELLED while it waited; never runs


@dataclass
class Job:
    request: EdgeTaskRequest
    data: bytes
    receive_ms: float
    accepted_at: float = field(default_factory=time.perf_counter)  # header received
    enqueued_at: float = field(default_factory=time.perf_counter)
    future: Future[EdgeTaskResult] = field(default_factory=Future)
    deadline: float | None = None
    """The caller's deadline on the `time.monotonic` clock (None: it set none)."""
    phase: JobPhase = JobPhase.NEW
    stop_reason: str = ""
    """Why the task was asked to stop (the caller cancelled, ...); "" while it was not."""
    _stop: threading.Event = field(default_factory=threading.Event)

    def ask_to_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def should_stop(self) -> bool:
        """Whether the task's caller has gone: it cancelled, or its deadline passed."""
        deadline = self.deadline
        if not self._stop.is_set() and deadline is not None and time.monotonic() >= deadline:
            self.ask_to_stop("the caller's deadline passed")
        return self._stop.is_set()


Handler = Callable[[Job, float], EdgeTaskResult]  # (job, queue_ms) -> result
Rejecter = Callable[[Job, FailureReason, str], EdgeTaskResult]


class SlotExecutor:
    """What every edge executor shares (this FIFO one, edge_node/share_executor.py): the
    queue's bound, the counters, `submit`, `abandon` and the run of one task, so each task
    ends in exactly one outcome whatever the order. A subclass says where a waiting task
    goes (`_enqueue`) and how an abandoned one leaves it (`_withdraw`), both under the
    lock, and runs its own slots."""

    def __init__(
        self,
        capacity: int,
        handler: Handler,
        reject: Rejecter,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._capacity = capacity
        self._handler = handler
        self._reject = reject
        self._on_change = on_change
        self._lock = threading.Condition(threading.Lock())  # never taken twice by one thread
        self._waiting = 0
        self._running = 0
        self._closed = False
        self.completed = 0
        self.cancelled = 0

    @property
    def queue_length(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    def _enqueue(self, job: Job) -> None:
        raise NotImplementedError

    def _withdraw(self, job: Job) -> None:
        """Take an abandoned waiting `job` out of the queue (default: leave it there; the
        slot that meets it skips it)."""

    def submit(self, job: Job) -> Future[EdgeTaskResult]:
        with self._lock:
            if self._closed:
                reason, detail = FailureReason.SHUTTING_DOWN, "the edge is stopping"
            elif self._waiting >= self._capacity:
                reason, detail = FailureReason.QUEUE_FULL, f"{self._waiting} tasks waiting"
            else:
                self._waiting += 1
                job.enqueued_at = time.perf_counter()
                job.phase = JobPhase.WAITING
                self._enqueue(job)
                reason = None
        if reason is not None:
            job.future.set_result(self._reject(job, reason, detail))
        else:
            self._on_change()
        return job.future

    def abandon(self, job: Job, reason: str) -> None:
        """The caller of `job` has gone: answer it CANCELLED now if it is still
        waiting, else ask it to stop at its next invocation boundary."""
        job.ask_to_stop(reason)
        with self._lock:
            if job.phase is not JobPhase.WAITING:
                return
            self._withdraw(job)
            job.phase = JobPhase.ABANDONED
            self._waiting -= 1
            self.cancelled += 1
        job.future.set_result(self._reject(job, FailureReason.CANCELLED, reason))
        self._on_change()

    def _run(self, job: Job, queue_ms: float) -> EdgeTaskResult:
        if job.should_stop():  # its caller left while it waited
            return self._reject(job, FailureReason.CANCELLED, job.stop_reason)
        try:
            return self._handler(job, queue_ms)
        except Exception as exc:  # the handler maps known failures; this is a bug
            log.exception("task %s failed unexpectedly", job.request.task_id)
            return self._reject(job, FailureReason.INTERNAL, repr(exc))


class FifoExecutor(SlotExecutor):
    def __init__(
        self,
        slots: int,
        capacity: int,
        handler: Handler,
        reject: Rejecter,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(capacity, handler, reject, on_change)
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._workers = [
            threading.Thread(target=self._work, name=f"slot-{i}", daemon=True) for i in range(slots)
        ]
        for w in self._workers:
            w.start()

    def _enqueue(self, job: Job) -> None:
        self._queue.put(job)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.phase is JobPhase.ABANDONED:
                    continue  # answered already, and no longer counted as waiting
                self._waiting -= 1
                if self._closed:
                    job.future.set_result(
                        self._reject(job, FailureReason.SHUTTING_DOWN, "the edge is stopping")
                    )
                    continue
                job.phase = JobPhase.RUNNING
                self._running += 1
            queue_ms = (time.perf_counter() - job.enqueued_at) * 1e3
            self._on_change()
            result = self._run(job, queue_ms)
            with self._lock:
                self._running -= 1
                self.completed += 1
                self.cancelled += result.reason is FailureReason.CANCELLED
            job.future.set_result(result)
            self._on_change()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._closed = True
        for _ in self._workers:
            self._queue.put(None)
        for w in self._workers:
            w.join(timeout_s)
