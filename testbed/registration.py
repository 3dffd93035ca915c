"""A node's side of the coordinator's registry: register, keep alive, re-register.

`NodeRegistration(registry_address, node_info, interval_s)`:

1. `start()` registers with the coordinator (testbed.v1.Registry/RegisterNode),
   retrying transient gRPC errors with backoff and full jitter (the coordinator may
   come up after the node), and tells it the heartbeat interval it will keep;
2. a `HeartbeatSender` then sends Heartbeat every `interval_s`;
3. when the coordinator answers known=false (it restarted, or removed the node after
   a long silence) or stops answering for a few beats, the node registers again —
   retrying until the coordinator is back — and gets a new session;
4. `close()` stops the heartbeats and deregisters (best effort).

`NodeInfo` is the domain form of the proto `testbed.v1.NodeInfo`;
`node_info_to_proto` / `node_info_from_proto` convert (see docs/registry.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from testbed.heartbeat import HeartbeatSender
from testbed.retry import RetryPolicy, is_transient_grpc_error
from testbed.rpc.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from testbed.security.credentials import PLAINTEXT, GrpcIdentity
from testbed.security.roles import COORDINATOR_ID
from testbed.types import NodeKind

log = logging.getLogger(__name__)

# gRPC's own reconnect backoff grows to 120 s; a node must notice a restarted
# coordinator within a few heartbeats, so cap it near the heartbeat scale.
_MIN_RECONNECT_MS = 100
_MAX_RECONNECT_MS = 2000

CLOCK_FACT = "clock_unix_s"
"""The node's wall clock when it sent the registration (a fact added to every one):
the registry's estimate of the node's clock offset (coordinator/registry.py)."""


@dataclass(frozen=True)
class NodeInfo:
    """What a node tells the registry about itself."""

    node_id: str
    kind: NodeKind
    address: str = ""
    """host:port of the node's own gRPC service ("" when it serves none)."""
    position_m: tuple[float, float] | None = None
    """Position on the site in m; None when unknown."""
    facts: Mapping[str, str] = field(default_factory=dict)
    """Host, board, runtime, energy method, versions — free-form strings."""


class RegistrationRefused(Exception):
    """The registry answered accepted=false; retrying will not help."""


def node_info_to_proto(info: NodeInfo) -> registry_pb2.NodeInfo:
    """Domain NodeInfo → proto testbed.v1.NodeInfo."""
    msg = registry_pb2.NodeInfo(
        node_id=info.node_id,
        kind=common_pb2.NodeKind.Value(f"NODE_KIND_{info.kind.name}"),
        address=info.address,
        facts=dict(info.facts),
    )
    if info.position_m is not None:
        msg.position.x_m, msg.position.y_m = info.position_m
    return msg


def node_info_from_proto(msg: registry_pb2.NodeInfo) -> NodeInfo:
    """Proto testbed.v1.NodeInfo → domain NodeInfo; ValueError for an empty node id or
    an unspecified/unknown kind."""
    if not msg.node_id:
        raise ValueError("node.node_id is empty")
    name = common_pb2.NodeKind.Name(msg.kind) if msg.kind in common_pb2.NodeKind.values() else ""
    kind_name = name.removeprefix("NODE_KIND_")
    if kind_name not in NodeKind.__members__:
        raise ValueError(f"node.kind {msg.kind} is not a node kind")
    position = (msg.position.x_m, msg.position.y_m) if msg.HasField("position") else None
    return NodeInfo(
        node_id=msg.node_id,
        kind=NodeKind[kind_name],
        address=msg.address,
        position_m=position,
        facts=dict(msg.facts),
    )


class NodeRegistration:
    """Keeps one node registered with the coordinator's registry."""

    def __init__(
        self,
        registry_address: str,
        node_info: NodeInfo,
        interval_s: float,
        *,
        rpc_timeout_s: float = 2.0,
        max_failures: int = 3,
        retry: RetryPolicy | None = None,
        on_registered: Callable[[str], Any] | None = None,
        identity: GrpcIdentity = PLAINTEXT,
    ) -> None:
        """
        Args:
            registry_address: host:port of the coordinator's Registry service.
            node_info: what this node announces.
            interval_s: heartbeat period in s (announced to the registry).
            rpc_timeout_s: timeout of each registry call, in s.
            max_failures: failed heartbeats in a row after which the coordinator is
                taken as lost and the node registers again.
            retry: backoff of (re-)registration; default 0.1 s doubling to 2 s.
            on_registered: called with the new session id after every successful
                (re-)registration, e.g. to log it or to republish state.
            identity: the node's gRPC credentials (testbed/security/credentials.py);
                with TLS the channel reaches only the coordinator's certificate.
        """
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.registry_address = registry_address
        self.node_info = node_info
        self.interval_s = interval_s
        self.rpc_timeout_s = rpc_timeout_s
        self.retry = retry or RetryPolicy(base_delay_s=0.1, max_delay_s=2.0)
        self._on_registered = on_registered
        self._channel = identity.channel(
            registry_address,
            peer_id=COORDINATOR_ID,
            options=[
                ("grpc.initial_reconnect_backoff_ms", _MIN_RECONNECT_MS),
                ("grpc.min_reconnect_backoff_ms", _MIN_RECONNECT_MS),
                ("grpc.max_reconnect_backoff_ms", _MAX_RECONNECT_MS),
            ],
        )
        self._stub = registry_pb2_grpc.RegistryStub(self._channel)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._session_id: str | None = None
        self._seq = 0
        self._heartbeat = HeartbeatSender(
            self._send_heartbeat,
            interval_s,
            self._reregister,
            max_failures=max_failures,
            name=f"heartbeat:{node_info.node_id}",
        )

    @property
    def session_id(self) -> str | None:
        """The current session id; None before the first registration."""
        with self._lock:
            return self._session_id

    def start(self, timeout_s: float | None = None, cancel: threading.Event | None = None) -> str:
        """Register (retrying transient errors for up to `timeout_s` s; None: until
        `close()`, or until `cancel` is set when given, e.g. a daemon's stop flag), then
        start the heartbeats. Returns the session id.

        Raises:
            grpc.RpcError: the registry could not be reached in time, or answered
                with a permanent error (e.g. INVALID_ARGUMENT).
            RegistrationRefused: the registry refused the node.
        """
        policy = RetryPolicy(
            max_attempts=self.retry.max_attempts,
            deadline_s=timeout_s,
            base_delay_s=self.retry.base_delay_s,
            max_delay_s=self.retry.max_delay_s,
            multiplier=self.retry.multiplier,
        )
        session = policy.call(
            self._register_once,
            should_retry=is_transient_grpc_error,
            on_retry=self._log_retry,
            cancel=cancel or self._closed,
        )
        self._heartbeat.start()
        return session

    def close(self, *, deregister: bool = True) -> None:
        """Stop heartbeats and, with `deregister`, tell the registry (best effort).

        `deregister=False` leaves the registry to notice the silence, as after a crash.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        self._heartbeat.stop()
        session = self.session_id
        if deregister and session is not None:
            request = registry_pb2.DeregisterRequest(
                node_id=self.node_info.node_id, session_id=session
            )
            try:
                self._stub.Deregister(request, timeout=min(self.rpc_timeout_s, 1.0))
            except grpc.RpcError as exc:
                log.info("%s: deregister failed: %s", self.node_info.node_id, exc.code())
        self._channel.close()

    def __enter__(self) -> NodeRegistration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _register_once(self) -> str:
        request = registry_pb2.RegisterNodeRequest(
            node=node_info_to_proto(self.node_info), heartbeat_interval_s=self.interval_s
        )
        request.node.facts[CLOCK_FACT] = f"{time.time():.6f}"
        reply = self._stub.RegisterNode(request, timeout=self.rpc_timeout_s)
        if not reply.accepted:
            raise RegistrationRefused(reply.detail or "refused by the registry")
        with self._lock:
            self._session_id = reply.session_id
            self._seq = 0
        log.info(
            "%s: registered with %s, session %s",
            self.node_info.node_id,
            self.registry_address,
            reply.session_id,
        )
        if self._on_registered is not None:
            self._on_registered(reply.session_id)
        return reply.session_id

    def _send_heartbeat(self) -> bool:
        with self._lock:
            self._seq += 1
            request = registry_pb2.HeartbeatRequest(
                node_id=self.node_info.node_id, session_id=self._session_id or "", seq=self._seq
            )
        return bool(self._stub.Heartbeat(request, timeout=self.rpc_timeout_s).known)

    def _reregister(self) -> None:
        """Register again until it works or the registration is closed."""
        log.info("%s: registering again with %s", self.node_info.node_id, self.registry_address)
        try:
            self.retry.call(
                self._register_once,
                should_retry=is_transient_grpc_error,
                on_retry=self._log_retry,
                cancel=self._closed,
            )
        except Exception:
            if self._closed.is_set():
                return  # closing: giving up is expected
            raise

    def _log_retry(self, attempt: int, exc: BaseException, delay_s: float) -> None:
        code = exc.code() if isinstance(exc, grpc.RpcError) else type(exc).__name__
        log.info(
            "%s: registry %s not reachable (%s, attempt %d); retry in %.2f s",
            self.node_info.node_id,
            self.registry_address,
            code,
            attempt,
            delay_s,
        )
