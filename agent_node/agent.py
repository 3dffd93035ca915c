"""The board's domain: draw tasks, decide on the board, execute, measure, report.

One `step(slot)`: the slot's task (if one arrives) joins the FIFO queue; the task at
its head is served: the policy sees the observation (16) and picks (target, x, d)
(17); the local share runs as real model invocations here while the offloaded share
is streamed to the edge at the same time, paced to the emulated link rate r_ij; the
task's latency is the later of the two paths; every part's energy is labelled with
its method. Every task ends in exactly one record: a malformed request is refused
before anything is drawn (agent_node/checks.py), and a task taken from the queue ends
in a record whatever happens while it is served (an exception ends it as failed, with
`invalid_request` or `internal` and what was raised); at the end of a run a drain ends
every task still queued as `no_task_slot`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent_node.checks import BadRequest, check_action, check_step, policy_kind
from agent_node.edges import EdgeDirectory, EdgeEndpoint, initial_views
from agent_node.local_models import LocalModels
from agent_node.scheduler import CoedgeScheduler
from testbed.config import AgentSpec, BenchSystem, TestbedConfig
from testbed.edge_client import Submission
from testbed.emulation import stretch
from testbed.energy import EnergyMeter
from testbed.links import Pacer
from testbed.messages import EdgeTaskRequest, ModelRef, TaskRecord
from testbed.mqtt import MqttClient
from testbed.observation import Decision, ObservationSpec, decide, observe_one
from testbed.policies import DecisionContext, EdgeView, Policy, PolicyKind, make_policy
from testbed.records import add_edge_share, failed_record, judge, new_record
from testbed.runtime import ModelRuntime
from testbed.security.credentials import PLAINTEXT, GrpcIdentity
from testbed.tasks import Task, TaskGenerator, TaskQueue, agent_seed_words, task_data
from testbed.types import EnergyPartName, FailureReason, TestbedError
from testbed.zoo.workload import split_units, units_for

log = logging.getLogger(__name__)


def board_observation(
    spec: ObservationSpec,
    task: Task,
    position_m: tuple[float, float],
    cpu_ghz: float,
    queue_length: int,
    views: tuple[EdgeView, ...],
) -> np.ndarray:
    """The observation (16) of the task at the head of a board's queue, from the board's
    own state (position in m, clock in GHz, tasks still queued) and its edge views."""
    return observe_one(
        spec,
        task_type=spec.task_types.index(task.task_type),
        size_mbit=task.size_mbit,
        density_cycles_per_bit=task.density_cycles_per_bit,
        deadline_s=task.deadline_s,
        self_position_m=position_m,
        self_ghz=cpu_ghz,
        self_queue=queue_length,
        edge_position_m=[v.position_m for v in views],
        edge_ghz=[v.cpu_ghz for v in views],
        rate_mbps=[v.rate_mbps for v in views],
        edge_queue=[v.queue_length for v in views],
        edge_alive=[float(v.alive) for v in views],
        edge_cache_free=[v.cache_free for v in views],
        edge_cached=[[float(m in v.cached) for m in spec.models] for v in views],
    )


class NotConfigured(Exception):
    """Step or LoadPolicy before Configure."""


@dataclass
class StepResult:
    acted: bool
    records: list[TaskRecord] = field(default_factory=list)
    observation: np.ndarray | None = None
    decision: Decision | None = None
    queue_length: int = 0
    step_ms: float = 0.0
    in_flight: int = 0  # §B boards: tasks drawn and not yet reported


@dataclass
class _Run:
    """Everything Configure sets up for one run."""

    cfg: TestbedConfig
    spec: AgentSpec
    position_m: tuple[float, float]
    cpu_ghz: float
    edges: EdgeDirectory
    generator: TaskGenerator
    queue: TaskQueue
    rng: np.random.Generator
    obs_spec: ObservationSpec
    policy: Policy
    run_id: str
    scheduler: CoedgeScheduler | None = None
    """The §B scheduler (`run.system: coedge`): it serves the steps instead."""


class Agent:
    def __init__(
        self, agent_id: str, mqtt: MqttClient, zoo_dir: Path, meter: EnergyMeter,
        grpc_identity: GrpcIdentity = PLAINTEXT,
    ) -> None:  # fmt: skip
        """`grpc_identity`: the board's own gRPC credentials, from its own config (the
        run's config names the coordinator's files, not this host's)."""
        self.agent_id = agent_id
        self._grpc_identity = grpc_identity
        self.meter = meter
        self._mqtt = mqtt
        self._zoo_dir = zoo_dir
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="upload")
        self._run: _Run | None = None
        self._models: LocalModels | None = None
        self.generated = 0
        self.finished = 0
        self.queue_length = 0
        # told every slot's finished records, outside the lock (agent_node/__main__.py)
        self.on_records: Callable[[Sequence[TaskRecord]], None] = lambda _records: None
        self._arrived_at: dict[str, float] = {}
        self._observed: dict[str, np.ndarray] = {}

    @property
    def run(self) -> _Run | None:
        return self._run

    # ------------------------------------------------------------------ control

    def configure(self, cfg: TestbedConfig, edges: list[EdgeEndpoint], run_id: str) -> None:
        """Set up a run; everything that can be refused is checked before the current
        run is touched (`BadRequest`)."""
        specs = {s.id: s for s in cfg.agent_specs()}
        if self.agent_id not in specs:
            raise BadRequest(f"the run's config has no agent {self.agent_id!r}")
        spec = specs[self.agent_id]
        assert spec.position_m is not None and spec.cpu_ghz is not None  # resolved by config
        views = initial_views(cfg, edges, spec.position_m)
        obs_spec = ObservationSpec.from_config(cfg)
        policy = cfg.run.policy if cfg.run.policy in set(PolicyKind) else "greedy"
        generator = TaskGenerator(
            self.agent_id, cfg.tasks.active_types, cfg.tasks.arrival_prob, cfg.seed
        )
        with self._lock:
            if self._models is None:
                runtime = ModelRuntime(spec.runtime, spec.intra_op_threads)
                self._models = LocalModels(self._zoo_dir, runtime)
            if self._run is not None:
                self._close_run(self._run)
            directory = EdgeDirectory(cfg, edges, views, self._mqtt, self._grpc_identity)
            self._run = _Run(
                cfg=cfg,
                spec=spec,
                position_m=spec.position_m,
                cpu_ghz=spec.cpu_ghz,
                edges=directory,
                generator=generator,
                queue=TaskQueue(spec.queue_capacity),
                rng=np.random.default_rng([*agent_seed_words(cfg.seed, self.agent_id), 7]),
                obs_spec=obs_spec,
                policy=make_policy(policy, obs_spec),
                run_id=run_id,
            )
            if cfg.run.system is BenchSystem.COEDGE:
                assert self._models is not None  # created above
                self._run.scheduler = CoedgeScheduler(
                    self.agent_id, cfg, spec, directory, self._models, self._run.rng
                )
            self._arrived_at.clear()
            self._observed.clear()
        unheard = self._run.edges.wait_synced(timeout_s=2.0)
        if unheard:
            log.warning("no state yet from %s: deciding without it", ", ".join(unheard))
        log.info(
            "configured for run %s: %d edges, f=%.2f GHz at %s, policy %s",
            run_id, len(edges), spec.cpu_ghz, spec.position_m, self._run.policy.kind.value,
        )  # fmt: skip

    def load_policy(self, name: str, onnx_model: bytes, spec_json: str) -> None:
        """Decide with policy `name` (`BadRequest`, `SpecError` or `ActorMismatch` for
        a request that does not fit: the current policy stays)."""
        with self._lock:
            run = self._require()
            if run.scheduler is not None:
                run.scheduler.load_policy(name, onnx_model, spec_json)
                log.info("§B policy %s loaded", name)
                return
            kind = policy_kind(name)
            bench = ObservationSpec.from_config(run.cfg)
            spec = ObservationSpec.from_json(spec_json) if spec_json else bench
            if (spec.task_types, spec.num_edges) != (bench.task_types, bench.num_edges):
                raise BadRequest(
                    f"the policy was made for task types {list(spec.task_types)} and "
                    f"{spec.num_edges} edges; this bench has {list(bench.task_types)} and "
                    f"{bench.num_edges}"
                )
            run.policy = make_policy(kind, spec, onnx_model=onnx_model)
            run.obs_spec = spec
        log.info("policy %s loaded (model_aware=%s)", kind.value, spec.model_aware)

    def _require(self) -> _Run:
        if self._run is None:
            raise NotConfigured("Configure first")
        return self._run

    @staticmethod
    def _close_run(run: _Run) -> None:
        if run.scheduler is not None:
            run.scheduler.close()
        run.edges.close()

    def close(self) -> None:
        if self._run is not None:
            self._close_run(self._run)
        if self._models is not None:
            self._models.close()
        self._pool.shutdown(wait=False)

    # ------------------------------------------------------------------ one slot

    def step(
        self,
        slot: int,
        noise_std: float = 0.0,
        generate: bool = True,
        *,
        observe_only: bool = False,
        action: np.ndarray | None = None,
        edges_alive: Sequence[str] | None = None,
        drain: bool = False,
    ) -> StepResult:
        """Run one slot. `observe_only`: queue the slot's task and return the head task's
        observation without serving it; `action`: serve the head task with this action
        vector (docs/observation.md) instead of the policy's decision; `edges_alive`:
        the registry's view of the edges (None: none given); `drain`: the run ends,
        every queued task ends as `no_task_slot` and nothing is drawn or served.
        A malformed request raises `BadRequest` before anything is drawn."""
        t0 = time.perf_counter()
        with self._lock:
            run = self._require()
            check_step(noise_std, observe_only, action is not None, drain)
            if run.scheduler is not None and (observe_only or action is not None):
                raise BadRequest("a §B board decides on the board: no observe_only, no action")
            if action is not None:
                action = check_action(run.obs_spec, action)
            run.edges.trust_registry(edges_alive)
            if run.scheduler is not None:
                result = self._coedge_step(run.scheduler, slot, generate, drain)
            elif drain:
                result = self._drain(run, slot)
            else:
                result = self._slot(run, slot, noise_std, generate, observe_only, action)
            self.finished += len(result.records)
            queued = len(run.queue) if run.scheduler is None else result.in_flight
            result.queue_length = self.queue_length = queued
        result.step_ms = (time.perf_counter() - t0) * 1e3
        self.on_records(result.records)
        return result

    def _slot(
        self,
        run: _Run,
        slot: int,
        noise_std: float,
        generate: bool,
        observe_only: bool,
        action: np.ndarray | None,
    ) -> StepResult:
        result = StepResult(acted=False)
        if generate:
            task = run.generator.next(slot)
            if task is not None:
                self.generated += 1
                self._arrived_at[task.task_id] = time.perf_counter()
                rejected = run.queue.push(task)
                if rejected is not None:
                    result.records.append(self._unserved(run, rejected, slot))
        task = run.queue.peek() if observe_only else run.queue.pop()
        if task is None:
            return result
        try:
            # a task observed in phase one is served on what was observed then
            obs = self._observed.pop(task.task_id, None)
            if obs is None:
                obs = self._observe(run, task)
            if observe_only:
                self._observed[task.task_id] = obs
                result.observation = obs
                return result
            if action is not None:
                decision = decide(run.obs_spec, action)
            else:
                views = run.edges.views()
                ctx = DecisionContext(run.obs_spec, obs, task, run.position_m, views, run.rng)
                decision = run.policy.decide(ctx, noise_std)
            result.observation = obs
            result.acted, result.decision = True, decision
            result.records.append(self._serve(run, task, decision, slot))
        except Exception as exc:  # the task left the queue (or must): it ends here
            if run.queue.peek() is task:
                run.queue.pop()
            result.records.append(self._broken(task, slot, exc))
        return result

    def _coedge_step(
        self, scheduler: CoedgeScheduler, slot: int, generate: bool, drain: bool
    ) -> StepResult:
        """A §B slot (agent_node/scheduler.py): the tasks it drew are decided and sent at
        once; the records are those that ended since the last step (barrier slots: the
        slot's own), `in_flight` the rest; its queue is what is in flight."""
        out = scheduler.drain() if drain else scheduler.step(slot, generate)
        self.generated += out.drawn
        return StepResult(acted=out.drawn > 0, records=out.records, in_flight=out.in_flight)

    def _drain(self, run: _Run, slot: int) -> StepResult:
        """The run ended: every task still queued ends unserved (`no_task_slot`)."""
        result = StepResult(acted=False)
        for task in run.queue.drain():
            self._arrived_at.pop(task.task_id, None)
            self._observed.pop(task.task_id, None)
            detail = "the run ended before it was served"
            result.records.append(failed_record(task, slot, FailureReason.NO_TASK_SLOT, detail))
        return result

    def _broken(self, task: Task, slot: int, exc: Exception) -> TaskRecord:
        """The record of a task whose service raised `exc`: bad input is
        `invalid_request`, anything else a bug of the board (`internal`)."""
        self._arrived_at.pop(task.task_id, None)
        self._observed.pop(task.task_id, None)
        if isinstance(exc, BadRequest):
            return failed_record(task, slot, FailureReason.INVALID_REQUEST, str(exc)[:500])
        log.error("serving %s failed", task.task_id, exc_info=exc)
        detail = f"{type(exc).__name__}: {exc}"[:500]
        return failed_record(task, slot, FailureReason.INTERNAL, detail)

    def _observe(self, run: _Run, task: Task) -> np.ndarray:
        # the tasks waiting behind `task`: a task only peeked (observe_only) is still queued
        behind = len(run.queue) - (1 if run.queue.peek() is task else 0)
        return board_observation(
            run.obs_spec, task, run.position_m, run.cpu_ghz, behind, run.edges.views()
        )

    # ------------------------------------------------------------------ execution

    def _unserved(self, run: _Run, task: Task, slot: int) -> TaskRecord:
        self._arrived_at.pop(task.task_id, None)
        detail = f"the board's queue holds {len(run.queue)} tasks"
        return failed_record(task, slot, FailureReason.QUEUE_FULL, detail)

    def _serve(self, run: _Run, task: Task, decision: Decision, slot: int) -> TaskRecord:
        cfg, models = run.cfg, self._models
        assert models is not None  # created by configure
        record = new_record(task, slot)
        start = time.perf_counter()
        record.t_agent_queue_ms = (start - self._arrived_at.pop(task.task_id, start)) * 1e3
        try:
            entry = models.entry(task.model_id)
        except TestbedError as exc:
            record.reason, record.detail = exc.reason, exc.detail
            return record
        units = units_for(
            task.size_mbit, task.density_cycles_per_bit, entry, cfg.tasks.flops_per_cycle
        )
        target = decision.target if 0 <= decision.target < len(run.edges.endpoints) else -1
        local_units, edge_units = split_units(units, decision.ratio if target >= 0 else 0.0)
        if edge_units == 0:
            target = -1
        share = edge_units / units if target >= 0 else 0.0
        record.units, record.local_units, record.edge_units = units, local_units, edge_units
        nbytes = int(task.size_mbit * 1e6 / 8)
        data = task_data(task.task_id, nbytes)
        edge_bytes = round(share * nbytes)
        future = None
        if target >= 0:
            record.edge_id, record.share = run.edges.endpoints[target].edge_id, share
            record.download = decision.download
            future = self._offload(run, task, record, target, data[:edge_bytes], slot)
        try:
            local_error = self._run_local(run, task, record, data[edge_bytes:])
        except Exception:
            if future is not None:  # never leave an upload behind (it is bounded by the
                future.exception()  # task timeout); the caller records the failure
            raise
        edge_results = []
        if future is not None:
            sub = future.result()
            add_edge_share(record, sub, run.spec.transmit_power_w)
            edge_results.append(sub.result)
            if sub.result.reason is FailureReason.EDGE_UNREACHABLE:
                run.edges.mark_unreachable(record.edge_id)
        record.latency_ms = (time.perf_counter() - start) * 1e3
        return judge(record, edge_results=edge_results, local_error=local_error)

    def _offload(
        self, run: _Run, task: Task, record: TaskRecord, target: int, data: bytes, slot: int
    ) -> Future[Submission]:
        """Start streaming the offloaded share to edge `target` (paced to r_ij with link
        emulation on); the edge's answer is the future's result."""
        cfg = run.cfg
        view = run.edges.views()[target]
        paced = cfg.emulation.links_paced(cfg.inventory.remote)
        request = EdgeTaskRequest(
            task_id=task.task_id, model=ModelRef(task.model_id), units=record.edge_units,
            download=record.download, agent_id=self.agent_id, task_type=task.task_type,
            share=record.share, steps=task.steps or 0, data_bytes=len(data), slot=slot,
            upload_rate_mbps=view.rate_mbps if paced else 0.0,
        )  # fmt: skip
        pacer = Pacer(view.rate_mbps if paced else None)
        return self._pool.submit(
            run.edges.clients[target].submit, request, data,
            timeout_s=cfg.run.task_timeout_s, pacer=pacer,
        )  # fmt: skip

    def _run_local(
        self, run: _Run, task: Task, record: TaskRecord, data: bytes
    ) -> TestbedError | None:
        """Run the task's local share (`record.local_units`) on the board's own model;
        the reason it failed, or None."""
        if record.local_units <= 0:
            return None
        assert self._models is not None  # created by configure
        try:
            model = self._models.get(task.model_id)
            with self.meter.measure(EnergyPartName.LOCAL_COMPUTE) as span:
                work = model.run(record.local_units, task.steps, data, run.spec.max_batch)
                slept = stretch(work.compute_s, run.cpu_ghz, run.cfg.emulation)
            record.t_local_ms = (work.compute_s + slept) * 1e3
            record.energy.append(span.part)
        except TestbedError as exc:
            return exc
        return None
