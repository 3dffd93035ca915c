"""A share-aware executor: each model gets a share φ_m of the edge's compute and its
own FIFO (docs/share-executor.md).

It is a **time share, not a hardware partition**: the edge's `parallel_slots` slots run
one task at a time each, as in the FIFO executor (edge_node/executor.py), and the
executor chooses *which model's* task a free slot runs next so that, over time, model m
holds the slots for a fraction φ_m of the time. The quantum is one task (one
`ModelRuntime.run` call: all its batches and denoising steps); a task that has started
is never paused for another model.

The scheduler is start-time fair queueing over models: a model's virtual time
(`pass_s`) grows by the measured slot time of each of its tasks divided by its share,
and a free slot serves the waiting model with the least virtual time. A model that
becomes busy again starts at the current virtual time, so idle time earns no credit.

- `work_conserving` (default): a model without waiting tasks leaves its share to the
  others (they split it in proportion to their shares).
- `strict`: model m never holds more than φ_m of the slots' time: after a task of
  measured time c started at t, it may start the next at t + c/(φ_m·slots) at the
  earliest, and the slots idle if no model may start.

The contract is the FIFO executor's: `submit` answers at once with a future; a full
queue (all models' waiting tasks together) is QUEUE_FULL, shutting down answers every
waiting task SHUTTING_DOWN, `abandon` answers a waiting task CANCELLED at once or asks a
running one to stop; every task ends in exactly one outcome.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from edge_node.executor import FifoExecutor, Handler, Job, JobPhase, Rejecter, SlotExecutor
from testbed.config.bench import EdgeSettings
from testbed.config.edge_executor import EdgeExecutorKind, ShareMode
from testbed.messages import EdgeTaskResult
from testbed.types import FailureReason

FLOOR_SHARE = 0.01
"""The share of a model the table gives none (absent or 0) when the listed models
leave less than this each: its tasks still run (slowly) instead of waiting forever."""

COST_SMOOTHING = 0.2
"""Weight of the newest task in a model's moving average of its task time, the
estimate charged when a task starts (corrected by the measured time when it ends)."""

SHARE_SUM_TOLERANCE = 1e-9


class ShareTableError(ValueError):
    """A share table that breaks φ_m ≥ 0, finite, or Σφ ≤ 1."""


def check_share_table(shares: Mapping[str, float]) -> list[str]:
    """What is wrong with `shares` (empty: nothing)."""
    problems = [
        f"{model_id}: expected a finite share in [0, 1], got {share!r}"
        for model_id, share in shares.items()
        if not (math.isfinite(share) and 0.0 <= share <= 1.0)
    ]
    total = sum(shares.values())
    if not problems and total > 1.0 + SHARE_SUM_TOLERANCE:
        problems.append(f"expected the shares to sum to at most 1, got {total:.6g}")
    return problems


def effective_shares(table: Mapping[str, float], model_ids: list[str]) -> dict[str, float]:
    """The share each of `model_ids` runs at: its entry in `table` when positive; the
    models it gives none split what the listed ones leave (1 − Σφ) equally, each at
    least `FLOOR_SHARE`."""
    unlisted = [m for m in model_ids if table.get(m, 0.0) <= 0.0]
    left = max(0.0, 1.0 - sum(max(0.0, s) for s in table.values()))
    fallback = max(FLOOR_SHARE, left / len(unlisted)) if unlisted else FLOOR_SHARE
    return {m: (table[m] if table.get(m, 0.0) > 0.0 else fallback) for m in model_ids}


@dataclass
class ModelLane:
    """One model's FIFO and its account."""

    model_id: str
    share: float
    waiting: deque[Job] = field(default_factory=deque)
    running: int = 0
    pass_s: float = 0.0
    """Virtual time: slot seconds charged to the model divided by its share."""
    ready_at: float = 0.0
    """`strict`: the clock time before which the model may not start a task."""
    mean_task_s: float = 0.0
    """Moving average of the model's measured task time (0 until one ran)."""
    busy_s: float = 0.0
    """Measured slot seconds the model's tasks held, in all."""
    completed: int = 0

    @property
    def active(self) -> bool:
        return bool(self.waiting) or self.running > 0


@dataclass(frozen=True)
class Turn:
    """A task a slot has taken, and the estimate charged to its model at the start."""

    lane: ModelLane
    job: Job
    estimate_s: float


class ShareExecutor(SlotExecutor):
    def __init__(
        self,
        slots: int,
        capacity: int,
        handler: Handler,
        reject: Rejecter,
        on_change: Callable[[], None] = lambda: None,
        *,
        shares: Mapping[str, float] | None = None,
        mode: ShareMode = ShareMode.WORK_CONSERVING,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`shares`: φ per model id (checked: raises ShareTableError); `clock`: the
        time source of the measured task times and of `strict`'s waits."""
        super().__init__(capacity, handler, reject, on_change)
        self._slots = slots
        self.mode = mode
        self._clock = clock
        self._table: dict[str, float] = {}
        self._lanes: dict[str, ModelLane] = {}
        self._virtual_s = 0.0  # the virtual time of the latest task started
        self.set_shares(shares or {})
        self._workers = [
            threading.Thread(target=self._work, name=f"share-slot-{i}", daemon=True)
            for i in range(slots)
        ]
        for w in self._workers:
            w.start()

    # ------------------------------------------------------------------ shares

    def set_shares(self, shares: Mapping[str, float]) -> None:
        """Replace the share table (models absent from it: `effective_shares`). Tasks
        running keep going; the next choice uses the new shares. Raises
        ShareTableError saying what is wrong, and then changes nothing."""
        problems = check_share_table(shares)
        if problems:
            raise ShareTableError("; ".join(problems))
        with self._lock:
            self._table = {m: float(s) for m, s in shares.items()}
            self._reshare()
            self._lock.notify_all()
        self._on_change()

    def shares(self, models: Iterable[str] = ()) -> dict[str, float]:
        """The share every model with a table entry, a lane or in `models` runs at now."""
        with self._lock:
            known = sorted({*self._table, *self._lanes, *models})
            return effective_shares(self._table, known)

    def busy_s(self) -> dict[str, float]:
        """Measured slot seconds each model with a lane has held so far (a lane
        `_forget_settled` dropped takes its figure with it)."""
        with self._lock:
            return {m: lane.busy_s for m, lane in self._lanes.items()}

    def _reshare(self) -> None:
        for model_id, share in effective_shares(self._table, list(self._lanes)).items():
            self._lanes[model_id].share = share

    def _lane(self, model_id: str) -> ModelLane:
        lane = self._lanes.get(model_id)
        if lane is None:
            lane = self._lanes[model_id] = ModelLane(model_id, FLOOR_SHARE)
            self._reshare()
        return lane

    # ------------------------------------------------------------------ the contract

    def _enqueue(self, job: Job) -> None:
        lane = self._lane(job.request.model.model_id)
        if not lane.active:  # idle time earns no credit
            lane.pass_s = max(lane.pass_s, self._virtual_s)
        lane.waiting.append(job)
        self._lock.notify()

    def _withdraw(self, job: Job) -> None:
        self._lanes[job.request.model.model_id].waiting.remove(job)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Refuse new tasks, answer every waiting one SHUTTING_DOWN, let the running
        ones finish (up to `timeout_s` each slot)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        for w in self._workers:
            w.join(timeout_s)

    # ------------------------------------------------------------------ the slots

    def _next(self, now: float) -> tuple[ModelLane | None, float | None]:
        """The lane a free slot serves now (least virtual time; on a tie the one whose
        head waited longest), or None and how long to wait for a strict lane."""
        best: ModelLane | None = None
        wake: float | None = None
        for lane in self._lanes.values():
            if not lane.waiting:
                continue
            if self.mode is ShareMode.STRICT and lane.ready_at > now:
                wake = lane.ready_at if wake is None else min(wake, lane.ready_at)
                continue
            key = (lane.pass_s, lane.waiting[0].enqueued_at)
            if best is None or key < (best.pass_s, best.waiting[0].enqueued_at):
                best = lane
        return best, (None if best is not None or wake is None else wake - now)

    def _forget_settled(self, now: float) -> None:
        """Drop the lanes a new one would equal: idle, owing no time (virtual, nor real
        under `strict`) and not in the table, so that model ids which come and go do
        not pile up (a request may name any model id). One that comes back starts at
        the current virtual time, as it would have anyway."""
        settled = [
            model_id
            for model_id, lane in self._lanes.items()
            if not lane.active
            and lane.pass_s <= self._virtual_s
            and lane.ready_at <= now
            and model_id not in self._table
        ]
        for model_id in settled:
            del self._lanes[model_id]
        if settled:
            self._reshare()

    def _take(self) -> Turn | list[Job]:
        """Block until a task may start and return its turn; once the executor has
        closed, the tasks still waiting instead (answered SHUTTING_DOWN by the caller;
        the other slots find none left)."""
        with self._lock:
            while not self._closed:
                now = self._clock()
                lane, wait_s = self._next(now)
                if lane is None:
                    self._lock.wait(wait_s)
                    continue
                job = lane.waiting.popleft()
                self._waiting -= 1
                job.phase = JobPhase.RUNNING
                self._running += 1
                lane.running += 1
                estimate_s = lane.mean_task_s
                self._virtual_s = max(self._virtual_s, lane.pass_s)
                lane.pass_s += estimate_s / lane.share
                lane.ready_at = max(lane.ready_at, now) + estimate_s / (lane.share * self._slots)
                self._forget_settled(now)
                return Turn(lane, job, estimate_s)
            drained = [job for lane in self._lanes.values() for job in lane.waiting]
            for lane in self._lanes.values():
                lane.waiting.clear()
            for job in drained:
                job.phase = JobPhase.ABANDONED  # answered without running
            self._waiting -= len(drained)
            return drained

    def _work(self) -> None:
        while True:
            turn = self._take()
            if isinstance(turn, list):  # closed
                for job in turn:
                    job.future.set_result(
                        self._reject(job, FailureReason.SHUTTING_DOWN, "the edge is stopping")
                    )
                if turn:
                    self._on_change()
                return
            queue_ms = (time.perf_counter() - turn.job.enqueued_at) * 1e3
            self._on_change()
            start = self._clock()
            result = self._run(turn.job, queue_ms)
            # the slot time, fetch and load included: what the slot could not give others
            self._charge(turn, self._clock() - start, result)
            turn.job.future.set_result(result)
            self._on_change()

    def _charge(self, turn: Turn, task_s: float, result: EdgeTaskResult) -> None:
        """Replace the estimate charged at the start by the measured `task_s`."""
        lane = turn.lane
        with self._lock:
            correction_s = task_s - turn.estimate_s
            lane.pass_s += correction_s / lane.share
            lane.ready_at += correction_s / (lane.share * self._slots)
            lane.mean_task_s = (
                task_s
                if lane.completed == 0
                else (1 - COST_SMOOTHING) * lane.mean_task_s + COST_SMOOTHING * task_s
            )
            lane.busy_s += task_s
            lane.completed += 1
            lane.running -= 1
            self._running -= 1
            self.completed += 1
            self.cancelled += result.reason is FailureReason.CANCELLED
            self._lock.notify_all()


def make_executor(
    spec: EdgeSettings,
    handler: Handler,
    reject: Rejecter,
    on_change: Callable[[], None] = lambda: None,
) -> FifoExecutor | ShareExecutor:
    """The executor `spec.executor` names, with the edge's slots, queue and shares."""
    if spec.executor is EdgeExecutorKind.SHARES:
        return ShareExecutor(
            spec.parallel_slots, spec.queue_capacity, handler, reject, on_change,
            shares=spec.model_shares, mode=spec.share_mode,
        )  # fmt: skip
    return FifoExecutor(spec.parallel_slots, spec.queue_capacity, handler, reject, on_change)
