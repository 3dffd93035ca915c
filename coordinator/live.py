"""The live bench: every node a process, the coordinator's registry, the slot driver.

`LiveBench.step(slot)` calls `Step` on every agent in parallel and waits for all of
them (one barrier per slot), then computes each task's reward (18) with
testbed/costs.py from the measured numbers. An agent that does not answer still has
its slot's task recorded — the coordinator draws the same task the board would have
(the generator is a function of seed, agent and slot) and records it as failed with
`agent_unreachable` — so every generated task appears exactly once. A board that
restarts re-registers and is configured again before its next step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from coordinator.actors import check_fits
from coordinator.bench_events import CoordinatorEvents
from coordinator.bench_hosts import LogFetch, write_hosts_manifest
from coordinator.boards import (
    AgentStep,
    BoardHandle,
    NodeEvent,
    OwedTasks,
    PendingStep,
    SlotResult,
)
from coordinator.launcher import Launcher
from coordinator.node_directory import NodeDirectory
from coordinator.policy_choice import BoardPolicies, PolicySource
from coordinator.registry import NodeRecord, NodeState, NodeTable, Registry
from coordinator.remote_bench import advertised_registry, check_remote_config, registry_listen
from testbed import costs, serde
from testbed.config import TestbedConfig
from testbed.daemon import GrpcServer
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.messages import TaskRecord
from testbed.observation import Decision, ObservationSpec
from testbed.rpc.v1 import agent_pb2, common_pb2
from testbed.security.credentials import coordinator_identity
from testbed.tasks import TaskGenerator
from testbed.types import FailureReason, NodeKind, Outcome

log = logging.getLogger(__name__)


@dataclass
class LiveBench:
    """Start with `start()`, drive with `step()`, end with `close()` (or `with`)."""

    cfg: TestbedConfig
    run_dir: Path
    config_path: Path
    zoo_dir: Path
    keep: bool = False
    events: list[NodeEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.table = NodeTable(
            self.cfg.registry,
            on_state_change=self._on_state_change,
            on_register=self._on_register,
        )
        self.registry = Registry(self.table)
        self.grpc_identity = coordinator_identity(self.cfg)  # mTLS when the bench's gRPC is
        try:
            self._registry_server = GrpcServer(
                *registry_listen(self.cfg),
                [self.registry.add_to_server],
                service_names=["testbed.v1.Registry"], identity=self.grpc_identity,
            )  # fmt: skip
        except TestbedExit as exc:  # a fixed registry.listen port someone else holds
            raise TestbedExit(exc.code, f"registry.listen: {exc.message}") from None
        self.launcher = Launcher(
            self.cfg, self.run_dir, self.config_path, zoo_dir=self.zoo_dir,
            registry_address=advertised_registry(self.cfg, self._registry_server.port),
            keep=self.keep,
        )  # fmt: skip
        self.nodes = NodeDirectory(self.cfg, self.registry, self.launcher)  # where is node X
        self._logs: LogFetch | None = None  # a bench of hosts: its nodes' logs, fetched at close
        self.bench_events = CoordinatorEvents.silent()  # on the broker once it runs
        self.agents: dict[str, BoardHandle] = {}
        self.policy = PolicySource(self.cfg.run.policy)
        self._per_agent: dict[str, PolicySource] = {}  # overrides self.policy per agent
        self.obs_spec = ObservationSpec.from_config(self.cfg)
        self._lock = threading.Lock()
        self._slot = -1
        self._closing = False
        self._t0 = time.monotonic()
        self._pool = ThreadPoolExecutor(max(4, self.cfg.agents.count), thread_name_prefix="step")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="step-loop", daemon=True
        )
        self._loop_thread.start()
        self._weights = {t.name: t.weight for t in self.cfg.tasks.types}

    # ------------------------------------------------------------------ lifecycle

    def start(self, policy: BoardPolicies | None = None) -> None:
        """Start the registry and the broker, then the cloud, edges and agents (a bench
        of hosts runs its own: wait until each has registered); configure the agents
        with `policy` (one for all, or one per agent id)."""
        if policy is not None:
            self._set_policy(policy)
        elif self.policy.actor is not None:
            check_fits(self.policy.actor, self.obs_spec)
        check_remote_config(self.cfg)
        if self.nodes.remote:  # what the hosts' services log from now on is this run's
            self._logs = LogFetch(self.cfg, self.run_dir / "logs")
            self._logs.mark()
        self._registry_server.start()
        self.registry.start()
        self.launcher.start_broker()
        self.bench_events = CoordinatorEvents.connect(self.cfg, self.launcher.broker_url)
        if not self.nodes.remote:
            cloud = self.launcher.start_cloud()
            edges = [self.launcher.start_edge(s) for s in self.cfg.edge_specs()]
            self.launcher.wait_ready([cloud, *edges])
            self.launcher.wait_ready([self.launcher.start_agent(s) for s in self.cfg.agent_specs()])
        self.nodes.wait_registered(self.cfg.node_ids(), self.cfg.run.start_timeout_s)
        for spec in self.cfg.agent_specs():
            owed = OwedTasks(spec.id, self.task_generator(spec.id))
            self.agents[spec.id] = BoardHandle(
                spec.id, self.nodes.address(spec.id), owed, identity=self.grpc_identity
            )
        with self._lock:
            for handle in self.agents.values():
                record = self.table.get(handle.agent_id)
                handle.session = record.session_id if record else ""
        for handle, error in zip(
            self.agents.values(), self._pool.map(self._configure, self.agents.values()), strict=True
        ):
            if error:
                raise TestbedExit(ExitCode.NODE_START_FAILED, f"{handle.agent_id}: {error}")
        if self.nodes.remote:
            broker = self.launcher.broker_description
            write_hosts_manifest(self.cfg, self.nodes, self.run_dir, broker)

    def task_generator(self, agent_id: str) -> TaskGenerator:
        """The generator board `agent_id` draws its tasks from (seed, agent, slot)."""
        tasks = self.cfg.tasks
        return TaskGenerator(agent_id, tasks.active_types, tasks.arrival_prob, self.cfg.seed)

    def close(self) -> None:
        self._closing = True
        self._pool.shutdown(wait=False, cancel_futures=True)

        async def close_channels() -> None:
            for handle in self.agents.values():
                await handle.aclose()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(close_channels(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(5)
        for handle in self.agents.values():
            handle.close()
        if self._logs is not None:
            self._logs.fetch()
        self.bench_events.close()  # before the broker stops: no "lost the broker" at exit
        if not self.keep:
            self.launcher.stop_all()
        self.registry.stop()
        self._registry_server.stop(0.5)

    def __enter__(self) -> LiveBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ registry events

    def _on_register(self, record: NodeRecord) -> None:
        if record.kind is not NodeKind.AGENT:
            return
        with self._lock:
            handle = self.agents.get(record.node_id)
            if handle is not None and handle.session and handle.session != record.session_id:
                log.info("%s registered again: it will be configured again", record.node_id)
                handle.needs_configure = True
                handle.address = self.nodes.reachable(record) or handle.address
            if handle is not None:
                handle.session = record.session_id

    def _on_state_change(self, node_id: str, old: NodeState | None, new: NodeState) -> None:
        if self._closing:
            return  # nodes deregistering at teardown are not events of the run
        event = NodeEvent(
            round(time.monotonic() - self._t0, 3), self._slot, node_id,
            old.value if old else "new", new.value,
        )  # fmt: skip
        self.events.append(event)
        if old is not None:
            log.warning("node %s: %s -> %s (slot %d)", node_id, old.value, new.value, self._slot)

    def node_states(self) -> dict[str, str]:
        return {r.node_id: r.state.value for r in self.table.nodes()}

    # ------------------------------------------------------------------ agents

    def _configure(self, handle: BoardHandle) -> str:
        """Configure (if needed) + LoadPolicy; returns an error text ('' on success)."""
        request = agent_pb2.ConfigureRequest(
            agent_id=handle.agent_id,
            config_yaml=self.cfg.to_yaml(),
            run_id=self.run_dir.name,
            edges=[
                agent_pb2.EdgeEndpoint(
                    edge_id=s.id,
                    address=self.nodes.address(s.id),
                    position=common_pb2.Position(x_m=s.position_m[0], y_m=s.position_m[1]),
                )
                for s in self.cfg.edge_specs()
                if s.position_m is not None
            ],
        )
        source = self._per_agent.get(handle.agent_id, self.policy)
        actor = source.actor
        policy = agent_pb2.LoadPolicyRequest(
            name=source.name,
            onnx_model=actor.model if actor else b"",
            spec_json=actor.spec.to_json() if actor else "",
            seed=self.cfg.seed,
        )
        timeout = self.cfg.run.start_timeout_s
        stub = handle.connect()
        try:
            if handle.needs_configure:
                stub.Configure(request, timeout=timeout)
                handle.needs_configure = False
                handle.needs_policy = True
            if handle.needs_policy:
                stub.LoadPolicy(policy, timeout=timeout)
                handle.needs_policy = False
                self.bench_events.policy_loaded(source.name, [handle.agent_id])
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return ""

    def load_policy(self, policy: BoardPolicies) -> None:
        """Send a new policy to the boards before their next step: one for every agent,
        or one per agent id (e.g. each agent's own trained actor)."""
        self._set_policy(policy)
        for handle in self.agents.values():
            handle.needs_policy = True

    def _set_policy(self, policy: BoardPolicies) -> None:
        sources = policy.values() if isinstance(policy, dict) else [policy]
        for source in sources:
            if source.actor is not None:
                check_fits(source.actor, self.obs_spec)
        if isinstance(policy, dict):
            unknown = sorted(set(policy) - {s.id for s in self.cfg.agent_specs()})
            if unknown:
                raise TestbedExit(ExitCode.USAGE, f"policies for unknown agents: {unknown}")
            self._per_agent = dict(policy)
        else:
            self.policy, self._per_agent = policy, {}

    def _send(
        self,
        handle: BoardHandle,
        slot: int,
        noise_std: float,
        generate: bool,
        observe_only: bool = False,
        action: np.ndarray | None = None,
    ) -> PendingStep:
        """Prepare one agent's Step (configuring the agent first if it needs it). The
        task it owes for this Step is drawn here (`generate`), or is the head of its
        queue (an `action` serves the task observed before)."""
        owed = handle.owed
        task = owed.draw(slot) if generate else None
        drew = task is not None
        if action is not None and task is None and owed.tasks:
            task = next(iter(owed.tasks.values()))
        if handle.needs_configure or handle.needs_policy:
            error = self._configure(handle)
            if error:
                return PendingStep(handle, slot, task, drew, failed=f"not configured: {error}")
        request = agent_pb2.StepRequest(
            slot=slot, noise_std=noise_std, generate=generate, observe_only=observe_only,
            edges_alive=self._edges_alive, edges_view=True,
        )  # fmt: skip
        if action is not None:
            request.action.raw.extend(np.asarray(action, dtype=np.float32).tolist())
        return PendingStep(handle, slot, task, drew, request=request)

    async def _call(self, pending: PendingStep) -> agent_pb2.StepReport | grpc.RpcError | None:
        if pending.request is None:
            return None
        stub = await pending.handle.aconnect()
        try:
            return await stub.Step(pending.request, timeout=self.cfg.run.step_timeout_s)
        except grpc.RpcError as exc:
            return exc

    def _fan_out(self, pending: list[PendingStep]) -> list[Any]:
        """Every Step of a slot at once on the bench's event loop (one thread: cheaper
        than a thread per call on a machine the boards share), then the barrier."""

        async def all_calls() -> list[Any]:
            return await asyncio.gather(*(self._call(p) for p in pending))

        return asyncio.run_coroutine_threadsafe(all_calls(), self._loop).result()

    def _receive(self, pending: PendingStep, reply: Any) -> tuple[AgentStep, list[TaskRecord]]:
        """One board's answer: the records of tasks it owed (others refused), and a
        record of each owed task it should have reported by now and did not."""
        handle, slot = pending.handle, pending.slot
        if reply is None or isinstance(reply, grpc.RpcError):
            return self._unanswered(pending, reply)
        report = reply
        records = handle.owed.settle([serde.task_record_from_pb(r) for r in report.tasks])
        records += handle.owed.overdue(report.queue_length, slot)
        step = AgentStep(handle.agent_id, report.acted, step_ms=report.step_ms)
        if report.observation:
            step.observation = np.asarray(report.observation, dtype=np.float32)
        if report.acted:
            a = report.action
            step.decision = Decision(a.target, a.ratio, a.download, tuple(a.raw))
        return step, records

    def _unanswered(
        self, pending: PendingStep, error: grpc.RpcError | None
    ) -> tuple[AgentStep, list[TaskRecord]]:
        """A Step that failed: the task it owed ends with the reason the status gives. A
        refused action leaves the board's queue as it was: its task stays owed."""
        handle, slot, task = pending.handle, pending.slot, pending.task
        reason, detail = FailureReason.AGENT_UNREACHABLE, pending.failed
        if error is not None:
            code = error.code()
            detail = f"{code.name}: {error.details() or ''}".strip(": ")
            if code is grpc.StatusCode.FAILED_PRECONDITION:
                handle.needs_configure = True
            elif code is grpc.StatusCode.INVALID_ARGUMENT:
                reason = FailureReason.INVALID_REQUEST
            elif code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                reason = FailureReason.INTERNAL
        records = []
        refused_action = reason is FailureReason.INVALID_REQUEST and not pending.drew
        if task is not None and task.task_id in handle.owed.tasks and not refused_action:
            records.append(handle.owed.fail(task, slot, reason, detail))
        log.warning("%s did not answer slot %d: %s", handle.agent_id, slot, detail[:200])
        return AgentStep(handle.agent_id, False, reachable=False), records

    # ------------------------------------------------------------------ slots

    def step(self, slot: int, noise_std: float = 0.0, generate: bool = True) -> SlotResult:
        """One slot: every board draws, decides (its own policy), executes and reports."""
        self._slot = slot
        t0 = time.perf_counter()
        pending = [self._send(h, slot, noise_std, generate) for h in self.agents.values()]
        return self._collect(slot, pending, t0)

    def observe(self, slot: int) -> SlotResult:
        """Phase one of a trainer's slot: every board draws and queues its task and
        answers with its observation (`steps[agent].observation`; None: no task)."""
        self._slot = slot
        t0 = time.perf_counter()
        pending = [self._send(h, slot, 0.0, True, observe_only=True) for h in self.agents.values()]
        return self._collect(slot, pending, t0)

    def act(self, slot: int, actions: dict[str, np.ndarray]) -> SlotResult:
        """Phase two: serve each board's queued task with the given action vector."""
        t0 = time.perf_counter()
        pending = [
            self._send(h, slot, 0.0, False, action=actions[h.agent_id])
            for h in self.agents.values()
            if h.agent_id in actions
        ]
        return self._collect(slot, pending, t0)

    def drain(self) -> list[TaskRecord]:
        """End of a run: every board reports the tasks still in its queue (failed,
        `no_task_slot`); whatever a board still owes after that is recorded as missing,
        or unreachable if the board did not answer. Nothing owed is left."""
        slot = self._slot + 1
        pending = []
        for handle in self.agents.values():
            request = agent_pb2.StepRequest(slot=slot, generate=False, drain=True)
            pending.append(PendingStep(handle, slot, request=request))
        records: list[TaskRecord] = []
        for p, reply in zip(pending, self._fan_out(pending), strict=True):
            owed = p.handle.owed
            if reply is None or isinstance(reply, grpc.RpcError):
                detail = f"no answer at the end of the run: {getattr(reply, 'code', lambda: '')()}"
                records += owed.fail_all(slot, FailureReason.AGENT_UNREACHABLE, detail)
                continue
            records += owed.settle([serde.task_record_from_pb(r) for r in reply.tasks])
            detail = f"{p.handle.agent_id} never reported it by the end of the run"
            records += owed.fail_all(slot, FailureReason.RECORD_MISSING, detail)
        return self._rewarded(records)

    def interrupted(self, detail: str = "the run was stopped") -> list[TaskRecord]:
        """Ctrl-C or SIGTERM: a record for every task still owed (the slot in flight
        and tasks queued on the boards), failed as `interrupted`."""
        records = []
        for handle in self.agents.values():
            records += handle.owed.fail_all(self._slot, FailureReason.INTERRUPTED, detail)
        return self._rewarded(records)

    def refused_records(self) -> dict[str, list[str]]:
        """Records the boards sent for tasks they did not owe, by agent (task ids)."""
        return {a: h.owed.refused for a, h in self.agents.items() if h.owed.refused}

    @property
    def _edges_alive(self) -> list[str]:
        return [
            r.node_id
            for r in self.table.nodes()
            if r.kind is NodeKind.EDGE and r.state is NodeState.ALIVE
        ]

    def _rewarded(self, records: list[TaskRecord]) -> list[TaskRecord]:
        for r in records:
            r.reward = self.reward(r)
        return records

    def _collect(self, slot: int, pending: list[PendingStep], t0: float) -> SlotResult:
        steps: dict[str, AgentStep] = {}
        records: list[TaskRecord] = []
        for p, reply in zip(pending, self._fan_out(pending), strict=True):
            step, recs = self._receive(p, reply)
            steps[p.handle.agent_id] = step
            records.extend(recs)
        self._rewarded(records)
        wall_ms = (time.perf_counter() - t0) * 1e3
        max_step = max((s.step_ms for s in steps.values()), default=0.0)
        if not any(p.request is not None and p.request.observe_only for p in pending):
            self.bench_events.slot_finished(slot, records, wall_ms)  # observing ends no slot
        return SlotResult(slot, records, steps, wall_ms, max_step)

    def reward(self, record: TaskRecord) -> float:
        """Reward (18) of the measured latency and energy."""
        done = record.outcome is Outcome.COMPLETED
        latency_s = costs.charged_latency_s(
            record.latency_ms / 1e3, record.deadline_s, done, self.cfg.reward
        )
        return float(
            costs.reward(
                latency_s,
                record.energy_j,
                self._weights.get(record.task_type, 1.0),
                self.cfg.reward,
                violated=not done,
            )
        )

    def run(
        self, slots: int, progress: Callable[[SlotResult], None] | None = None,
        noise_std: float = 0.0,
    ) -> list[SlotResult]:  # fmt: skip
        results = []
        for slot in range(slots):
            result = self.step(slot, noise_std)
            results.append(result)
            if progress is not None:
                progress(result)
        return results

    def cache_counters(self) -> dict[str, dict[str, Any]]:
        from testbed.edge_client import EdgeClient

        out = {}
        for spec in self.cfg.edge_specs():
            if not self.nodes.alive(spec.id):
                continue
            try:
                with EdgeClient(self.nodes.address(spec.id), spec.id, self.grpc_identity) as client:
                    c = client.state(timeout_s=2).counters
            except grpc.RpcError:
                continue
            out[spec.id] = {
                "hits": c.hits, "misses": c.misses, "evictions": c.evictions,
                "bytes_fetched": c.bytes_fetched,
            }  # fmt: skip
        return out
