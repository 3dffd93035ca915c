"""The live §B bench's slot driver (`run.system: coedge`, docs/coedge.md, "On the
live bench").

One scheduler per base station: agent i is the scheduler of edge i. In each slot every
board draws its slot's tasks (testbed/coedge/tasks.py `slot_tasks`, a pure function of
seed, agent and slot, so the coordinator owes exactly the tasks each board draws),
decides each on the board and serves it over one or several edges. Two slot modes
(`run.slot_mode`):

- `barrier`: a slot's Step waits for all of its tasks and returns their records.
- `clocked`: slot s starts at t0 + s·Δ (Δ = `coedge.slot_s`) whether or not earlier
  tasks finished; its Step returns at once with every record finished since the
  previous Step and the tasks still in flight, so backlogs carry over between slots.
  A slot the coordinator starts late (the boards answered slowly) is started at once
  and its lateness written to slots.csv; no slot is skipped.

Nothing is lost (docs/live-loop.md, "Nothing is lost"): owed tasks are kept by id
until a record settles them; a Step that fails records that slot's tasks with the
reason its status gives; a board that owes more than it says it has in flight has the
oldest surplus recorded `record_missing`; the end of a run drains the boards
(`Step(drain=true)`), Ctrl-C or SIGTERM records what is still owed as `interrupted`.

The reward is the twin's (coordinator/envs/coedge_twin.py): −delay in seconds, or
−deadline_penalty·deadline_s for a task that was late or failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from coordinator.boards import AgentStep, BoardHandle, PendingStep, SlotResult
from coordinator.live import LiveBench
from coordinator.policy_choice import BoardPolicies
from testbed import serde
from testbed.coedge.tasks import slot_tasks
from testbed.config import SlotMode, TestbedConfig
from testbed.messages import TaskRecord
from testbed.rpc.v1 import agent_pb2
from testbed.tasks import Task
from testbed.types import FailureReason, Outcome

log = logging.getLogger(__name__)


def coedge_reward(record: TaskRecord, deadline_penalty: float) -> float:
    """The twin's reward of one task: −delay (s) when it completed within its
    deadline, else −deadline_penalty·deadline_s (late, or failed for any reason)."""
    if record.outcome is Outcome.COMPLETED and record.latency_ms <= record.deadline_s * 1e3:
        return -record.latency_ms / 1e3
    return -deadline_penalty * record.deadline_s


@dataclass
class SlotClock:
    """Clocked slots: slot s is planned at s·Δ seconds after the first slot's start.
    `now` and `sleep` are injectable so that the clock is tested without waiting."""

    slot_s: float
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    t0: float | None = None

    def planned_start_s(self, slot: int, first_slot: int = 0) -> float:
        return (slot - first_slot) * self.slot_s

    def wait_for(self, slot: int, first_slot: int = 0) -> tuple[float, float]:
        """Sleep until `slot`'s planned start (not at all when it has passed); returns
        (planned, actual) start in seconds since the first slot's start. The first
        call starts the clock."""
        if self.t0 is None:
            self.t0 = self.now()
        planned = self.planned_start_s(slot, first_slot)
        ahead = self.t0 + planned - self.now()
        if ahead > 0:
            self.sleep(ahead)
        return planned, self.now() - self.t0


@dataclass
class CoedgePending(PendingStep):
    """A §B Step: every task the board draws for it (several per slot)."""

    tasks: list[Task] = field(default_factory=list)


@dataclass
class CoedgeSlot(SlotResult):
    """What one slot's Steps brought: the records that arrived (any earlier slot's
    tasks, in clocked mode), the tasks drawn in the slot, the tasks the boards still
    serve after it, and its planned and actual start (s since the first slot's)."""

    drawn: int = 0
    in_flight: int = 0
    planned_start_s: float = 0.0
    actual_start_s: float = 0.0

    @property
    def lateness_ms(self) -> float:
        return max(0.0, self.actual_start_s - self.planned_start_s) * 1e3

    def timing(self) -> dict[str, float]:
        """slots.csv's row beyond slot, tasks and completed (coedge_shares.py)."""
        return {
            "drawn": self.drawn, "in_flight": self.in_flight,
            "planned_start_s": self.planned_start_s, "actual_start_s": self.actual_start_s,
            "lateness_ms": self.lateness_ms, "wall_ms": self.wall_ms,
            "max_step_ms": self.max_step_ms, "overhead_ms": self.overhead_ms,
        }  # fmt: skip


def status_reason(error: grpc.RpcError | None) -> FailureReason:
    """The failure a Step's status stands for (as coordinator/live.py's `_unanswered`)."""
    code = error.code() if error is not None else None
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return FailureReason.INVALID_REQUEST
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return FailureReason.INTERNAL
    return FailureReason.AGENT_UNREACHABLE


class CoedgeBench(LiveBench):
    """The live bench of `run.system: coedge`: `LiveBench` (start, policies, drain,
    interrupted, close) with §B slots, several tasks per board and slot, and the
    twin's reward."""

    def __init__(self, cfg: TestbedConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.clocked = cfg.run.slot_mode is SlotMode.CLOCKED
        self.clock = SlotClock(cfg.coedge.slot_s)
        self._first_slot: int | None = None

    def _set_policy(self, policy: BoardPolicies) -> None:
        """A §B actor was checked against this bench when it was read
        (coordinator/coedge_run.py); the MATO observation check does not apply."""
        if isinstance(policy, dict):
            self._per_agent = dict(policy)
        else:
            self.policy, self._per_agent = policy, {}

    def reward(self, record: TaskRecord) -> float:
        return coedge_reward(record, self.cfg.coedge.deadline_penalty)

    def owed_tasks(self, agent_id: str, slot: int) -> list[Task]:
        """The tasks board `agent_id` draws in `slot` (the very ones it draws)."""
        return slot_tasks(self.cfg, self.cfg.seed, agent_id, slot)

    def in_flight(self) -> int:
        """Tasks drawn and not recorded yet, over every board."""
        return sum(len(h.owed.tasks) for h in self.agents.values())

    def step(self, slot: int, noise_std: float = 0.0, generate: bool = True) -> CoedgeSlot:
        """One slot: in clocked mode, at its planned start (at once if that passed);
        `noise_std` is unused (a §B board's policy draws its own noise)."""
        self._slot = slot
        if self._first_slot is None:
            self._first_slot = slot
        planned = actual = 0.0
        if self.clocked:
            planned, actual = self.clock.wait_for(slot, self._first_slot)
        t0 = time.perf_counter()
        pending = [self._send_coedge(h, slot, generate) for h in self.agents.values()]
        steps: dict[str, AgentStep] = {}
        records: list[TaskRecord] = []
        in_flight = 0
        sent: list[PendingStep] = list(pending)
        for p, reply in zip(pending, self._fan_out(sent), strict=True):
            step, recs, flying = receive_report(p, reply)
            steps[p.handle.agent_id] = step
            records += recs
            in_flight += flying
        self._rewarded(records)
        wall_ms = (time.perf_counter() - t0) * 1e3
        self.bench_events.slot_finished(slot, records, wall_ms)
        if not self.clocked:
            planned = actual = time.monotonic() - self._t0
        max_step = max((s.step_ms for s in steps.values()), default=0.0)
        drawn = sum(len(p.tasks) for p in pending)
        return CoedgeSlot(
            slot, records, steps, wall_ms, max_step, drawn, in_flight, planned, actual
        )

    def _send_coedge(self, handle: BoardHandle, slot: int, generate: bool) -> CoedgePending:
        tasks = self.owed_tasks(handle.agent_id, slot) if generate else []
        handle.owed.owe(tasks)
        if handle.needs_configure or handle.needs_policy:
            error = self._configure(handle)
            if error:
                return CoedgePending(handle, slot, failed=f"not configured: {error}", tasks=tasks)
        request = agent_pb2.StepRequest(
            slot=slot, generate=generate, edges_alive=self._edges_alive, edges_view=True
        )
        return CoedgePending(handle, slot, drew=bool(tasks), request=request, tasks=tasks)


def receive_report(pending: CoedgePending, reply: Any) -> tuple[AgentStep, list[TaskRecord], int]:
    """One board's answer: the records of tasks it owed (others refused), a record
    of each owed task beyond what it says it has in flight, and that count."""
    handle, slot = pending.handle, pending.slot
    if reply is None or isinstance(reply, grpc.RpcError):
        return *unanswered(pending, reply), 0
    report: agent_pb2.StepReport = reply
    records = handle.owed.settle([serde.task_record_from_pb(r) for r in report.tasks])
    records += handle.owed.overdue(report.in_flight, slot)
    step = AgentStep(handle.agent_id, report.acted, step_ms=report.step_ms)
    return step, records, len(handle.owed.tasks)


def unanswered(
    pending: CoedgePending, error: grpc.RpcError | None
) -> tuple[AgentStep, list[TaskRecord]]:
    """A Step that failed: the tasks it drew end with the reason its status gives;
    tasks of earlier slots stay owed (a later Step or the drain reports them)."""
    handle, slot = pending.handle, pending.slot
    reason, detail = status_reason(error), pending.failed
    if error is not None:
        code = error.code()
        detail = f"{code.name}: {error.details() or ''}".strip(": ")
        if code is grpc.StatusCode.FAILED_PRECONDITION:
            handle.needs_configure = True
    owed = [t for t in pending.tasks if t.task_id in handle.owed.tasks]
    records = [handle.owed.fail(t, slot, reason, detail) for t in owed]
    log.warning("%s did not answer slot %d: %s", handle.agent_id, slot, detail[:200])
    return AgentStep(handle.agent_id, False, reachable=False), records
