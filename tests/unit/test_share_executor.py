"""The edge's share executor: compute-time fractions follow the shares, idle shares are
lent (work-conserving) or not (strict), and every task ends in exactly one outcome."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from edge_node.executor import FifoExecutor, Job
from edge_node.share_executor import (
    FLOOR_SHARE,
    ShareExecutor,
    ShareTableError,
    effective_shares,
    make_executor,
)
from testbed.config.bench import EdgeSettings
from testbed.config.edge_executor import EdgeExecutorKind, ShareMode
from testbed.messages import EdgeTaskRequest, EdgeTaskResult, ModelRef
from testbed.types import FailureReason, Outcome
from tests.waiting import WAIT_S, wait_until

SHARES = {"a": 0.6, "b": 0.3, "c": 0.1}


def _job(i: int, model: str = "a") -> Job:
    return Job(EdgeTaskRequest(f"{model}/t{i}", ModelRef(model), 1, True), b"", 0.0)


def _result(job: Job, outcome=Outcome.COMPLETED, reason=FailureReason.NONE) -> EdgeTaskResult:
    return EdgeTaskResult(job.request.task_id, "e", outcome, reason)


def _reject(job: Job, reason: FailureReason, _detail: str) -> EdgeTaskResult:
    return _result(job, Outcome.FAILED, reason)


class FakeClock:
    """Time that moves only when a fake invocation says it took so long."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def _saturated_run(
    cost_s: dict[str, float], tasks: dict[str, int], shares: dict[str, float]
) -> list[tuple[str, float, float]]:
    """Every model's tasks queued before the first one runs (one slot, a fake clock,
    fake invocations of known cost); returns (model, start, end) per task, in order."""
    clock = FakeClock()
    log: list[tuple[str, float, float]] = []
    gate = threading.Event()

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        gate.wait(WAIT_S)
        model = job.request.model.model_id
        start = clock.now_s
        clock.now_s += cost_s[model]
        log.append((model, start, clock.now_s))
        return _result(job)

    ex = ShareExecutor(1, 10_000, handler, _reject, shares=shares, clock=clock)
    futures = []
    for i in range(max(tasks.values())):  # interleaved arrivals
        futures += [ex.submit(_job(i, m)) for m in tasks if i < tasks[m]]
    gate.set()
    assert all(f.result(WAIT_S).outcome is Outcome.COMPLETED for f in futures)
    ex.shutdown()
    return log


def _fractions_while_all_busy(log: list[tuple[str, float, float]]) -> dict[str, float]:
    """Each model's fraction of the compute time until the first model ran out."""
    last = {model: end for model, _start, end in log}
    window = min(last.values())
    busy: Counter[str] = Counter()
    for model, start, end in log:
        busy[model] += max(0.0, min(end, window) - start)
    return {m: busy[m] / window for m in last}


def test_compute_time_follows_the_shares_under_saturating_streams() -> None:
    cost = {"a": 1.0, "b": 2.0, "c": 1.5}  # unequal task costs: time is shared, not counts
    log = _saturated_run(cost, {"a": 400, "b": 400, "c": 400}, SHARES)
    fractions = _fractions_while_all_busy(log)
    for model, share in SHARES.items():
        assert abs(fractions[model] - share) <= 0.1 * share, (model, fractions)
    # the same stream in FIFO order would share by counts and costs, not by φ
    fifo = sum(cost.values())
    assert abs(cost["c"] / fifo - SHARES["c"]) > 0.1 * SHARES["c"]


def test_an_idle_model_lends_its_share_in_work_conserving_mode() -> None:
    cost = {"b": 1.0, "c": 1.0}
    log = _saturated_run(cost, {"b": 300, "c": 300}, SHARES)  # a sends nothing
    fractions = _fractions_while_all_busy(log)
    assert fractions["b"] == pytest.approx(0.75, rel=0.1)  # 0.3 / (0.3 + 0.1)
    assert fractions["c"] == pytest.approx(0.25, rel=0.1)
    assert sum(end - start for _m, start, end in log) == pytest.approx(log[-1][2])  # no idling


def test_a_model_that_comes_back_gets_no_credit_for_its_idle_time() -> None:
    clock = FakeClock()
    order: list[str] = []
    gate = threading.Event()

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        if job.request.model.model_id == "gate":
            gate.wait(WAIT_S)
        clock.now_s += 1.0
        order.append(job.request.model.model_id)
        return _result(job)

    ex = ShareExecutor(1, 1000, handler, _reject, shares={"a": 0.5, "b": 0.5}, clock=clock)
    alone = [ex.submit(_job(i, "a")) for i in range(100)]  # b idle meanwhile
    assert all(f.result(WAIT_S).outcome is Outcome.COMPLETED for f in alone)
    blocker = ex.submit(_job(0, "gate"))
    assert wait_until(lambda: ex.running == 1)
    both = [ex.submit(_job(100 + i, m)) for i in range(20) for m in ("a", "b")]
    gate.set()
    assert all(f.result(WAIT_S).outcome is Outcome.COMPLETED for f in [blocker, *both])
    tail = "".join(m[0] for m in order[-40:])
    assert "bbb" not in tail and "aaa" not in tail, tail  # alternating, no catch-up run of b
    ex.shutdown()


def test_strict_mode_keeps_an_idle_share_unused() -> None:
    cost_s = 0.004

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        time.sleep(cost_s)
        return _result(job)

    ex = ShareExecutor(1, 10_000, handler, _reject, shares=SHARES, mode=ShareMode.STRICT)
    start = time.perf_counter()
    futures = [ex.submit(_job(i, m)) for i in range(400) for m in ("b", "c")]
    time.sleep(0.8)
    elapsed = time.perf_counter() - start
    busy = ex.busy_s()
    ex.shutdown()
    assert all(f.done() for f in futures)  # ran, or answered SHUTTING_DOWN
    for model in ("b", "c"):
        # never more than its share (one task of slack), and not starved either
        assert busy[model] / elapsed <= SHARES[model] * 1.1 + cost_s * 2 / elapsed, (model, busy)
        assert busy[model] / elapsed >= SHARES[model] * 0.4, (model, busy)
    assert sum(busy.values()) / elapsed < 0.5  # a's 0.6 stayed idle


def test_every_task_ends_in_exactly_one_outcome_under_abandon_and_shutdown() -> None:
    answers: Counter[str] = Counter()
    lock = threading.Lock()
    rng = random.Random(3)

    def count(result: EdgeTaskResult) -> EdgeTaskResult:
        with lock:
            answers[result.task_id] += 1
        return result

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        for _ in range(3):  # invocations, with a stop check between them
            if job.should_stop():
                return count(_result(job, Outcome.FAILED, FailureReason.CANCELLED))
            time.sleep(0.0005)
        return count(_result(job))

    def reject(job: Job, reason: FailureReason, _detail: str) -> EdgeTaskResult:
        return count(_result(job, Outcome.FAILED, reason))

    ex = ShareExecutor(2, 60, handler, reject, shares=SHARES, mode=ShareMode.WORK_CONSERVING)
    jobs = [_job(i, rng.choice("abcd")) for i in range(300)]
    for i, job in enumerate(jobs):
        ex.submit(job)
        if i % 3 == 0:
            ex.abandon(jobs[rng.randrange(i + 1)], "the caller went away")
        if i == 200:
            threading.Thread(target=ex.shutdown).start()
    assert wait_until(lambda: all(j.future.done() for j in jobs))
    for job in jobs:  # a caller leaving after its answer changes nothing
        ex.abandon(job, "the caller went away late")
    assert set(answers) == {j.request.task_id for j in jobs}
    assert set(answers.values()) == {1}
    reasons = Counter(j.future.result().reason for j in jobs)
    assert reasons[FailureReason.SHUTTING_DOWN] > 0 and reasons[FailureReason.CANCELLED] > 0
    assert wait_until(lambda: ex.queue_length == 0 and ex.running == 0)


def test_full_queue_waiting_abandon_and_handler_bugs() -> None:
    gate = threading.Event()

    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        gate.wait(WAIT_S)
        if job.request.model.model_id == "bug":
            raise RuntimeError("boom")
        return _result(job)

    ex = ShareExecutor(1, 3, handler, _reject, shares=SHARES)
    running = ex.submit(_job(0, "a"))
    assert wait_until(lambda: ex.running == 1)
    waiting = [_job(1, "b"), _job(2, "bug"), _job(3, "c")]
    for job in waiting:
        ex.submit(job)
    assert ex.submit(_job(4, "a")).result(WAIT_S).reason is FailureReason.QUEUE_FULL
    ex.abandon(waiting[2], "the caller cancelled")
    assert waiting[2].future.result(WAIT_S).reason is FailureReason.CANCELLED
    assert ex.queue_length == 2 and ex.cancelled == 1
    late = _job(5, "c")
    late.deadline = 0.0  # its caller's deadline passed while it waited
    ex.submit(late)
    gate.set()
    assert running.result(WAIT_S).outcome is Outcome.COMPLETED
    assert waiting[0].future.result(WAIT_S).outcome is Outcome.COMPLETED
    assert waiting[1].future.result(WAIT_S).reason is FailureReason.INTERNAL
    assert late.future.result(WAIT_S).reason is FailureReason.CANCELLED
    ex.shutdown()
    assert ex.submit(_job(6, "a")).result(WAIT_S).reason is FailureReason.SHUTTING_DOWN


def test_share_tables_are_checked_and_unlisted_models_split_the_rest() -> None:
    assert effective_shares({"a": 0.5}, ["a", "b", "c"]) == {"a": 0.5, "b": 0.25, "c": 0.25}
    assert effective_shares({"a": 1.0, "b": 0.0}, ["a", "b"]) == {"a": 1.0, "b": FLOOR_SHARE}
    ex = ShareExecutor(1, 4, lambda j, q: _result(j), _reject, shares={"a": 0.6})
    for bad in ({"a": 0.7, "b": 0.4}, {"a": -0.1}, {"a": float("nan")}):
        with pytest.raises(ShareTableError):
            ex.set_shares(bad)
    assert ex.shares() == {"a": 0.6}  # a refused table changes nothing
    ex.set_shares({"a": 0.2, "b": 0.8})
    assert ex.shares() == {"a": 0.2, "b": 0.8}
    ex.shutdown()


def test_the_edge_settings_choose_the_executor() -> None:
    def handler(job: Job, _queue_ms: float) -> EdgeTaskResult:
        return _result(job)

    fifo = make_executor(EdgeSettings(), handler, _reject)
    shares = make_executor(
        EdgeSettings(executor=EdgeExecutorKind.SHARES, model_shares=SHARES,
                     share_mode=ShareMode.STRICT), handler, _reject,
    )  # fmt: skip
    assert isinstance(fifo, FifoExecutor) and isinstance(shares, ShareExecutor)
    assert shares.shares() == SHARES and shares.mode is ShareMode.STRICT
    assert EdgeSettings(model_shares={"a": 0.7, "b": 0.4}).check()
    assert EdgeSettings(model_steps={"a": 2000}).check()
    assert not EdgeSettings(model_shares=SHARES, model_steps={"a": 20}).check()
    fifo.shutdown()
    shares.shutdown()


def test_the_allocation_is_set_whole_shown_in_the_state_and_refused_whole() -> None:
    from edge_node.model_allocation import ModelAllocation
    from testbed.messages import CachedModelInfo
    from testbed.types import TestbedError

    changes: list[int] = []
    ex = ShareExecutor(1, 4, lambda j, q: _result(j), _reject, shares={"a": 0.6})
    allocation = ModelAllocation(ex, {"a": 10}, 50, lambda: changes.append(1))
    cached = [CachedModelInfo(ModelRef(m), 1) for m in ("a", "b")]
    assert [(c.compute_share, c.steps) for c in allocation.annotate(cached)] == [
        (0.6, 10), (pytest.approx(0.4), 0)]  # fmt: skip
    allocation.set({"a": 0.25, "b": 0.75}, {"b": 30})
    assert allocation.steps_for("a") == 0 and allocation.steps_for("b") == 30
    assert ex.shares() == {"a": 0.25, "b": 0.75} and changes
    for shares, steps in (({"a": 0.9, "b": 0.2}, {}), ({}, {"a": 51}), ({}, {"a": 0})):
        with pytest.raises(TestbedError) as refused:
            allocation.set(shares, steps)
        assert refused.value.reason is FailureReason.INVALID_REQUEST
    assert ex.shares() == {"a": 0.25, "b": 0.75} and allocation.steps_for("b") == 30
    fifo = FifoExecutor(1, 4, lambda j, q: _result(j), _reject)
    on_fifo = ModelAllocation(fifo, {}, 50)
    on_fifo.set({}, {"a": 5})  # steps need no share executor
    with pytest.raises(TestbedError, match="fifo"):
        on_fifo.set({"a": 0.5}, {})
    assert on_fifo.annotate(cached)[0].compute_share == 0.0
    ex.shutdown()
    fifo.shutdown()


def test_only_the_coordinator_may_set_an_allocation() -> None:
    from testbed.rpc.v1 import edge_pb2
    from testbed.security.roles import METHOD_ROLES, Role

    methods = edge_pb2.DESCRIPTOR.services_by_name["EdgeService"].methods_by_name
    assert "SetAllocation" in methods
    assert METHOD_ROLES["/testbed.v1.EdgeService/SetAllocation"] == {Role.COORDINATOR}


def test_model_ids_that_come_and_go_do_not_pile_up() -> None:
    ex = ShareExecutor(1, 10_000, lambda j, q: _result(j), _reject, shares={"a": 0.5})
    for i in range(300):  # a new model id each time, beside model a
        ex.submit(_job(i, f"m{i}"))
        ex.submit(_job(i, "a"))
    assert wait_until(lambda: ex.completed == 600)
    assert len(ex.shares()) < 20  # not one lane per id ever seen
    assert "a" in ex.shares()  # a model in the table keeps its lane
    ex.shutdown()
