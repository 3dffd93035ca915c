"""The bench's metrics for Prometheus: one aggregator subscribed to the bench's topic
tree (testbed/topics.py) that serves `/metrics` (docs/telemetry.md, "Prometheus and
Grafana").

Boards open no port: every node already publishes its telemetry, state, status and
task records on MQTT, and this exporter is the one thing Prometheus scrapes. It parses
the payloads itself (docs/schemas/) and keeps only each node's newest figures, so a
scrape reads memory, never the broker. A node's cumulative counters (energy, cache
hits) are exported as the node says them: a node that restarts starts them again from
zero, which Prometheus' `rate()` and `increase()` read as a counter reset.

Labels are the node id and its role (`cloud`, `edge`, `agent`), a task's outcome and
type, an energy method: never a task id, which would make a series per task.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from testbed.config import TestbedConfig
from testbed.mqtt import MqttClient
from testbed.mqtt_auth import MONITOR_ID, node_broker_address
from testbed.payloads import SCHEMA_KEY, PayloadSchema
from testbed.topics import Topics
from testbed.types import Outcome

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Task latency histogram buckets, in s: a tiny zoo's tasks take tens of ms, a real
diffusion model's tens of seconds."""

GAUGES = {
    "up": ("testbed_node_up", "1: the node's status says online, 0: offline."),
    "cpu": ("testbed_cpu_percent", "The node process's CPU, % of one core."),
    "memory": ("testbed_memory_bytes", "The node process's resident memory."),
    "power": ("testbed_power_watts", "The node's mean power since its previous record."),
    "queue": ("testbed_queue_length", "Tasks waiting at the node."),
    "used": ("testbed_cache_used_bytes", "Bytes of models in the edge's cache."),
    "capacity": ("testbed_cache_capacity_bytes", "The size of the edge's cache."),
}
"""Per-node gauges: key -> (metric name, help)."""
CACHE_COUNTERS = {
    "hits": ("testbed_cache_hits", "Cache hits since the edge started."),
    "misses": ("testbed_cache_misses", "Cache misses since the edge started."),
    "evictions": ("testbed_cache_evictions", "Models evicted since the edge started."),
}
"""An edge's cache counters (telemetry `cache` keys) -> (metric name without _total, help)."""
UNKNOWN_ROLE = "unknown"
STATUS_ONLINE = b"online"


def roles_of(cfg: TestbedConfig) -> dict[str, str]:
    """Each node id of the bench `cfg` describes, and its role."""
    roles = {"cloud": "cloud"}
    roles.update({s.id: "edge" for s in cfg.edge_specs()})
    roles.update({s.id: "agent" for s in cfg.agent_specs()})
    return roles


@dataclass
class NodeFigures:
    """A node's newest figures, as its last telemetry / state / status said them."""

    up: bool | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    power_w: float | None = None
    energy_j: float | None = None
    energy_method: str = ""
    queue_length: int | None = None
    cache: dict[str, Any] = field(default_factory=dict)


class BenchMetrics(Collector):
    """Feed it `(topic, payload)` with `handle`; read `registry` (its own, never the
    process-wide default) with prometheus-client."""

    def __init__(self, topics: Topics, roles: dict[str, str] | None = None) -> None:
        self.topics = topics
        self.registry = CollectorRegistry(auto_describe=True)
        self._roles = dict(roles or {})
        self._nodes: dict[str, NodeFigures] = {}
        self._lock = threading.Lock()
        self.bad_payloads = 0
        self.tasks_total = Counter(
            "testbed_tasks", "Finished tasks by generating agent and outcome.",
            ["node", "role", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.task_latency = Histogram(
            "testbed_task_latency_seconds",
            "End-to-end latency of completed tasks, by generating agent and task type.",
            ["node", "role", "task_type"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        self.events_total = Counter(
            "testbed_events", "Events by node and kind.", ["node", "role", "kind"],
            registry=self.registry,
        )  # fmt: skip
        self.registry.register(self)

    # ------------------------------------------------------------------ input

    def topic_filters(self) -> list[str]:
        """What to subscribe to: every topic the metrics come from (never the feed)."""
        root = self.topics.root
        suffixes = ("node/+/status", "node/+/telemetry", "edge/+/state", "tasks/+", "events/+")
        return [f"{root}/{s}" for s in suffixes]

    def subscribe(self, client: MqttClient) -> None:
        for topic_filter in self.topic_filters():
            client.subscribe(topic_filter, self.handle)

    def handle(self, topic: str, payload: bytes) -> None:
        """One message of the bench; a payload that is not what its schema says is
        counted and skipped (a bad message must never stop the exporter)."""
        parts = topic.removeprefix(self.topics.root + "/").split("/")
        try:
            if parts[0] == "node" and parts[-1] == "status":
                self._figures(parts[1]).up = payload.strip() == STATUS_ONLINE
                return
            body = json.loads(payload)
            schema = body.get(SCHEMA_KEY)
            if schema == PayloadSchema.TELEMETRY:
                self._telemetry(body)
            elif schema == PayloadSchema.EDGE_STATE:
                self._role(body["edge_id"], "edge")
                self._figures(body["edge_id"]).queue_length = int(body["queue_length"])
            elif schema == PayloadSchema.TASK_RECORD:
                self._task_record(body)
            elif schema == PayloadSchema.EVENT:
                node = str(body["node_id"])
                self.events_total.labels(node, self.role(node), str(body["kind"])).inc()
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            with self._lock:
                self.bad_payloads += 1
            log.debug("skipped a bad payload on %s: %s", topic, exc)

    def _telemetry(self, body: dict[str, Any]) -> None:
        node = str(body["node_id"])
        self._role(node, str(body["kind"]))
        energy = body.get("energy") or {}
        with self._lock:
            figures = self._nodes.setdefault(node, NodeFigures())
            figures.cpu_percent = float(body["cpu_percent"])
            figures.memory_bytes = int(body["rss_bytes"])
            if "power_w" in energy:
                figures.power_w = float(energy["power_w"])
            if "energy_j" in energy:
                figures.energy_j = float(energy["energy_j"])
                figures.energy_method = str(energy["method"])
            if "queue_length" in body:
                figures.queue_length = int(body["queue_length"])
            if "cache" in body:
                figures.cache = dict(body["cache"])

    def _task_record(self, body: dict[str, Any]) -> None:
        node = str(body["agent_id"])
        role = self.role(node)
        outcome = Outcome(body["outcome"])
        self.tasks_total.labels(node, role, outcome.value).inc()
        if outcome is Outcome.COMPLETED:
            seconds = float(body["latency_ms"]) / 1e3
            self.task_latency.labels(node, role, str(body["task_type"])).observe(seconds)

    def _figures(self, node: str) -> NodeFigures:
        with self._lock:
            return self._nodes.setdefault(node, NodeFigures())

    def _role(self, node: str, role: str) -> None:
        with self._lock:
            self._roles.setdefault(node, role)

    def role(self, node: str) -> str:
        with self._lock:
            return self._roles.get(node, UNKNOWN_ROLE)

    # ------------------------------------------------------------------ output

    def collect(self) -> Iterator[Metric]:
        """Every node's newest figures as metric families (called on each scrape)."""
        labels = ["node", "role"]
        gauges = {
            key: GaugeMetricFamily(name, text, labels=labels)
            for key, (name, text) in GAUGES.items()
        }
        counters = {
            key: CounterMetricFamily(name, text, labels=labels)
            for key, (name, text) in CACHE_COUNTERS.items()
        }
        energy = CounterMetricFamily(
            "testbed_energy_joules", "Energy since the node started, by how it was measured.",
            labels=[*labels, "method"],
        )  # fmt: skip
        with self._lock:
            nodes = {n: (self._roles.get(n, UNKNOWN_ROLE), f) for n, f in self._nodes.items()}
            bad = self.bad_payloads
        for node, (role, f) in sorted(nodes.items()):
            values = {
                "up": None if f.up is None else float(f.up), "cpu": f.cpu_percent,
                "memory": f.memory_bytes, "power": f.power_w, "queue": f.queue_length,
                "used": f.cache.get("used_bytes"), "capacity": f.cache.get("total_bytes"),
            }  # fmt: skip
            for key, value in values.items():
                if value is not None:
                    gauges[key].add_metric([node, role], float(value))
            for key, family in counters.items():
                if key in f.cache:
                    family.add_metric([node, role], float(f.cache[key]))
            if f.energy_j is not None:
                energy.add_metric([node, role, f.energy_method], f.energy_j)
        yield from gauges.values()
        yield from counters.values()
        yield energy
        skipped = CounterMetricFamily(
            "testbed_exporter_bad_payloads", "Messages the exporter could not read."
        )
        skipped.add_metric([], float(bad))
        yield skipped

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the families exist only once nodes report: none to describe


class MetricsServer:
    """The exporter running: `BenchMetrics` subscribed to the bench's broker with the
    read-only `monitor` login (testbed/mqtt_auth.py), served on
    http://HOST:PORT/metrics (port 0: a free one). Raises
    `MqttUnavailable` if the broker cannot be reached, `OSError` if the port is taken."""

    def __init__(
        self, cfg: TestbedConfig, broker_url: str, topics: Topics, host: str, port: int
    ) -> None:
        self.metrics = BenchMetrics(topics, roles_of(cfg))
        address = node_broker_address(broker_url, cfg, MONITOR_ID)
        self.client = MqttClient(address, f"{MONITOR_ID}-exporter")
        self.metrics.subscribe(self.client)
        self.client.connect()
        try:
            self.server, _thread = start_http_server(port, host, registry=self.metrics.registry)
        except OSError:
            self.client.close()
            raise
        self.url = f"http://{host}:{self.server.server_port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
