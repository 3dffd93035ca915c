"""What the edge runs each model with: its compute share φ_m (a share executor,
edge_node/share_executor.py) and its denoising steps k_m (docs/share-executor.md).

Both start from the edge's config (`edges.model_shares`, `edges.model_steps`) and are
replaced whole by `set` (the SetAllocation call, once per slot when the coordinator
allocates). The steps apply to the tasks that ask for the model's default (steps 0); a
task that names its steps keeps them. The edge state shows both on every cached model.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping

from edge_node.executor import FifoExecutor
from edge_node.share_executor import ShareExecutor, ShareTableError
from testbed.messages import CachedModelInfo
from testbed.types import FailureReason, TestbedError


class ModelAllocation:
    def __init__(
        self,
        executor: FifoExecutor | ShareExecutor,
        steps: Mapping[str, int],
        max_steps: int,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._executor = executor
        self._max_steps = max_steps
        self._on_change = on_change
        self._lock = threading.Lock()
        self._steps = dict(steps)

    def steps_for(self, model_id: str) -> int:
        """The steps allocated to `model_id`; 0: none (the model's default)."""
        with self._lock:
            return self._steps.get(model_id, 0)

    def shares(self, models: Iterable[str] = ()) -> dict[str, float]:
        """φ per model the share executor knows and per model of `models`; empty on a
        FIFO edge."""
        if isinstance(self._executor, ShareExecutor):
            return self._executor.shares(models)
        return {}

    def set(self, shares: Mapping[str, float], steps: Mapping[str, int]) -> None:
        """Replace the whole allocation. Raises TestbedError(INVALID_REQUEST) saying
        what is wrong (a share on a FIFO edge, Σφ > 1, steps off 1..max_steps), and
        then changes nothing."""
        bad = {m: k for m, k in steps.items() if not 1 <= k <= self._max_steps}
        if bad:
            raise TestbedError(
                FailureReason.INVALID_REQUEST,
                f"expected steps in 1..{self._max_steps} (edges.max_steps), got {bad}",
            )
        if isinstance(self._executor, ShareExecutor):
            try:
                self._executor.set_shares(shares)
            except ShareTableError as exc:
                raise TestbedError(FailureReason.INVALID_REQUEST, str(exc)) from None
        elif shares:
            raise TestbedError(
                FailureReason.INVALID_REQUEST,
                "this edge runs the fifo executor: compute shares need edges.executor: shares",
            )
        with self._lock:
            self._steps = dict(steps)
        self._on_change()

    def annotate(self, cached: Iterable[CachedModelInfo]) -> tuple[CachedModelInfo, ...]:
        """`cached` with each model's share and steps filled in (0: none)."""
        cached = list(cached)
        shares = self.shares(c.model.model_id for c in cached)
        with self._lock:
            steps = dict(self._steps)
        return tuple(
            dataclasses.replace(
                c,
                compute_share=shares.get(c.model.model_id, 0.0),
                steps=steps.get(c.model.model_id, 0),
            )
            for c in cached
        )
