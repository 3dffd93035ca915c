"""A task's record: built from the task in one place, judged in one place.

Every generated task ends in exactly one `TaskRecord` (docs/live-loop.md). Whoever
serves a task — the board, the coordinator's edges-only stream, or the slot driver
recording a task that a board owes but never reported — builds its record with
`new_record`, copies what an edge measured with `add_edge_share`, and decides
"completed or failed, and why" with `judge`. A task split over several edges (one
result per share, docs/papers.md §B) is built with `share_result` per share,
`add_share_energy`, and judged with `judge_shares`.
"""

from __future__ import annotations

from collections.abc import Sequence

from testbed.edge_client import Submission
from testbed.energy import modeled
from testbed.messages import EdgeTaskResult, ShareResult, TaskRecord
from testbed.tasks import Task
from testbed.types import (
    EnergyMethod,
    EnergyPart,
    EnergyPartName,
    FailureReason,
    Outcome,
    TestbedError,
)


def new_record(task: Task, served_slot: int) -> TaskRecord:
    """The record of `task` before it is served: failed, with no reason yet (`judge`
    decides); `served_slot` is the slot in which it left the board's queue."""
    return TaskRecord(
        task_id=task.task_id,
        agent_id=task.agent_id,
        slot=task.slot,
        task_type=task.task_type,
        model_id=task.model_id,
        size_mbit=task.size_mbit,
        density_cycles_per_bit=task.density_cycles_per_bit,
        deadline_s=task.deadline_s,
        units=0,
        outcome=Outcome.FAILED,
        steps=task.steps or 0,
        served_slot=served_slot,
    )


def failed_record(task: Task, served_slot: int, reason: FailureReason, detail: str) -> TaskRecord:
    """The record of a task that was never served (queue full, board unreachable, …)."""
    record = new_record(task, served_slot)
    record.reason, record.detail = reason, detail
    return record


def add_edge_share(record: TaskRecord, sub: Submission, transmit_power_w: float) -> None:
    """Copy what the edge measured of the task's offloaded share into `record`: the
    upload (T_tx, with its modelled radio energy p·t), the switch parts, the edge's
    queue and compute times, cache hit and the edge's energy parts."""
    result, timing = sub.result, sub.result.timing
    record.t_tx_ms = sub.upload_s * 1e3
    record.t_switch_ms = timing.switch_ms
    record.t_edge_queue_ms = timing.queue_ms
    record.t_edge_compute_ms = timing.compute_ms
    record.fetch_ms, record.verify_ms = timing.fetch_ms, timing.verify_ms
    record.load_ms, record.warmup_ms = timing.load_ms, timing.warmup_ms
    record.cache_hit = result.cache_hit
    record.energy.append(modeled(EnergyPartName.TX, transmit_power_w, sub.upload_s))
    record.energy.extend(result.energy)


def judge(
    record: TaskRecord,
    *,
    edge_results: Sequence[EdgeTaskResult] = (),
    local_error: TestbedError | None = None,
) -> TaskRecord:
    """Decide the task's outcome from what happened to its parts, in this order: an
    edge share that failed fails the task with that edge's reason; a failed local share
    fails it as `local_failed`; a task over its deadline (`record.latency_ms` against
    `record.deadline_s`) fails as `deadline`; otherwise it completed."""
    failed = next((r for r in edge_results if r.outcome is not Outcome.COMPLETED), None)
    if failed is not None:
        record.outcome, record.reason, record.detail = Outcome.FAILED, failed.reason, failed.detail
    elif local_error is not None:
        record.outcome, record.reason = Outcome.FAILED, FailureReason.LOCAL_FAILED
        record.detail = f"{local_error.reason.value}: {local_error.detail}"
    else:
        _judge_deadline(record)
    return record


# ---------------------------------------------------------------- §B: several edges


def share_result(
    edge_id: str, units: int, task_units: int, sub: Submission, finish_ms: float,
    planned_finish_ms: float,
) -> ShareResult:  # fmt: skip
    """One edge's share of a split task from its submission: `finish_ms` counted from
    the task's start of service to the edge's answer on the board."""
    result, timing = sub.result, sub.result.timing
    return ShareResult(
        edge_id=edge_id, share=units / task_units, units=units, outcome=result.outcome,
        reason=result.reason, detail=result.detail, finish_ms=finish_ms,
        planned_finish_ms=planned_finish_ms, t_tx_ms=sub.upload_s * 1e3,
        t_edge_queue_ms=timing.queue_ms, t_edge_compute_ms=timing.compute_ms,
    )  # fmt: skip


def add_share_energy(record: TaskRecord, sub: Submission, transmit_power_w: float) -> None:
    """Add one share's energy to `record`: the upload's modelled p·t and the edge's
    parts, summed into one part per name (`merge_energy`)."""
    parts = [modeled(EnergyPartName.TX, transmit_power_w, sub.upload_s), *sub.result.energy]
    record.energy = merge_energy([*record.energy, *parts])


def merge_energy(parts: Sequence[EnergyPart]) -> list[EnergyPart]:
    """One part per name, in first-seen order, its joules summed over the shares. Parts
    of one name measured by different methods sum to `estimated`: the weakest claim
    any of them supports (a run's tasks.csv holds one column per part)."""
    merged: dict[str, EnergyPart] = {}
    for part in parts:
        seen = merged.get(part.part)
        if seen is None:
            merged[part.part] = part
            continue
        method = seen.method if seen.method is part.method else EnergyMethod.ESTIMATED
        merged[part.part] = EnergyPart(part.part, seen.energy_j + part.energy_j, method)
    return list(merged.values())


def judge_shares(record: TaskRecord, shares: Sequence[ShareResult]) -> TaskRecord:
    """Decide a split task from its shares (in edge order): its latency is the latest
    share's finish, with that share's transfer, queue and compute times; it failed with
    the first failed share's reason, else as `deadline` when over its deadline, else it
    completed. Its edges are the shares' edges joined by "+", its units theirs."""
    record.shares = list(shares)
    if not shares:
        record.outcome, record.reason = Outcome.FAILED, FailureReason.INTERNAL
        record.detail = "the task was split over no edge"
        return record
    latest = max(shares, key=lambda s: s.finish_ms)
    record.edge_id = "+".join(s.edge_id for s in shares)
    record.share = 1.0
    record.units = record.edge_units = sum(s.units for s in shares)
    record.local_units = 0
    record.latency_ms = latest.finish_ms
    record.t_tx_ms = latest.t_tx_ms
    record.t_edge_queue_ms = latest.t_edge_queue_ms
    record.t_edge_compute_ms = latest.t_edge_compute_ms
    failed = next((s for s in shares if not s.completed), None)
    if failed is not None:
        record.outcome, record.reason = Outcome.FAILED, failed.reason
        record.detail = f"{failed.edge_id}: {failed.detail}" if failed.detail else failed.edge_id
    else:
        _judge_deadline(record)
    return record


def _judge_deadline(record: TaskRecord) -> None:
    """A task whose parts all completed: failed `deadline` past `record.deadline_s`,
    else completed."""
    if record.latency_ms > record.deadline_s * 1e3:
        record.outcome, record.reason = Outcome.FAILED, FailureReason.DEADLINE
        record.detail = f"{record.latency_ms:.0f} ms > deadline {record.deadline_s * 1e3:.0f} ms"
    else:
        record.outcome, record.reason, record.detail = Outcome.COMPLETED, FailureReason.NONE, ""
