"""IIoT AIGC tasks: the task record, the per-agent generator and the agent's FIFO queue.

A task R_i(t) = (k, D, C) of docs/papers.md §A: type k (and so the model it needs), size D
in Mbit, computational density C in cycles/bit, plus its deadline and reward weight.

Reproducibility: the task an agent draws in slot t is a pure function of (master
seed, agent id, slot). It does not depend on the other agents, on how many agents
there are, or on which earlier slots this generator was asked about, so a rerun with
the same seed sees the same tasks even if an agent restarts mid-run.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from testbed.config import TaskTypeConfig


@dataclass(frozen=True, slots=True)
class Task:
    """One generated task."""

    task_id: str
    """Unique within a run: "<agent id>/s<6-digit arrival slot>", e.g. "agent-3/s000042"
    (at most one task arrives per agent and slot; a restarted agent keeps the same ids)."""
    agent_id: str
    slot: int
    """The slot the task arrived in."""
    task_type: str
    """The task type's name (TaskTypeConfig.name)."""
    model_id: str
    """The zoo model the type needs."""
    size_mbit: float
    """D, the task's data size in Mbit."""
    density_cycles_per_bit: float
    """C, the computational density in cycles/bit."""
    deadline_s: float
    """Completed only if latency ≤ this, in s."""
    weight: float
    """w_k of the reward (18)."""
    steps: int | None = None
    """Denoising steps for diffusion models; None: the model's default."""


def agent_seed_words(seed: int, agent_id: str) -> list[int]:
    """Entropy words for the RNG of `agent_id` under master `seed`: stable across
    processes and Python versions (sha256, not the salted `hash()`)."""
    digest = hashlib.sha256(agent_id.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return [seed, *words]


class TaskGenerator:
    """Draws the task of one agent per slot.

    In each slot a task arrives with probability `arrival_prob` (uniform arrivals);
    its type is uniform over `types`, its size uniform over the type's `size_mbit`
    range; density, deadline, weight, steps and model come from the type.
    """

    def __init__(
        self,
        agent_id: str,
        types: Sequence[TaskTypeConfig],
        arrival_prob: float,
        seed: int,
    ) -> None:
        if not types:
            raise ValueError("TaskGenerator needs at least one task type")
        if not 0.0 <= arrival_prob <= 1.0:
            raise ValueError(f"arrival_prob must lie in [0, 1], got {arrival_prob}")
        if seed < 0:
            raise ValueError(f"seed must be ≥ 0, got {seed}")
        for t in types:
            lo, hi = t.size_mbit
            if not 0 < lo <= hi:
                raise ValueError(f"task type {t.name!r}: size_mbit must be 0 < low ≤ high")
        self.agent_id = agent_id
        self.types = list(types)
        self.arrival_prob = arrival_prob
        self.seed = seed
        self._entropy = agent_seed_words(seed, agent_id)
        self._count = 0

    @property
    def generated(self) -> int:
        """Tasks generated so far (the next task's sequence number)."""
        return self._count

    def next(self, slot: int) -> Task | None:
        """The task arriving in `slot` (≥ 0), or None when none arrives."""
        if slot < 0:
            raise ValueError(f"slot must be ≥ 0, got {slot}")
        # Three draws every slot, arrival or not, from a generator keyed by the slot.
        rng = np.random.default_rng([*self._entropy, slot])
        arrives, type_u, size_u = rng.random(3)
        if arrives >= self.arrival_prob:
            return None
        ttype = self.types[min(int(type_u * len(self.types)), len(self.types) - 1)]
        lo, hi = ttype.size_mbit
        task = Task(
            task_id=f"{self.agent_id}/s{slot:06d}",
            agent_id=self.agent_id,
            slot=slot,
            task_type=ttype.name,
            model_id=ttype.model,
            size_mbit=float(lo + (hi - lo) * size_u),
            density_cycles_per_bit=float(ttype.density_cycles_per_bit),
            deadline_s=float(ttype.deadline_s),
            weight=float(ttype.weight),
            steps=ttype.steps,
        )
        self._count += 1
        return task


class TaskQueue:
    """The agent's FIFO task queue, bounded by `capacity`; thread-safe.

    Nothing is dropped silently: `push` on a full queue hands the task back so the
    caller records its outcome (queue_full), and `drain` hands back whatever is left
    at the end of a run (no_task_slot).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be ≥ 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[Task] = deque()
        self._lock = threading.Lock()

    def push(self, task: Task) -> Task | None:
        """Append `task`; returns None when queued, or `task` itself when the queue is
        full (it was rejected and the caller owns its outcome)."""
        with self._lock:
            if len(self._items) >= self.capacity:
                return task
            self._items.append(task)
            return None

    def pop(self) -> Task | None:
        """Remove and return the oldest task, None when empty."""
        with self._lock:
            return self._items.popleft() if self._items else None

    def peek(self) -> Task | None:
        """The oldest task without removing it, None when empty."""
        with self._lock:
            return self._items[0] if self._items else None

    def drain(self) -> list[Task]:
        """Remove and return every queued task, oldest first."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def full(self) -> bool:
        with self._lock:
            return len(self._items) >= self.capacity


def task_data(task_id: str, nbytes: int) -> bytes:
    """The task's payload of `nbytes` bytes (D Mbit of sensor-like data), reproducible
    from the task id so a rerun streams the same bytes and gets the same outputs."""
    seed = int.from_bytes(hashlib.sha256(task_id.encode("utf-8")).digest()[:8], "little")
    # raw 64-bit words: twice as fast as Generator.bytes, and this runs every slot
    words = np.random.PCG64(seed).random_raw(-(-nbytes // 8))
    return words.tobytes()[:nbytes]
