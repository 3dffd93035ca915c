"""What a board knows of the edges: their configured facts, the state each publishes
(retained, so a board that starts late sees it at once) and whether it is alive.

Liveness, in order of trust (docs/live-loop.md, "What a board trusts"): the
coordinator's registry view, sent with every Step (`edges_alive`), decides when one is
given; an edge this board failed to reach stays dead for it until the edge announces
itself `online` again or the registry admits it anew; only without a view (an older
coordinator) does the edge's MQTT status (`online` / the `offline` last will) decide,
since anyone on the broker can publish a retained status. A published state that is
not a well-formed state of that edge is ignored (and logged once per bad streak).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from agent_node.checks import BadRequest
from testbed.config import TestbedConfig
from testbed.edge_client import EdgeClient
from testbed.links import distance_m, shannon_rate_mbps
from testbed.mqtt import MqttClient
from testbed.policies import EdgeView
from testbed.security.credentials import PLAINTEXT, GrpcIdentity
from testbed.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeEndpoint:
    edge_id: str
    address: str
    position_m: tuple[float, float]


def initial_views(
    cfg: TestbedConfig, endpoints: list[EdgeEndpoint], position_m: tuple[float, float]
) -> list[EdgeView]:
    """Each edge's configured facts as seen from a board at `position_m`: its clock and
    the emulated rate r_ij (`BadRequest` if a rate is not a finite number ≥ 0)."""
    specs = {s.id: s for s in cfg.edge_specs()}
    views = []
    for e in endpoints:
        spec = specs.get(e.edge_id)
        rate = float(
            shannon_rate_mbps(
                cfg.agents.transmit_power_w, distance_m(position_m, e.position_m), cfg.links
            )
        )
        if not (math.isfinite(rate) and rate >= 0):
            raise BadRequest(f"{e.edge_id}: the emulated rate r_ij is {rate} Mbit/s")
        views.append(EdgeView(e.edge_id, e.position_m, spec.cpu_ghz if spec else 0.0, rate))
    return views


class BadState(ValueError):
    """A published edge state that is not a well-formed state of that edge."""


@dataclass(frozen=True)
class EdgeLoad:
    """What a §B scheduler plans with (agent_node/scheduler.py): the edge's own estimate
    of its queued work and its measured compute time per unit, per model."""

    queued_work_s: float = 0.0
    unit_compute_ms: dict[str, float] = field(default_factory=dict)
    timestamp_unix_s: float = 0.0
    """When the edge took the state (its clock); 0: unknown."""


LOAD_FIELDS = ("queued_work_s", "unit_compute_ms", "timestamp_unix_s")


def _seconds(raw: dict[str, Any], key: str) -> float:
    """A finite number ≥ 0 (0 where the key is absent: an edge of an older version)."""
    value = raw.get(key, 0.0)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise BadState(f"{key}: expected a finite number ≥ 0, got {value!r}")
    return float(value)


def _per_model_ms(raw: dict[str, Any]) -> dict[str, float]:
    value = raw.get("unit_compute_ms", {})
    if not isinstance(value, dict):
        raise BadState(f"unit_compute_ms: expected an object of model ids, got {value!r}")
    out = {}
    for model_id, ms in value.items():
        key = f"unit_compute_ms[{model_id!r}]"
        out[str(model_id)] = _seconds({key: ms}, key)
    return out


def _timestamp(raw: dict[str, Any]) -> float:
    """When the edge took the state; 0 (unknown: not aged) for anything but a finite
    number ≥ 0 — informational, so it never costs a state."""
    try:
        return _seconds(raw, "timestamp_unix_s")
    except BadState:
        return 0.0


def _count(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadState(f"{key}: expected an integer ≥ 0, got {value!r}")
    return value


def state_changes(edge_id: str, payload: bytes) -> dict[str, Any]:
    """The view fields an edge's published state sets (queue, cached models, free cache
    fraction) and its load (`LOAD_FIELDS`: queued work, compute per unit, when),
    checked field by field; `BadState` says what is wrong."""
    try:
        raw = json.loads(payload)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise BadState(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadState(f"expected a JSON object, got {type(raw).__name__}")
    if raw.get("edge_id") != edge_id:
        raise BadState(f"edge_id: expected {edge_id!r}, got {raw.get('edge_id')!r}")
    cached = raw.get("cached")
    if not isinstance(cached, list):
        raise BadState(f"cached: expected a list, got {cached!r}")
    models = []
    for item in cached:
        model = item.get("model") if isinstance(item, dict) else None
        model_id = model.get("model_id") if isinstance(model, dict) else None
        if not isinstance(model_id, str):
            raise BadState(f"cached: expected entries with model.model_id, got {item!r}")
        models.append(model_id)
    used, capacity = _count(raw, "cache_used_bytes"), _count(raw, "cache_capacity_bytes")
    return {
        "queue_length": _count(raw, "queue_length") + _count(raw, "running"),
        "cached": frozenset(models),
        "cache_free": min(1.0, max(0.0, 1.0 - used / max(1, capacity))),
        "queued_work_s": _seconds(raw, "queued_work_s"),
        "unit_compute_ms": _per_model_ms(raw),
        "timestamp_unix_s": _timestamp(raw),
    }


class EdgeDirectory:
    """Edge views for one board, kept current from MQTT and the registry's view."""

    def __init__(
        self,
        cfg: TestbedConfig,
        endpoints: list[EdgeEndpoint],
        views: list[EdgeView],
        mqtt: MqttClient,
        grpc_identity: GrpcIdentity = PLAINTEXT,
    ) -> None:
        self._lock = threading.Lock()
        self._synced = threading.Condition(self._lock)
        self._heard: set[str] = set()
        self._pending: dict[str, bytes] = {}  # newest unparsed state per edge
        self._topics = Topics.of(cfg)
        self._mqtt = mqtt
        self.endpoints = endpoints
        self._index = {e.edge_id: i for i, e in enumerate(endpoints)}
        self._views = list(views)  # liveness is decided in views(), not stored here
        self._loads = [EdgeLoad() for _ in endpoints]
        self._status_alive = dict.fromkeys(self._index, True)  # MQTT status, as published
        self._unreachable: set[str] = set()  # this board's own failed submissions
        self._registry: frozenset[str] | None = None  # None: no view given
        self._garbage: set[str] = set()  # edges whose last state was ignored (logged once)
        self.clients = [EdgeClient(e.address, e.edge_id, grpc_identity) for e in endpoints]
        mqtt.subscribe(self._topics.all_edge_states, self._on_state)
        mqtt.subscribe(self._topics.status("+"), self._on_status)

    def close(self) -> None:
        self._mqtt.unsubscribe(self._topics.all_edge_states)
        self._mqtt.unsubscribe(self._topics.status("+"))
        for client in self.clients:
            client.close()

    def wait_synced(self, timeout_s: float) -> list[str]:
        """Wait until every edge's (retained) state has arrived; returns the edges still
        unheard of after `timeout_s` (dead or not yet started)."""
        with self._synced:
            self._synced.wait_for(lambda: len(self._heard) == len(self._index), timeout_s)
            return sorted(set(self._index) - self._heard)

    def trust_registry(self, edges_alive: Iterable[str] | None) -> None:
        """The edges the coordinator's registry holds alive now; None: no view (an older
        coordinator), MQTT status decides. An edge the registry admits anew is no longer
        held unreachable by this board."""
        with self._lock:
            if edges_alive is None:
                self._registry = None
                return
            view = frozenset(edges_alive)
            if self._registry is not None:
                self._unreachable -= view - self._registry
            self._registry = view

    def views(self) -> tuple[EdgeView, ...]:
        """The edges as of now: states that arrived since the last call are parsed here,
        at decision time, and only the newest per edge (edges publish on every change;
        parsing each message on every board cost more than the decisions)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for edge_id, payload in pending.items():
            try:
                changes = state_changes(edge_id, payload)
            except BadState as exc:
                self._ignore(edge_id, exc)
                continue
            load = EdgeLoad(**{key: changes.pop(key) for key in LOAD_FIELDS})
            with self._lock:
                self._garbage.discard(edge_id)
                i = self._index[edge_id]
                self._views[i] = replace(self._views[i], **changes)
                self._loads[i] = load
        with self._lock:
            for i, v in enumerate(self._views):
                alive = self._alive(v.edge_id)
                if v.alive != alive:
                    self._views[i] = replace(v, alive=alive)
            return tuple(self._views)

    def loads(self) -> tuple[EdgeLoad, ...]:
        """Each edge's load as of its last good state (call `views` first: it parses
        the states that arrived)."""
        with self._lock:
            return tuple(self._loads)

    def mark_unreachable(self, edge_id: str) -> None:
        with self._lock:
            if edge_id in self._index:
                self._unreachable.add(edge_id)

    def _alive(self, edge_id: str) -> bool:
        if edge_id in self._unreachable:
            return False
        if self._registry is not None:
            return edge_id in self._registry
        return self._status_alive[edge_id]

    def _ignore(self, edge_id: str, exc: BadState) -> None:
        with self._lock:
            first = edge_id not in self._garbage
            self._garbage.add(edge_id)
        if first:  # an edge publishes on every change: one line per bad streak, not each
            log.warning("%s: state ignored (the last good one stands): %s", edge_id, exc)

    def _on_state(self, topic: str, payload: bytes) -> None:
        edge_id = Topics.node_of(topic)
        with self._synced:
            if edge_id in self._index:
                self._pending[edge_id] = payload  # parsed when a decision needs it
                self._heard.add(edge_id)
                self._synced.notify_all()

    def _on_status(self, topic: str, payload: bytes) -> None:
        node = Topics.node_of(topic)
        if node not in self._index:
            return
        alive = payload == b"online"
        with self._lock:
            self._status_alive[node] = alive
            if alive:  # the edge is back (or says so): this board tries it again
                self._unreachable.discard(node)
        if not alive:
            log.info("%s is offline, says its MQTT status", node)
