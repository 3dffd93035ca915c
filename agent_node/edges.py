"""What a board knows of the edges: their configured facts, the state each publishes
(retained, so a board that starts late sees it at once) and whether it is alive
(its MQTT status, and the board's own failed submissions)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

from testbed.config import TestbedConfig
from testbed.edge_client import EdgeClient
from testbed.links import distance_m, shannon_rate_mbps
from testbed.messages import EdgeStateSnapshot
from testbed.mqtt import MqttClient
from testbed.policies import EdgeView
from testbed.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeEndpoint:
    edge_id: str
    address: str
    position_m: tuple[float, float]


class EdgeDirectory:
    """Edge views for one board, kept current from MQTT."""

    def __init__(
        self,
        cfg: TestbedConfig,
        endpoints: list[EdgeEndpoint],
        position_m: tuple[float, float],
        mqtt: MqttClient,
    ) -> None:
        self._lock = threading.Lock()
        self._synced = threading.Condition(self._lock)
        self._heard: set[str] = set()
        self._pending: dict[str, bytes] = {}  # newest unparsed state per edge
        self._topics = Topics(cfg.broker.topic_prefix)
        self._mqtt = mqtt
        specs = {s.id: s for s in cfg.edge_specs()}
        self.endpoints = endpoints
        self._index = {e.edge_id: i for i, e in enumerate(endpoints)}
        self._views: list[EdgeView] = []
        self.clients: list[EdgeClient] = []
        for e in endpoints:
            spec = specs.get(e.edge_id)
            rate = float(
                shannon_rate_mbps(
                    cfg.agents.transmit_power_w, distance_m(position_m, e.position_m), cfg.links
                )
            )
            self._views.append(
                EdgeView(e.edge_id, e.position_m, spec.cpu_ghz if spec else 0.0, rate)
            )
            self.clients.append(EdgeClient(e.address, e.edge_id))
        mqtt.subscribe(self._topics.all_edge_states, self._on_state)
        mqtt.subscribe(f"{cfg.broker.topic_prefix}/node/+/status", self._on_status)

    def close(self) -> None:
        self._mqtt.unsubscribe(self._topics.all_edge_states)
        self._mqtt.unsubscribe(f"{self._topics.prefix}/node/+/status")
        for client in self.clients:
            client.close()

    def wait_synced(self, timeout_s: float) -> list[str]:
        """Wait until every edge's (retained) state has arrived; returns the edges still
        unheard of after `timeout_s` (dead or not yet started)."""
        with self._synced:
            self._synced.wait_for(lambda: len(self._heard) == len(self._index), timeout_s)
            return sorted(set(self._index) - self._heard)

    def views(self) -> tuple[EdgeView, ...]:
        """The edges as of now: states that arrived since the last call are parsed here,
        at decision time, and only the newest per edge (edges publish on every change;
        parsing each message on every board cost more than the decisions)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for edge_id, payload in pending.items():
            state = EdgeStateSnapshot.from_json(payload)
            free = 1.0 - state.cache_used_bytes / max(1, state.cache_capacity_bytes)
            self._update(
                edge_id,
                queue_length=state.queue_length + state.running,
                cached=frozenset(c.model.model_id for c in state.cached),
                cache_free=free,
            )  # liveness comes from the status topic only: a dead edge's state stays retained
        with self._lock:
            return tuple(self._views)

    def mark_unreachable(self, edge_id: str) -> None:
        self._update(edge_id, alive=False)

    def _update(self, edge_id: str, **changes: object) -> None:
        with self._lock:
            i = self._index.get(edge_id)
            if i is not None:
                self._views[i] = replace(self._views[i], **changes)  # type: ignore[arg-type]

    def _on_state(self, topic: str, payload: bytes) -> None:
        edge_id = Topics.node_of(topic)
        with self._synced:
            if edge_id in self._index:
                self._pending[edge_id] = payload  # parsed when a decision needs it
                self._heard.add(edge_id)
                self._synced.notify_all()

    def _on_status(self, topic: str, payload: bytes) -> None:
        node = Topics.node_of(topic)
        if node in self._index:
            alive = payload == b"online"
            self._update(node, alive=alive)
            if not alive:
                log.info("%s is offline", node)
