"""What `testbed monitor` knows about a bench: a pure view built from its MQTT messages.

`BenchView.feed(topic, payload)` takes every message of `{p}/{b}/#` (testbed/topics.py)
in the order they arrived; `snapshot()` gives the view as plain JSON values with stable
keys, so that the live dashboard, `monitor --once --json` and a replay of a run's
`telemetry.jsonl` (coordinator/monitor/recorder.py) all say the same thing. No I/O,
no clock of its own: a message's age is measured against the newest time fed, so a
replay gives the snapshot the live run gave.
"""

from __future__ import annotations

import enum
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from testbed.payloads import SCHEMA_KEY, PayloadSchema

DEFAULT_POINTS = 120
"""Latency / energy points kept per node (at a 1 s telemetry interval: two minutes)."""

DEFAULT_EVENTS = 50
"""Latest events kept."""


class NodeStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


@dataclass
class NodeView:
    node_id: str
    role: str = "unknown"
    host: str | None = None
    status: NodeStatus = NodeStatus.UNKNOWN
    last_telemetry_unix_s: float | None = None
    latency_p50_ms: deque[float] = field(default_factory=deque)
    energy_j: deque[float] = field(default_factory=deque)
    power_w: deque[float] = field(default_factory=deque)


@dataclass
class EdgeView:
    edge_id: str
    cached_models: list[str] = field(default_factory=list)
    used_bytes: int = 0
    total_bytes: int = 0
    hits: int = 0
    misses: int = 0
    queue_length: int = 0

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


class BenchView:
    """A bench's nodes, edges' caches, recent latency / energy and latest events."""

    def __init__(self, points: int = DEFAULT_POINTS, events: int = DEFAULT_EVENTS) -> None:
        self._points = points
        self.nodes: dict[str, NodeView] = {}
        self.edges: dict[str, EdgeView] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=events)
        self.messages = 0
        self.newest_unix_s: float | None = None

    # ------------------------------------------------------------------ input

    def feed(self, topic: str, payload: bytes | str, received_unix_s: float | None = None) -> None:
        """One message of the bench's topic tree; anything it cannot read is ignored
        (a monitor must survive whatever is on the broker)."""
        self.messages += 1
        if received_unix_s is not None:
            self._saw_time(received_unix_s)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        parts = topic.split("/")
        if len(parts) >= 5 and parts[-3] == "node" and parts[-1] == "status":
            self._status(parts[-2], text.strip())
            return
        try:
            body = json.loads(text)
        except ValueError:
            return
        if isinstance(body, dict):
            self.feed_json(body)

    def feed_json(self, body: dict[str, Any]) -> None:
        """One parsed JSON payload, routed by its `schema` field (testbed/payloads.py)."""
        schema = body.get(SCHEMA_KEY)
        if schema == PayloadSchema.TELEMETRY:
            self._telemetry(body)
        elif schema == PayloadSchema.EDGE_STATE:
            self._edge_state(body)
        elif schema == PayloadSchema.EVENT:
            self._event(body)

    def _saw_time(self, unix_s: float) -> None:
        if self.newest_unix_s is None or unix_s > self.newest_unix_s:
            self.newest_unix_s = unix_s

    def _node(self, node_id: str) -> NodeView:
        node = self.nodes.get(node_id)
        if node is None:
            node = self.nodes[node_id] = NodeView(
                node_id, latency_p50_ms=deque(maxlen=self._points),
                energy_j=deque(maxlen=self._points), power_w=deque(maxlen=self._points),
            )  # fmt: skip
        return node

    def _edge(self, edge_id: str) -> EdgeView:
        return self.edges.setdefault(edge_id, EdgeView(edge_id))

    def _status(self, node_id: str, text: str) -> None:
        node = self._node(node_id)
        try:
            node.status = NodeStatus(text)
        except ValueError:
            node.status = NodeStatus.UNKNOWN

    def _telemetry(self, body: dict[str, Any]) -> None:
        node = self._node(str(body.get("node_id", "?")))
        node.role = str(body.get("kind", node.role))
        if isinstance(body.get("host"), str):
            node.host = body["host"]
        ts = body.get("ts_unix_s")
        if isinstance(ts, int | float):
            node.last_telemetry_unix_s = float(ts)
            self._saw_time(float(ts))
        latency = (body.get("tasks") or {}).get("latency_p50_ms")
        if isinstance(latency, int | float):
            node.latency_p50_ms.append(float(latency))
        energy = body.get("energy") or {}
        if isinstance(energy.get("energy_j"), int | float):
            node.energy_j.append(float(energy["energy_j"]))
        if isinstance(energy.get("power_w"), int | float):
            node.power_w.append(float(energy["power_w"]))
        cache = body.get("cache")
        if isinstance(cache, dict):
            edge = self._edge(node.node_id)
            edge.cached_models = [str(m) for m in cache.get("model_ids", [])]
            edge.used_bytes = int(cache.get("used_bytes", edge.used_bytes))
            edge.total_bytes = int(cache.get("total_bytes", edge.total_bytes))
            edge.hits = int(cache.get("hits", edge.hits))
            edge.misses = int(cache.get("misses", edge.misses))

    def _edge_state(self, body: dict[str, Any]) -> None:
        edge = self._edge(str(body.get("edge_id", "?")))
        node = self._node(edge.edge_id)
        if node.role == "unknown":
            node.role = "edge"
        edge.cached_models = [
            str((c.get("model") or {}).get("model_id", "?")) for c in body.get("cached", [])
        ]
        edge.used_bytes = int(body.get("cache_used_bytes", edge.used_bytes))
        edge.total_bytes = int(body.get("cache_capacity_bytes", edge.total_bytes))
        edge.queue_length = int(body.get("queue_length", edge.queue_length))
        counters = body.get("counters") or {}
        edge.hits = int(counters.get("hits", edge.hits))
        edge.misses = int(counters.get("misses", edge.misses))
        ts = body.get("timestamp_unix_s")
        if isinstance(ts, int | float):
            self._saw_time(float(ts))

    def _event(self, body: dict[str, Any]) -> None:
        event = {
            "ts_unix_s": body.get("ts_unix_s"),
            "node_id": body.get("node_id"),
            "kind": body.get("kind"),
            "fields": body.get("fields", {}),
        }
        self.events.append(event)
        if isinstance(event["ts_unix_s"], int | float):
            self._saw_time(float(event["ts_unix_s"]))

    # ------------------------------------------------------------------ output

    def telemetry_age_s(self, node: NodeView) -> float | None:
        """Seconds from the node's last telemetry to the newest time the view has seen."""
        if node.last_telemetry_unix_s is None or self.newest_unix_s is None:
            return None
        return round(max(0.0, self.newest_unix_s - node.last_telemetry_unix_s), 3)

    def snapshot(self) -> dict[str, Any]:
        """The view as plain JSON values (sorted ids, stable keys)."""
        nodes = {
            node_id: {
                "role": n.role,
                "host": n.host,
                "status": n.status.value,
                "telemetry_age_s": self.telemetry_age_s(n),
                "latency_p50_ms": list(n.latency_p50_ms),
                "energy_j": list(n.energy_j),
                "power_w": list(n.power_w),
            }
            for node_id, n in sorted(self.nodes.items())
        }
        edges = {
            edge_id: {
                "cached_models": list(e.cached_models),
                "used_bytes": e.used_bytes,
                "total_bytes": e.total_bytes,
                "hits": e.hits,
                "misses": e.misses,
                "hit_rate": e.hit_rate,
                "queue_length": e.queue_length,
            }
            for edge_id, e in sorted(self.edges.items())
        }
        return {
            "nodes": nodes,
            "edges": edges,
            "events": list(self.events),
            "messages": self.messages,
            "newest_unix_s": self.newest_unix_s,
        }
