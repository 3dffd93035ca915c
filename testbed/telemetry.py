"""Telemetry: one `telemetry/v1` record per node every `telemetry.interval_s` (data, not logs).

Each node publishes `{p}/{b}/node/{id}/telemetry` (testbed/topics.py,
docs/schemas/telemetry.v1.json): process and host figures every node has (CPU %,
memory), the GPU's figures where NVML answers (absent otherwise: never a made-up zero),
power and cumulative energy from the node's meter with the method of each, and the
node's own figures (a callable it supplies: queue length, cache, task rate and latency
over a window, counters). While the broker is away no record is made: telemetry may be
lost, and never waits for the broker.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import psutil

from testbed.energy import EnergyMeter
from testbed.mqtt import MqttClient
from testbed.payloads import PayloadSchema, stamped

log = logging.getLogger(__name__)

TASK_WINDOW_S = 30.0
"""The window of `TaskWindow`: long enough for a few slots, short enough to follow a run."""


class TaskWindow:
    """Finished tasks of the last `window_s` seconds: their rate and latency percentiles."""

    def __init__(
        self, window_s: float = TASK_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ):
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._done: deque[tuple[float, float]] = deque()  # (finished at, latency ms)

    def note(self, latency_ms: float) -> None:
        with self._lock:
            self._done.append((self._clock(), latency_ms))

    def figures(self) -> dict[str, Any]:
        """`tasks`: window_s, count, per_s and (with a task in the window) latency p50/p95."""
        now = self._clock()
        with self._lock:
            while self._done and self._done[0][0] < now - self._window_s:
                self._done.popleft()
            latencies = sorted(latency for _, latency in self._done)
        out: dict[str, Any] = {
            "window_s": self._window_s,
            "count": len(latencies),
            "per_s": round(len(latencies) / self._window_s, 4),
        }
        if latencies:
            out["latency_p50_ms"] = round(_percentile(latencies, 0.50), 3)
            out["latency_p95_ms"] = round(_percentile(latencies, 0.95), 3)
        return out


def _percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of a sorted, non-empty list."""
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


class GpuProbe:
    """Every GPU's utilisation, memory and power through NVML, or nothing where NVML
    does not answer (no package, no driver, no GPU): the record then has no `gpu`."""

    def __init__(self) -> None:
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            self._nvml = pynvml
        except Exception:  # ImportError or any NVMLError: no GPU figures, never zeros
            self._handles = []

    def figures(self) -> list[dict[str, Any]]:
        out = []
        for index, handle in enumerate(self._handles):
            gpu: dict[str, Any] = {"index": index}
            for name, read in (
                ("utilisation_percent", lambda h: self._nvml.nvmlDeviceGetUtilizationRates(h).gpu),
                ("memory_used_bytes", lambda h: self._nvml.nvmlDeviceGetMemoryInfo(h).used),
                ("memory_total_bytes", lambda h: self._nvml.nvmlDeviceGetMemoryInfo(h).total),
                ("power_w", lambda h: self._nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
            ):
                try:
                    gpu[name] = read(handle)
                except Exception:  # a figure this GPU does not give is left out
                    continue
            out.append(gpu)
        return out

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                log.debug("nvmlShutdown failed", exc_info=True)


class TelemetryPublisher:
    """Publishes a `telemetry/v1` record every `interval_s` seconds."""

    def __init__(
        self,
        client: MqttClient,
        topic: str,
        node_id: str,
        kind: str,
        interval_s: float,
        sample: Callable[[], dict[str, Any]],
        meter: EnergyMeter | None = None,
    ) -> None:
        self._client = client
        self._topic = topic
        self._node_id = node_id
        self._kind = kind
        self._interval_s = interval_s
        self._sample = sample
        self._meter = meter
        self._last_energy: tuple[float, float] | None = None  # (monotonic s, J)
        self._gpus = GpuProbe()
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first call returns 0
        psutil.cpu_percent(None)
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)

    def start(self) -> TelemetryPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._gpus.close()

    def record(self) -> dict[str, Any]:
        host = psutil.virtual_memory()
        body: dict[str, Any] = {
            "node_id": self._node_id,
            "kind": self._kind,
            "ts_unix_s": round(time.time(), 3),
            "interval_s": self._interval_s,
            "cpu_percent": self._proc.cpu_percent(None),
            "rss_bytes": self._proc.memory_info().rss,
            "host_cpu_percent": psutil.cpu_percent(None),
            "host_memory_used_bytes": host.total - host.available,
            "host_memory_total_bytes": host.total,
        }
        gpus = self._gpus.figures()
        if gpus:
            body["gpu"] = gpus
        if self._meter is not None:
            body["energy"] = self._energy()
        return stamped(PayloadSchema.TELEMETRY, {**body, **self._sample()})

    def _energy(self) -> dict[str, Any]:
        """Cumulative energy and the mean power since the last record, with the method."""
        assert self._meter is not None
        now, energy_j = time.monotonic(), self._meter.energy_j()
        out: dict[str, Any] = {"energy_j": round(energy_j, 6), "method": self._meter.method.value}
        if self._last_energy is not None and now > self._last_energy[0]:
            then, before_j = self._last_energy
            out["power_w"] = round(max(0.0, energy_j - before_j) / (now - then), 6)
            out["power_method"] = self._meter.method.value
        self._last_energy = (now, energy_j)
        return out

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            if not self._client.connected:
                continue  # no broker: the record is lost (QoS 0 is never queued), skip it
            try:
                self._client.publish_json(self._topic, self.record(), qos=0)
            except Exception:
                log.exception("telemetry sample failed")
