"""The coordinator's node registry: who is on the bench, and is it alive.

`NodeTable` is the domain: a clock-injected table of registered nodes with a
liveness state per node (after Locust's heartbeat counter):

    register ──▶ ALIVE ──(no heartbeat for missing_after_beats × interval)──▶ MISSING
                   ▲                                                            │
                   └──────────────── heartbeat (heals) ◀────────────────────────┤
                                                                                │
    deregister, or no heartbeat for remove_after_s ──────────────────────────▶ REMOVED

`interval` is the heartbeat interval the node announced when it registered. Every
(re-)registration gets a new session id; a heartbeat or deregistration that names an
unknown node or a stale session is answered known=false / ignored, which tells the
node to register again. State changes are reported through `on_state_change(node_id,
old, new)` (old is None for a node that was not in the table), registrations through
`on_register(record)`; both are called in order, outside the table's lock, and should
be quick (log, record, wake a waiter).

`Registry` is the thin gRPC servicer of testbed.v1.Registry over a `NodeTable`, with
the background thread that calls `NodeTable.sweep`. See docs/registry.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from testbed.config import RegistryConfig
from testbed.config.limits import PERIOD_MAX_S, PERIOD_MIN_S
from testbed.ids import node_id_problem
from testbed.registration import CLOCK_FACT, NodeInfo, node_info_from_proto
from testbed.rpc.v1 import registry_pb2, registry_pb2_grpc
from testbed.security.roles import peer_identity, peer_mismatch
from testbed.types import NodeKind

log = logging.getLogger(__name__)

ADDRESS_MAX_LEN = 256
FACTS_MAX = 64
FACT_KEY_MAX_LEN = 64
FACT_VALUE_MAX_LEN = 1024


class NodeState(enum.StrEnum):
    """Liveness of a registered node."""

    ALIVE = "alive"
    """Heartbeats arrive."""
    MISSING = "missing"
    """No heartbeat for `missing_after_beats` × its interval; heals on the next one."""
    REMOVED = "removed"
    """Deregistered, or silent for `remove_after_s`; gone from the table."""


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A registered node as the table sees it; times are clock readings in s."""

    info: NodeInfo
    session_id: str
    heartbeat_interval_s: float
    """The interval the node announced (or the configured default)."""
    state: NodeState
    registered_at: float
    last_seen: float
    """Time of the registration or the last heartbeat of this session."""
    last_seq: int = 0
    """Highest heartbeat sequence number received in this session."""
    beats: int = 0
    """Heartbeats received in this session."""

    @property
    def node_id(self) -> str:
        return self.info.node_id

    @property
    def kind(self) -> NodeKind:
        return self.info.kind

    def silence_s(self, now: float) -> float:
        """Seconds since the node was last heard of."""
        return max(0.0, now - self.last_seen)

    def missed_beats(self, now: float) -> int:
        """The liveness counter: heartbeats missed since the last one heard."""
        return int(self.silence_s(now) // self.heartbeat_interval_s)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one node."""

    node_id: str
    old: NodeState | None
    new: NodeState


class RegistrationDenied(Exception):
    """A registration the peer's certificate does not allow (docs/security.md)."""


StateCallback = Callable[[str, NodeState | None, NodeState], Any]
RegisterCallback = Callable[[NodeRecord], Any]


class NodeTable:
    """Registered nodes and their liveness; thread-safe, clock-injected."""

    def __init__(
        self,
        cfg: RegistryConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateCallback | None = None,
        on_register: RegisterCallback | None = None,
        new_session_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        """
        Args:
            cfg: `missing_after_beats`, `remove_after_s`, and `heartbeat_interval_s`
                (used for nodes that announce no interval).
            clock: monotonic time in s; methods take `now` to override it per call.
            on_state_change: called as (node_id, old, new) on every state change.
            on_register: called with the record after every (re-)registration.
            new_session_id: makes session ids (unique per registration).
        """
        self.cfg = cfg or RegistryConfig()
        self._clock = clock
        self._on_state_change = on_state_change
        self._on_register = on_register
        self._new_session_id = new_session_id
        self._nodes: dict[str, NodeRecord] = {}
        self._certificates: dict[str, str] = {}  # node id -> the one certificate it may use
        self._lock = threading.Lock()
        # Held while callbacks run, taken before the table lock is released: callbacks
        # see events in the order the table made them. Re-entrant so a callback may
        # call the table.
        self._notify = threading.RLock()

    # ------------------------------------------------------------------ queries

    def get(self, node_id: str) -> NodeRecord | None:
        with self._lock:
            return self._nodes.get(node_id)

    def nodes(
        self, state: NodeState | None = None, kind: NodeKind | None = None
    ) -> list[NodeRecord]:
        """Records in registration order, filtered by state and kind when given."""
        with self._lock:
            return [
                r
                for r in self._nodes.values()
                if (state is None or r.state is state) and (kind is None or r.kind is kind)
            ]

    def __len__(self) -> int:
        with self._lock:
            return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        with self._lock:
            return node_id in self._nodes

    def missing_after_s(self, record: NodeRecord) -> float:
        """Silence in s after which `record` is marked MISSING."""
        return self.cfg.missing_after_beats * record.heartbeat_interval_s

    # ------------------------------------------------------------------ updates

    def register(
        self, info: NodeInfo, heartbeat_interval_s: float | None = None, now: float | None = None,
        *, certificate: str = "",
    ) -> NodeRecord:  # fmt: skip
        """Add the node, or replace its earlier registration; always a new session.

        `heartbeat_interval_s` None, ≤ 0 or not finite: the configured default; else
        held to [PERIOD_MIN_S, PERIOD_MAX_S] (testbed/config/limits.py). Raises
        ValueError, naming what was wrong without echoing it, for a node id outside the
        pattern (testbed/ids.py) or an oversized or non-finite registration.

        `certificate` (with mutual TLS: the SHA-256 of the peer's certificate): a node id
        is registered from one certificate only, the first it registered with; another
        is RegistrationDenied for as long as the table lives.
        """
        problem = registration_problem(info)
        if problem is not None:
            raise ValueError(problem)
        interval = heartbeat_interval_s
        if interval is None or not math.isfinite(interval) or interval <= 0:
            interval = self.cfg.heartbeat_interval_s
        interval = min(max(interval, PERIOD_MIN_S), PERIOD_MAX_S)
        with self._mutate() as events:
            now = self._now(now)
            node_id = info.node_id
            if certificate and self._certificates.setdefault(node_id, certificate) != certificate:
                raise RegistrationDenied(f"{node_id} is registered from another certificate")
            old = self._nodes.pop(node_id, None)  # re-inserted below: order of registration
            record = NodeRecord(
                info=info,
                session_id=self._new_session_id(),
                heartbeat_interval_s=interval,
                state=NodeState.ALIVE,
                registered_at=now,
                last_seen=now,
            )
            self._nodes[node_id] = record
            old_state = old.state if old is not None else None
            if old_state is not NodeState.ALIVE:
                events.append(lambda: self._state_changed(node_id, old_state, NodeState.ALIVE))
            if self._on_register is not None:
                callback = self._on_register
                events.append(lambda: callback(record))
        return record

    def heartbeat(
        self, node_id: str, session_id: str, seq: int = 0, now: float | None = None
    ) -> bool:
        """Record a heartbeat; False when the node or its session is not known (the
        node should register again). A MISSING node heals to ALIVE."""
        with self._mutate() as events:
            record = self._nodes.get(node_id)
            if record is None or record.session_id != session_id:
                return False
            now = self._now(now)
            self._nodes[node_id] = dataclasses.replace(
                record,
                state=NodeState.ALIVE,
                last_seen=max(record.last_seen, now),
                last_seq=max(record.last_seq, seq),
                beats=record.beats + 1,
            )
            if record.state is not NodeState.ALIVE:
                old = record.state
                events.append(lambda: self._state_changed(node_id, old, NodeState.ALIVE))
        return True

    def deregister(self, node_id: str, session_id: str) -> bool:
        """Remove the node; False (and nothing changes) for an unknown or stale session."""
        with self._mutate() as events:
            record = self._nodes.get(node_id)
            if record is None or record.session_id != session_id:
                return False
            del self._nodes[node_id]
            old = record.state
            events.append(lambda: self._state_changed(node_id, old, NodeState.REMOVED))
        return True

    def sweep(self, now: float | None = None) -> list[Transition]:
        """Apply the liveness rules at time `now`; returns the transitions made.

        ALIVE → MISSING when silent longer than missing_after_beats × interval;
        any → REMOVED (and out of the table) when silent for ≥ remove_after_s.
        """
        transitions: list[Transition] = []
        with self._mutate() as events:
            now = self._now(now)
            for node_id, record in list(self._nodes.items()):
                silence = record.silence_s(now)
                if silence >= self.cfg.remove_after_s:
                    del self._nodes[node_id]
                    transitions.append(Transition(node_id, record.state, NodeState.REMOVED))
                elif record.state is NodeState.ALIVE and silence > self.missing_after_s(record):
                    self._nodes[node_id] = dataclasses.replace(record, state=NodeState.MISSING)
                    transitions.append(Transition(node_id, record.state, NodeState.MISSING))
            events.extend(
                functools.partial(self._state_changed, t.node_id, t.old, t.new) for t in transitions
            )
        return transitions

    # ------------------------------------------------------------------ internals

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    @contextlib.contextmanager
    def _mutate(self) -> Iterator[list[Callable[[], Any]]]:
        """Run the body under the table lock, then its queued events, in order."""
        events: list[Callable[[], Any]] = []
        with self._lock:
            yield events  # an error in the body propagates; no events run then
            self._notify.acquire()
        try:
            for event in events:
                try:
                    event()
                except Exception:
                    log.exception("registry: an event callback failed")
        finally:
            self._notify.release()

    def _state_changed(self, node_id: str, old: NodeState | None, new: NodeState) -> None:
        log.info("registry: node %s %s → %s", node_id, old.value if old else "new", new.value)
        if self._on_state_change is not None:
            self._on_state_change(node_id, old, new)


def registration_problem(info: NodeInfo) -> str | None:
    """None for a registration the table can hold, else what is wrong with it. The id
    names topics, files and log lines, so it must follow the pattern; the rest is
    bounded so one node cannot bloat the table, the events or the summary."""
    if not info.node_id:
        return "node_id is empty"
    problem = node_id_problem(info.node_id)
    if problem is not None:
        return f"node_id: {problem}"
    if len(info.address) > ADDRESS_MAX_LEN:
        return f"address: expected at most {ADDRESS_MAX_LEN} characters, got {len(info.address)}"
    if len(info.facts) > FACTS_MAX:
        return f"facts: expected at most {FACTS_MAX} entries, got {len(info.facts)}"
    for key, value in info.facts.items():
        if len(key) > FACT_KEY_MAX_LEN or len(value) > FACT_VALUE_MAX_LEN:
            return (
                f"facts: expected keys of at most {FACT_KEY_MAX_LEN} and values of at most "
                f"{FACT_VALUE_MAX_LEN} characters"
            )
    if info.position_m is not None and not all(math.isfinite(v) for v in info.position_m):
        return "position: expected finite coordinates"
    return None


class Registry(registry_pb2_grpc.RegistryServicer):
    """The testbed.v1.Registry servicer: unpacks requests, calls the `NodeTable`, and
    runs the sweeper thread that applies the liveness rules."""

    def __init__(self, table: NodeTable, *, sweep_interval_s: float | None = None) -> None:
        """`sweep_interval_s`: period of the sweeper in s; default a quarter of the
        configured heartbeat interval, at most 0.25 s."""
        self.table = table
        self.sweep_interval_s = sweep_interval_s or min(0.25, table.cfg.heartbeat_interval_s / 4)
        self.clock_offsets_s: dict[str, float] = {}
        """Per node: its clock minus ours at its last registration (`CLOCK_FACT`), in s."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_to_server(self, server: grpc.Server) -> None:
        registry_pb2_grpc.add_RegistryServicer_to_server(self, server)

    def start(self) -> None:
        """Start the sweeper thread."""
        if self._thread is not None:
            raise RuntimeError("registry sweeper already started")
        self._thread = threading.Thread(target=self._sweep_loop, name="registry-sweep", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the sweeper thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_interval_s):
            try:
                self.table.sweep()
            except Exception:
                log.exception("registry: sweep failed")

    # ------------------------------------------------------------------ RPCs

    def RegisterNode(
        self, request: registry_pb2.RegisterNodeRequest, context: grpc.ServicerContext
    ) -> registry_pb2.RegisterNodeReply:
        peer = peer_identity(context)  # None without TLS
        try:
            info, clock_offset_s = _clock_reading(node_info_from_proto(request.node))
            impostor = peer_mismatch(peer, info.node_id, info.kind.value)
            if impostor is not None:
                raise RegistrationDenied(impostor)
            record = self.table.register(
                info, request.heartbeat_interval_s or None,
                certificate=peer.certificate_sha256 if peer is not None else "",
            )  # fmt: skip
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # not reached: abort raises
        except RegistrationDenied as exc:
            log.warning("registry: refused a registration as %s: %s", info.node_id, exc)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
            raise
        if clock_offset_s is not None:
            self.clock_offsets_s[info.node_id] = clock_offset_s
        return registry_pb2.RegisterNodeReply(accepted=True, session_id=record.session_id)

    def Heartbeat(
        self, request: registry_pb2.HeartbeatRequest, context: grpc.ServicerContext
    ) -> registry_pb2.HeartbeatReply:
        _check_peer(context, request.node_id)
        known = self.table.heartbeat(request.node_id, request.session_id, request.seq)
        return registry_pb2.HeartbeatReply(known=known)

    def Deregister(
        self, request: registry_pb2.DeregisterRequest, context: grpc.ServicerContext
    ) -> registry_pb2.DeregisterReply:
        _check_peer(context, request.node_id)
        self.table.deregister(request.node_id, request.session_id)
        return registry_pb2.DeregisterReply()


def _clock_reading(info: NodeInfo) -> tuple[NodeInfo, float | None]:
    """The registration without its clock fact, and the node's clock offset in s (its
    clock when it sent minus ours now: off by the one-way delay, well under a ms on a
    LAN); None without a readable clock."""
    facts = dict(info.facts)
    sent = facts.pop(CLOCK_FACT, None)
    try:
        offset = float(sent) - time.time() if sent is not None else None
    except ValueError:
        offset = None
    if offset is not None and not math.isfinite(offset):
        offset = None
    return dataclasses.replace(info, facts=facts), offset


def _check_peer(context: grpc.ServicerContext, node_id: str) -> None:
    """PERMISSION_DENIED for a heartbeat or deregistration of another node's id."""
    problem = peer_mismatch(peer_identity(context), node_id, "")
    if problem is not None:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)
