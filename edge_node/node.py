"""The edge node's domain: the FIFO executor over the model cache and the runtime,
the state it publishes, and the operator calls. gRPC lives in servicer.py.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from edge_node.catalog_view import CatalogView
from edge_node.executor import Job
from edge_node.model_allocation import ModelAllocation
from edge_node.model_cache import ModelCache
from edge_node.model_feed import FeedClient, FetchResult
from edge_node.share_executor import make_executor
from edge_node.validation import InvalidTaskRequest, TaskLimits, validate_task_header
from edge_node.work_estimate import WorkEstimate
from testbed.config import EdgeSpec, TestbedConfig
from testbed.emulation import stretch
from testbed.energy import EnergyMeter
from testbed.events import EventKind, EventPublisher
from testbed.messages import (
    EdgeStateSnapshot,
    EdgeTaskRequest,
    EdgeTaskResult,
    EdgeTiming,
    ModelRef,
)
from testbed.mqtt import MqttClient
from testbed.runtime import ModelRuntime
from testbed.telemetry import TaskWindow
from testbed.topics import Topics
from testbed.types import EnergyPartName, FailureReason, Outcome, TestbedError
from testbed.zoo.catalog import ModelEntry, UnknownModel
from testbed.zoo.workload import unit_flops

log = logging.getLogger(__name__)

STATE_SETTLE_S = 0.002
"""After a change, the state publisher waits this long before it takes a snapshot, so
the changes of one task (queued, running, cache hit, done) go out as one message,
sent after the task's reply rather than competing with it for the GIL (measured,
benchmarks/submit_task.py: SubmitTask p50 −0.3 ms, p95 4.5 → 2 ms). The retained
state lags a change by about this much plus the publish itself."""


class EdgeNode:
    def __init__(
        self,
        cfg: TestbedConfig,
        spec: EdgeSpec,
        *,
        client: MqttClient,
        runtime: ModelRuntime,
        meter: EnergyMeter,
        cache_dir: Path,
        events: EventPublisher | None = None,
    ) -> None:
        """`events`: where model fetches and evictions are told as they happen."""
        self.cfg = cfg
        self.spec = spec
        self.address = ""
        self._client = client
        self._topics = Topics.of(cfg)
        self._runtime = runtime
        self._meter = meter
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self.limits = TaskLimits.of(spec)
        self._active_tasks: set[str] = set()  # task ids accepted and not yet answered
        self._tasks_lock = threading.Lock()
        self._events = events or EventPublisher(client, self._topics, spec.id)
        self._window = TaskWindow()  # completed tasks: rate and latency for telemetry
        self._feed = FeedClient(client, self._topics, spec.id)
        self.catalog = CatalogView(client, self._topics)
        self.cache = ModelCache(
            capacity_bytes=int(spec.cache_capacity_mb * 1e6),
            cache_dir=cache_dir,
            runtime=runtime,
            resolve=lambda ref: self.catalog.entry(ref, spec.fetch_timeout_s),
            fetch=self._fetch,
            meter=meter,
            cloud_transmit_power_w=cfg.cloud.transmit_power_w,
            full_wait_s=cfg.run.task_timeout_s,
            on_change=self._dirty.set,
            on_evict=self._evicted,
        )
        self.work = WorkEstimate(spec.parallel_slots, self._prior_unit_s)
        self.executor = make_executor(spec, self._run_task, self._rejected, self._dirty.set)
        self.allocation = ModelAllocation(
            self.executor, spec.model_steps, spec.max_steps, self._dirty.set
        )
        self._publisher = threading.Thread(target=self._publish_loop, name="state", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self, address: str) -> list[str]:
        """Restore the cache, start publishing state; returns what the restore dropped."""
        self.address = address
        dropped = self.cache.restore()
        for line in dropped:
            log.warning("cache restore dropped %s", line)
        restored = [str(c.model) for c in self.cache.cached()]
        if restored:
            log.info("cache restored: %s", ", ".join(restored))
        self._publisher.start()
        self._dirty.set()
        return dropped

    def preload(self) -> None:
        for model_id in self.spec.preload:
            try:
                self.prefetch(ModelRef(model_id))
            except TestbedError as exc:
                log.warning("preload of %s failed: %s", model_id, exc)

    def stop(self) -> None:
        self._feed.close()  # a fetch in flight ends now, not at its timeout
        self.executor.shutdown()
        self._stopping.set()
        self._dirty.set()
        if self._publisher.ident is not None:  # not started when the start-up failed
            self._publisher.join(timeout=2)
        self.cache.close()

    # ------------------------------------------------------------------ tasks

    def admit(self, request: EdgeTaskRequest) -> None:
        """Check a task's header against the edge's bounds and hold its task id until
        the task is answered (`release`). Raises InvalidTaskRequest saying what is wrong."""
        validate_task_header(request, self.limits)
        with self._tasks_lock:
            if request.task_id in self._active_tasks:
                raise InvalidTaskRequest(
                    f"task_id {request.task_id!r} is already running or waiting on this edge"
                )
            self._active_tasks.add(request.task_id)

    def release(self, task_id: str) -> None:
        with self._tasks_lock:
            self._active_tasks.discard(task_id)

    def submit(
        self,
        request: EdgeTaskRequest,
        data: bytes,
        receive_ms: float,
        accepted_at: float,
        deadline: float | None = None,
    ) -> Job:
        """Queue an `admit`ted task; its future holds the one result. `deadline`: the
        caller's, on the `time.monotonic` clock (the task is abandoned after it)."""
        job = Job(request, data, receive_ms, accepted_at=accepted_at, deadline=deadline)
        self.work.queued(request.task_id, request.model.model_id, request.units)
        job.future.add_done_callback(lambda future: self._done(request.task_id, future))
        self.executor.submit(job)
        return job

    def _done(self, task_id: str, future: Future[EdgeTaskResult]) -> None:
        """A task was answered: its id is free again and its compute is measured."""
        result = future.result() if future.exception() is None else None
        if result is None:
            self.work.finished(task_id)
        else:
            self.work.finished(task_id, result.units_done, result.timing.compute_ms / 1e3)
        self.release(task_id)

    def _prior_unit_s(self, model_id: str) -> float | None:
        """The cost model's compute time per unit of `model_id` on this edge's clock,
        until the edge has measured one (docs/workload.md); None without a catalog."""
        catalog = self.catalog.catalog
        if catalog is None or self.spec.cpu_ghz <= 0:
            return None
        try:
            entry = catalog.get(model_id)
        except UnknownModel:
            return None
        cycles = unit_flops(entry) / self.cfg.tasks.flops_per_cycle
        return cycles / (self.spec.cpu_ghz * 1e9)

    def abandon(self, job: Job, reason: str) -> None:
        """The task's caller has gone: stop it (at the next invocation boundary)."""
        self.executor.abandon(job, reason)

    def _run_task(self, job: Job, queue_ms: float) -> EdgeTaskResult:
        req = job.request
        timing = EdgeTiming(receive_ms=job.receive_ms, queue_ms=queue_ms)
        energy = []
        try:
            with self.cache.acquire(req.model, req.download) as lease:
                timing.fetch_ms = lease.fetch_ms
                timing.verify_ms = lease.verify_ms
                timing.load_ms = lease.load_ms
                timing.warmup_ms = lease.warmup_ms
                energy.extend(lease.energy)
                digest, units_done, outputs = b"", 0, b""
                if req.units > 0:
                    self.work.started(req.task_id)
                    with self._meter.measure(EnergyPartName.EDGE_COMPUTE) as span:
                        steps = req.steps or self.allocation.steps_for(req.model.model_id)
                        run = lease.model.run(
                            req.units, steps or None, job.data, self.spec.max_batch,
                            should_stop=job.should_stop, keep_output_bytes=req.max_output_bytes,
                        )  # fmt: skip
                        stretched = stretch(run.compute_s, self.spec.cpu_ghz, self.cfg.emulation)
                    timing.compute_ms = (run.compute_s + stretched) * 1e3
                    energy.append(span.part)
                    digest, units_done, outputs = run.output_sha256, run.units_done, run.outputs
        except TestbedError as exc:
            detail = exc.detail
            if exc.reason is FailureReason.CANCELLED:
                detail = f"{job.stop_reason}; {detail}"
            return self._result(job, timing, Outcome.FAILED, exc.reason, detail, energy)
        return self._result(
            job,
            timing,
            Outcome.COMPLETED,
            FailureReason.NONE,
            "",
            energy,
            cache_hit=lease.hit,
            units_done=units_done,
            bytes_fetched=lease.bytes_fetched,
            output_sha256=digest,
            outputs=outputs,
        )

    def _rejected(self, job: Job, reason: FailureReason, detail: str) -> EdgeTaskResult:
        return self._result(
            job, EdgeTiming(receive_ms=job.receive_ms), Outcome.FAILED, reason, detail, []
        )

    def _result(
        self,
        job: Job,
        timing: EdgeTiming,
        outcome: Outcome,
        reason: FailureReason,
        detail: str,
        energy: list,
        **extra,
    ) -> EdgeTaskResult:
        timing.total_ms = (time.perf_counter() - job.accepted_at) * 1e3
        if outcome is Outcome.COMPLETED:
            self._window.note(timing.total_ms)
        if outcome is Outcome.FAILED:
            log.info("task %s failed: %s %s", job.request.task_id, reason.value, detail)
        return EdgeTaskResult(
            task_id=job.request.task_id,
            edge_id=self.spec.id,
            outcome=outcome,
            reason=reason,
            detail=detail,
            timing=timing,
            energy=tuple(energy),
            **extra,
        )

    def _evicted(self, entry: ModelEntry) -> None:
        self._events.emit(
            EventKind.MODEL_EVICTED, model_id=entry.id, version=entry.version,
            size_bytes=entry.size_bytes,
        )  # fmt: skip

    def _fetch(self, entry: ModelEntry, dest: Path) -> FetchResult:
        """Fetch a model from the cloud, telling the events of it as they happen."""
        model = {"model_id": entry.id, "version": entry.version, "size_bytes": entry.size_bytes}
        self._events.emit(EventKind.MODEL_FETCH_STARTED, **model)
        t0 = time.perf_counter()
        try:
            result = self._feed.fetch(entry, dest, timeout_s=self.spec.fetch_timeout_s)
        except TestbedError as exc:
            if exc.reason is FailureReason.CHECKSUM_MISMATCH:
                self._events.emit(EventKind.CHECKSUM_FAILURE, **model, detail=exc.detail)
            self._events.emit(
                EventKind.MODEL_FETCH_FAILED, **model, reason=exc.reason.value,
                detail=exc.detail, elapsed_ms=round((time.perf_counter() - t0) * 1e3, 3),
            )  # fmt: skip
            raise
        self._events.emit(
            EventKind.MODEL_FETCH_FINISHED, **model, bytes_received=result.bytes_received,
            fetch_ms=round(result.fetch_s * 1e3, 3), verify_ms=round(result.verify_s * 1e3, 3),
        )  # fmt: skip
        return result

    # ------------------------------------------------------------------ operator calls

    def prefetch(self, ref: ModelRef) -> EdgeTiming:
        """Fetch and admit `ref` now (if missing). Raises TestbedError with the reason."""
        timing = EdgeTiming()
        t0 = time.perf_counter()
        with self.cache.acquire(ref, download=True) as lease:
            timing.fetch_ms, timing.verify_ms = lease.fetch_ms, lease.verify_ms
            timing.load_ms, timing.warmup_ms = lease.load_ms, lease.warmup_ms
        timing.total_ms = (time.perf_counter() - t0) * 1e3
        return timing

    def evict(self, ref: ModelRef) -> None:
        self.cache.evict(ref)

    # ------------------------------------------------------------------ state

    def snapshot(self) -> EdgeStateSnapshot:
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        pos = self.spec.position_m or (0.0, 0.0)
        return EdgeStateSnapshot(
            edge_id=self.spec.id,
            seq=seq,
            queue_length=self.executor.queue_length,
            running=self.executor.running,
            cached=self.allocation.annotate(self.cache.cached()),
            cache_used_bytes=self.cache.used_bytes,
            cache_capacity_bytes=self.cache.capacity_bytes,
            counters=self.cache.counters_copy(),
            cpu_ghz=self.spec.cpu_ghz,
            position_m=(float(pos[0]), float(pos[1])),
            runtime=self._runtime.provider,
            address=self.address,
            uplink_capacity_mbps=self.spec.uplink_capacity_mbps,
            timestamp_unix_s=round(time.time(), 6),
            queued_work_s=round(self.work.queued_work_s(), 6),
            unit_compute_ms=self.work.unit_compute_ms(),
        )

    def _publish_loop(self) -> None:
        """Publish the retained state after every change (bursts coalesce): the first
        change of a burst starts a `STATE_SETTLE_S` wait, then one snapshot goes out."""
        topic = self._topics.edge_state(self.spec.id)
        while True:
            self._dirty.wait()
            self._stopping.wait(STATE_SETTLE_S)
            self._dirty.clear()
            if self._stopping.is_set():
                return
            try:
                self._client.publish_retained(topic, self.snapshot().to_json())
            except Exception:
                log.exception("publishing state failed")

    def telemetry(self) -> dict:
        """The edge's own part of its `telemetry/v1` record (testbed/telemetry.py)."""
        c = self.cache.counters_copy()
        return {
            "queue_length": self.executor.queue_length,
            "running": self.executor.running,
            "tasks_done": self.executor.completed,
            "tasks_cancelled": self.executor.cancelled,
            "tasks": self._window.figures(),
            "cache": {
                "model_ids": [c.model.model_id for c in self.cache.cached()],
                "used_bytes": self.cache.used_bytes,
                "total_bytes": self.cache.capacity_bytes,
                "hits": c.hits,
                "misses": c.misses,
                "evictions": c.evictions,
                "fetches": c.fetches,
                "bytes_fetched": c.bytes_fetched,
                "checksum_failures": c.checksum_failures,
            },
        }
