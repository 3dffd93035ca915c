"""The edge's own estimate of its queued work (docs/live-loop.md, "Clocked slots and
the §B scheduler"): per model, a moving average of the measured compute time per
unit (stretched to the edge's clock, as the task's `compute_ms` is), and from it the
seconds this edge needs to finish everything queued and running — the w_j the §B
schedulers split by, published in the edge's state (`queued_work_s`,
`unit_compute_ms`).

A model not yet run on this edge counts at a prior per unit (`prior_unit_s`, the
cost model's estimate from the catalog; 0 when it has none) until its first task.
The work runs on `parallel_slots` slots at once, so the estimate divides by them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

SMOOTHING = 0.2
"""Weight of the newest measurement in the moving average per unit: a few tasks to
follow a change of load, and one slow task does not swing the estimate."""


@dataclass
class _Pending:
    model_id: str
    units: int
    started_at: float | None = None  # monotonic; None while it waits


class WorkEstimate:
    """Thread-safe: the executor's slots and the gRPC threads call it at once."""

    def __init__(
        self,
        parallel_slots: int,
        prior_unit_s: Callable[[str], float | None] = lambda _model_id: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slots = max(1, parallel_slots)
        self._prior = prior_unit_s
        self._clock = clock
        self._lock = threading.Lock()
        self._unit_s: dict[str, float] = {}
        self._pending: dict[str, _Pending] = {}

    def queued(self, task_id: str, model_id: str, units: int) -> None:
        """A task joined the queue."""
        with self._lock:
            self._pending[task_id] = _Pending(model_id, max(0, units))

    def started(self, task_id: str) -> None:
        """A task's compute started (its model is loaded)."""
        with self._lock:
            pending = self._pending.get(task_id)
            if pending is not None:
                pending.started_at = self._clock()

    def finished(self, task_id: str, units_done: int = 0, compute_s: float = 0.0) -> None:
        """A task ended; `compute_s` over `units_done` > 0 units updates its model's
        average (a failed or cancelled task ends with units_done 0: no measurement)."""
        with self._lock:
            pending = self._pending.pop(task_id, None)
            if pending is None or units_done <= 0 or not compute_s > 0:
                return
            per_unit = compute_s / units_done
            old = self._unit_s.get(pending.model_id)
            self._unit_s[pending.model_id] = (
                per_unit if old is None else old + SMOOTHING * (per_unit - old)
            )

    def unit_compute_ms(self) -> dict[str, float]:
        """Per model id: the moving average of its compute time per unit, in ms."""
        with self._lock:
            return {model: round(s * 1e3, 6) for model, s in self._unit_s.items()}

    def queued_work_s(self) -> float:
        """Seconds to finish every task queued and running: their units at each model's
        time per unit, less what a running task has done already, over the slots."""
        now = self._clock()
        with self._lock:
            total = 0.0
            for pending in self._pending.values():
                per_unit = self._unit_s.get(pending.model_id)
                if per_unit is None:
                    per_unit = self._prior(pending.model_id) or 0.0
                work = pending.units * per_unit
                if pending.started_at is not None:
                    work = max(0.0, work - (now - pending.started_at))
                total += work
        return total / self._slots
