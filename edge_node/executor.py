"""A FIFO executor: tasks start in arrival order on a fixed number of slots.

`submit` answers at once with a future; a full queue is an immediate QUEUE_FULL
result, and shutting down answers every waiting task with SHUTTING_DOWN, so each task
ends in exactly one outcome.
"""

from __future__ import annotations

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


@dataclass
class Job:
    request: EdgeTaskRequest
    data: bytes
    receive_ms: float
    accepted_at: float = field(default_factory=time.perf_counter)  # header received
    enqueued_at: float = field(default_factory=time.perf_counter)
    future: Future[EdgeTaskResult] = field(default_factory=Future)


Handler = Callable[[Job, float], EdgeTaskResult]  # (job, queue_ms) -> result
Rejecter = Callable[[Job, FailureReason, str], EdgeTaskResult]


class FifoExecutor:
    def __init__(
        self,
        slots: int,
        capacity: int,
        handler: Handler,
        reject: Rejecter,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._capacity = capacity
        self._handler = handler
        self._reject = reject
        self._on_change = on_change
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = 0
        self._closed = False
        self.completed = 0
        self._workers = [
            threading.Thread(target=self._work, name=f"slot-{i}", daemon=True) for i in range(slots)
        ]
        for w in self._workers:
            w.start()

    @property
    def queue_length(self) -> int:
        return self._waiting

    @property
    def running(self) -> int:
        return self._running

    def submit(self, job: Job) -> Future[EdgeTaskResult]:
        with self._lock:
            if self._closed:
                reason, detail = FailureReason.SHUTTING_DOWN, "the edge is stopping"
            elif self._waiting >= self._capacity:
                reason, detail = FailureReason.QUEUE_FULL, f"{self._waiting} tasks waiting"
            else:
                self._waiting += 1
                job.enqueued_at = time.perf_counter()
                self._queue.put(job)
                reason = None
        if reason is not None:
            job.future.set_result(self._reject(job, reason, detail))
        else:
            self._on_change()
        return job.future

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._waiting -= 1
                if self._closed:
                    job.future.set_result(
                        self._reject(job, FailureReason.SHUTTING_DOWN, "the edge is stopping")
                    )
                    continue
                self._running += 1
            queue_ms = (time.perf_counter() - job.enqueued_at) * 1e3
            self._on_change()
            try:
                result = self._handler(job, queue_ms)
            except Exception as exc:  # the handler maps known failures; this is a bug
                log.exception("task %s failed unexpectedly", job.request.task_id)
                result = self._reject(job, FailureReason.INTERNAL, repr(exc))
            with self._lock:
                self._running -= 1
                self.completed += 1
            job.future.set_result(result)
            self._on_change()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._closed = True
        for _ in self._workers:
            self._queue.put(None)
        for w in self._workers:
            w.join(timeout_s)
