"""The §B scheduler of one base station, on its board (docs/live-loop.md, "Clocked
slots and the §B scheduler"; docs/papers.md §B).

`step(slot)` draws the slot's tasks (testbed/coedge/tasks.py, the very tasks the
coordinator expects), and decides each at once, in order: the policy picks a set of
edges (agent_node/coedge_policy.py), the split rule divides the task's units over
them so that they finish together as planned (testbed/coedge/plan.py), and every
share is streamed to its edge — paced to the core-network rate r_bj on links to
other stations, never on the home edge's. The shares run in parallel; each answer
is a `ShareResult`, and the task's record is judged when its last share is back
(testbed/records.py `judge_shares`). Barrier slots wait for every task of the slot;
clocked slots return at once with whatever finished since the previous step; a drain
waits for everything in flight.

What a plan waits for at edge j (w_j): the edge's own published estimate of its
queued work (aged by the time since the edge took it), plus the work this board sent
to j that the edge's state cannot show yet (sent after that state was taken), plus
this board's transfer backlog on the link to j.

Nothing is lost: a task whose decision or submission raises ends at once with
`invalid_request` or `internal`; a share whose edge does not answer ends as the
client says (`edge_unreachable`, `timeout`), and a drain that outlives every task's
timeout ends what is left as `timeout`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent_node.checks import BadRequest
from agent_node.coedge_policy import CoedgePolicy, coedge_policy_kind, make_coedge_policy
from agent_node.edges import EdgeDirectory
from agent_node.local_models import LocalModels
from testbed.coedge.observation import task_observation
from testbed.coedge.plan import SharePlan, plan_task, unit_compute_s, whole_task_s
from testbed.coedge.tasks import slot_tasks
from testbed.config import AgentSpec, SlotMode, TestbedConfig
from testbed.edge_client import Submission
from testbed.links import Pacer
from testbed.messages import EdgeTaskRequest, ModelRef, ShareResult, TaskRecord
from testbed.records import add_share_energy, failed_record, judge_shares, new_record, share_result
from testbed.tasks import Task, task_data
from testbed.types import FailureReason, Outcome, TestbedError
from testbed.zoo.workload import unit_flops, units_for

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]

DRAIN_GRACE_S = 10.0
"""A drain waits the task timeout plus this for the shares in flight; whatever is
still out then ends as `timeout` (every submission is bounded by the task timeout,
so this is only reached when the board itself is overloaded)."""


@dataclass
class _Flight:
    """A task whose shares are out."""

    task: Task
    record: TaskRecord
    plan: SharePlan
    started: float  # perf_counter at the decision: latencies count from here
    results: dict[int, ShareResult] = field(default_factory=dict)
    ended: bool = False


@dataclass(frozen=True)
class _Sent:
    """A share sent to edge `edge` that counts in w_j until the edge's state shows it."""

    edge: int
    work_s: float
    queued_by_unix_s: float  # planned end of its upload: the edge queues it then


@dataclass
class CoedgeStep:
    records: list[TaskRecord]
    in_flight: int
    drawn: int = 0


class CoedgeScheduler:
    """Station `home`'s scheduler (agent i is station i, its home edge edge i)."""

    def __init__(
        self,
        agent_id: str,
        cfg: TestbedConfig,
        spec: AgentSpec,
        edges: EdgeDirectory,
        models: LocalModels,
        rng: np.random.Generator,
    ) -> None:
        self.agent_id, self.cfg, self.spec = agent_id, cfg, spec
        self.home = [s.id for s in cfg.agent_specs()].index(agent_id)
        self.clocked = cfg.run.slot_mode is SlotMode.CLOCKED
        self.rates = np.array(cfg.coedge.rate_matrix_mbps(cfg.seed)[self.home], dtype=np.float64)
        paced = cfg.emulation.links_paced(cfg.inventory.remote)
        # one pacer per link, no saved-up credit: a link idle for a while is not faster
        self._pacers = [
            Pacer(float(r), max_credit_s=0.0) if paced and j != self.home else None
            for j, r in enumerate(self.rates)
        ]
        self._edges, self._models, self._rng = edges, models, rng
        self._link_free_at = np.zeros(len(self.rates))  # monotonic; modelled per link
        workers = min(512, max(8, 2 * len(self.rates) * cfg.coedge.max_tasks))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="share")
        self._lock = threading.Condition()
        self._flights: dict[str, _Flight] = {}
        self._finished: list[TaskRecord] = []
        self._sent: dict[tuple[str, int], _Sent] = {}
        self.policy: CoedgePolicy = make_coedge_policy(
            coedge_policy_kind(_default_policy(cfg.run.policy)), cfg, self.home
        )

    def load_policy(self, name: str, onnx_model: bytes, spec_json: str) -> None:
        """Decide with `name` from now on (`BadRequest`/`ActorMismatch`: the old stays)."""
        policy = make_coedge_policy(coedge_policy_kind(name), self.cfg, self.home,
                                    onnx_model, spec_json)  # fmt: skip
        with self._lock:
            self.policy = policy

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights)

    # ------------------------------------------------------------------ steps

    def step(self, slot: int, generate: bool = True) -> CoedgeStep:
        """Draw and start the slot's tasks; barrier slots wait for all of them."""
        tasks = slot_tasks(self.cfg, self.cfg.seed, self.agent_id, slot) if generate else []
        for k, task in enumerate(tasks):
            self._begin(task, slot, len(tasks) - k)
        if not self.clocked:
            self._wait_all()
        return self._collect(len(tasks))

    def drain(self) -> CoedgeStep:
        """Draw nothing; wait until every task in flight has ended."""
        self._wait_all()
        return self._collect(0)

    def _collect(self, drawn: int) -> CoedgeStep:
        with self._lock:
            records, self._finished = self._finished, []
            return CoedgeStep(records, len(self._flights), drawn)

    def _wait_all(self) -> None:
        timeout_s = self.cfg.run.task_timeout_s + DRAIN_GRACE_S
        with self._lock:
            if self._lock.wait_for(lambda: not self._flights, timeout_s):
                return
            for flight in list(self._flights.values()):
                detail = f"no answer from its edges within {timeout_s:g} s"
                for j in flight.plan.edges:
                    flight.results.setdefault(j, self._lost_share(flight, j, detail))
                self._end(flight)

    # ------------------------------------------------------------------ one task

    def _begin(self, task: Task, slot: int, tasks_left: int) -> None:
        """Decide `task` and send its shares; a task that fails here ends here."""
        record = new_record(task, slot)
        try:
            self._dispatch(task, record, tasks_left)
        except Exception as exc:
            with self._lock:
                self._flights.pop(task.task_id, None)
                self._finished.append(_broken(task, slot, exc))

    def _dispatch(self, task: Task, record: TaskRecord, tasks_left: int) -> None:
        started = time.perf_counter()
        entry = self._models.entry(task.model_id)  # TestbedError: model_unknown
        flops_per_cycle = self.cfg.tasks.flops_per_cycle
        units = units_for(task.size_mbit, task.density_cycles_per_bit, entry, flops_per_cycle)
        views, loads = self._edges.views(), self._edges.loads()
        ghz = np.array([v.cpu_ghz for v in views], dtype=np.float64)
        alive = np.array([v.alive for v in views], dtype=bool)
        nominal_s = unit_flops(entry) / flops_per_cycle / 1e9
        per_unit = unit_compute_s(task.model_id, [x.unit_compute_ms for x in loads], ghz, nominal_s)
        whole = whole_task_s(task.size_mbit, units, self.rates, per_unit)
        now = time.monotonic()
        with self._lock:
            queue_s = self._queued_s(now_unix_s=time.time())
            link_s = np.maximum(self._link_free_at - now, 0.0)
            obs = task_observation(
                self.cfg.coedge, size_mbit=task.size_mbit, queue_s=queue_s, link_s=link_s,
                density_cycles_per_bit=task.density_cycles_per_bit, station=self.home,
                tasks_left=tasks_left,
            )  # fmt: skip
            mask = np.asarray(self.policy.choose(obs, queue_s, ghz, alive, self._rng), dtype=bool)
            if (mask & alive).any():  # an edge known dead gets nothing while one chosen lives
                mask = mask & alive
            plan = plan_task(mask, whole, queue_s + link_s, units)
            record.units, record.download = units, True
            flight = _Flight(task, record, plan, started)
            self._flights[task.task_id] = flight
            shares = self._reserve(flight, per_unit, now)
        for j, request, data in shares:
            self._send(flight, j, request, data)

    def _queued_s(self, now_unix_s: float) -> Array:
        """(B,) w_j without the link: each edge's aged estimate plus this board's work
        it cannot show yet (the caller holds the lock)."""
        loads = self._edges.loads()
        queue_s = np.array([
            max(0.0, x.queued_work_s - max(0.0, now_unix_s - x.timestamp_unix_s))
            if x.timestamp_unix_s > 0 else x.queued_work_s
            for x in loads
        ])  # fmt: skip
        for sent in self._sent.values():
            if sent.queued_by_unix_s > loads[sent.edge].timestamp_unix_s:
                queue_s[sent.edge] += sent.work_s
        return queue_s

    def _reserve(
        self, flight: _Flight, per_unit: Array, now: float
    ) -> list[tuple[int, EdgeTaskRequest, bytes]]:
        """Each share's request and data; its transfer joins its link's backlog and its
        work counts as sent (the caller holds the lock)."""
        task, plan, units = flight.task, flight.plan, flight.record.units
        nbytes = int(task.size_mbit * 1e6 / 8)
        data = task_data(task.task_id, nbytes)
        out, done_units = [], 0
        for j, u in zip(plan.edges, plan.units, strict=True):
            lo, hi = nbytes * done_units // units, nbytes * (done_units + u) // units
            done_units += u
            home = j == self.home
            transfer_s = 0.0 if home else (hi - lo) * 8 / (self.rates[j] * 1e6)
            link_start = max(now, self._link_free_at[j])
            self._link_free_at[j] = link_start + transfer_s
            queued_by = time.time() + (link_start - now) + transfer_s
            self._sent[(task.task_id, j)] = _Sent(j, u * float(per_unit[j]), queued_by)
            pacer = self._pacers[j]
            request = EdgeTaskRequest(
                task_id=task.task_id, model=ModelRef(task.model_id), units=u, download=True,
                agent_id=self.agent_id, task_type=task.task_type, share=u / units,
                steps=task.steps or 0, data_bytes=hi - lo, slot=task.slot,
                upload_rate_mbps=(pacer.rate_mbps or 0.0) if pacer is not None else 0.0,
            )  # fmt: skip
            out.append((j, request, data[lo:hi]))
        return out

    def _send(self, flight: _Flight, j: int, request: EdgeTaskRequest, data: bytes) -> None:
        try:
            future = self._pool.submit(
                self._edges.clients[j].submit, request, data,
                timeout_s=self.cfg.run.task_timeout_s, pacer=self._pacers[j],
            )  # fmt: skip
        except Exception as exc:  # the pool is shut down: the run is ending
            self._share_failed(flight, j, f"{type(exc).__name__}: {exc}")
            return
        future.add_done_callback(functools.partial(self._share_done, flight, j))

    def _share_done(self, flight: _Flight, j: int, future: Future[Submission]) -> None:
        finish_ms = (time.perf_counter() - flight.started) * 1e3
        if future.cancelled() or future.exception() is not None:
            why = "cancelled" if future.cancelled() else repr(future.exception())
            self._share_failed(flight, j, why)
            return
        sub = future.result()
        if sub.result.reason is FailureReason.EDGE_UNREACHABLE:
            self._edges.mark_unreachable(sub.result.edge_id)
        edge_id = self._edges.endpoints[j].edge_id
        planned_ms = flight.plan.planned_finish_s * 1e3
        units = flight.plan.units[flight.plan.edges.index(j)]
        share = share_result(edge_id, units, flight.record.units, sub, finish_ms, planned_ms)
        with self._lock:
            self._sent.pop((flight.task.task_id, j), None)
            if flight.ended:
                return
            add_share_energy(flight.record, sub, self.spec.transmit_power_w)
            flight.results[j] = share
            if len(flight.results) == len(flight.plan.edges):
                self._end(flight)

    def _share_failed(self, flight: _Flight, j: int, detail: str) -> None:
        """A share whose submission itself broke (a bug, or the run ending)."""
        with self._lock:
            self._sent.pop((flight.task.task_id, j), None)
            if flight.ended:
                return
            flight.results[j] = self._lost_share(flight, j, detail, FailureReason.INTERNAL)
            if len(flight.results) == len(flight.plan.edges):
                self._end(flight)

    def _lost_share(
        self, flight: _Flight, j: int, detail: str, reason: FailureReason = FailureReason.TIMEOUT
    ) -> ShareResult:
        units = flight.plan.units[flight.plan.edges.index(j)]
        return ShareResult(
            edge_id=self._edges.endpoints[j].edge_id, share=units / flight.record.units,
            units=units, outcome=Outcome.FAILED, reason=reason, detail=detail,
            finish_ms=(time.perf_counter() - flight.started) * 1e3,
            planned_finish_ms=flight.plan.planned_finish_s * 1e3,
        )  # fmt: skip

    def _end(self, flight: _Flight) -> None:
        """Judge a task whose every share is back (the caller holds the lock)."""
        flight.ended = True
        shares = [flight.results[j] for j in flight.plan.edges]
        self._flights.pop(flight.task.task_id, None)
        for j in flight.plan.edges:
            self._sent.pop((flight.task.task_id, j), None)
        self._finished.append(judge_shares(flight.record, shares))
        self._lock.notify_all()


def _default_policy(name: str) -> str:
    """The run's policy when it names a §B heuristic, else least-queue (LoadPolicy
    sets trained ones)."""
    try:
        kind = coedge_policy_kind(name)
    except BadRequest:
        return "least-queue"
    return "least-queue" if kind.value.startswith("onnx") else kind.value


def _broken(task: Task, slot: int, exc: Exception) -> TaskRecord:
    """The record of a task whose decision or submission raised `exc`: a known failure
    with its reason (a model the board's catalog lacks), bad input `invalid_request`,
    anything else a bug of the board (`internal`)."""
    if isinstance(exc, TestbedError):
        return failed_record(task, slot, exc.reason, exc.detail[:500])
    if isinstance(exc, BadRequest):
        return failed_record(task, slot, FailureReason.INVALID_REQUEST, str(exc)[:500])
    log.error("scheduling %s failed", task.task_id, exc_info=exc)
    return failed_record(task, slot, FailureReason.INTERNAL, f"{type(exc).__name__}: {exc}"[:500])
