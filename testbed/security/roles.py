"""Who a gRPC peer is, and which roles may call which method (docs/security.md).

With mutual TLS every peer presents a certificate of the bench's CA (the handshake
refuses any other), which names one node: its id as the subject's common name and as
the SAN URI `urn:testbed:node:<id>`, its role as the SAN URI `urn:testbed:role:<role>`
(testbed/security/certs.py writes them). `peer_identity(context)` reads both from
grpc's auth context; `RoleInterceptor` refuses, with PERMISSION_DENIED, a call whose
peer names no node, or whose role may not call that method: only the coordinator
configures a board, loads its policy and drives its steps, and only the coordinator
tells an edge to fetch or evict a model. The registry (coordinator/registry.py) checks
the node id itself: a node registers under its own id only.

Without TLS the auth context names nobody and `peer_identity` is None: the servers
then run without this interceptor, exactly as before.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

NODE_URI_PREFIX = "urn:testbed:node:"
ROLE_URI_PREFIX = "urn:testbed:role:"
COORDINATOR_ID = "coordinator"
"""The coordinator's node id: its certificate is `coordinator.pem` (docs/security.md)."""


class Role(enum.StrEnum):
    """What a certificate's holder is on the bench."""

    COORDINATOR = "coordinator"
    AGENT = "agent"
    EDGE = "edge"
    CLOUD = "cloud"
    BROKER = "broker"  # the MQTT broker's server certificate (docs/security.md, MQTT)


_COORDINATOR = frozenset({Role.COORDINATOR})
METHOD_ROLES: dict[str, frozenset[Role]] = {
    "/testbed.v1.AgentService/Configure": _COORDINATOR,
    "/testbed.v1.AgentService/LoadPolicy": _COORDINATOR,
    "/testbed.v1.AgentService/Step": _COORDINATOR,  # drives the board: draws and serves tasks
    "/testbed.v1.EdgeService/PrefetchModel": _COORDINATOR,
    "/testbed.v1.EdgeService/EvictModel": _COORDINATOR,
    "/testbed.v1.EdgeService/SetAllocation": _COORDINATOR,  # shares and steps per model
    "/testbed.v1.EdgeService/SubmitTask": frozenset({Role.AGENT, Role.COORDINATOR}),
}
"""Methods only some roles may call; any other method is open to every node of the
bench (a peer whose certificate names a node and a role)."""

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
"""Methods any peer with a certificate of the CA may call (ordinary health probes)."""

_SAN = "x509_subject_alternative_name"
_CN = "x509_common_name"
_PEM = "x509_pem_cert"


@dataclass(frozen=True)
class PeerIdentity:
    """The node a peer's certificate names."""

    node_id: str
    role: Role
    certificate_sha256: str
    """Hex SHA-256 of the peer's certificate (PEM): tells two certificates of one id apart."""


def _values(auth: dict[str, Any], key: str) -> list[str]:
    return [v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            for v in auth.get(key, [])]  # fmt: skip


def identity_of(auth: dict[str, Any]) -> PeerIdentity | None:
    """The node an auth context's certificate names; None when it names none (no TLS,
    or a certificate without exactly one node URI, one known role URI, and the node id
    as its common name)."""
    sans = _values(auth, _SAN)
    nodes = [s.removeprefix(NODE_URI_PREFIX) for s in sans if s.startswith(NODE_URI_PREFIX)]
    roles = [s.removeprefix(ROLE_URI_PREFIX) for s in sans if s.startswith(ROLE_URI_PREFIX)]
    if len(nodes) != 1 or len(roles) != 1 or roles[0] not in set(Role):
        return None
    if _values(auth, _CN) != nodes:
        return None
    pem = "".join(_values(auth, _PEM))
    return PeerIdentity(nodes[0], Role(roles[0]), hashlib.sha256(pem.encode()).hexdigest())


def peer_identity(context: grpc.ServicerContext) -> PeerIdentity | None:
    """The node the calling peer's certificate names; None without TLS."""
    return identity_of(dict(context.auth_context()))


def peer_mismatch(peer: PeerIdentity | None, node_id: str, kind: str) -> str | None:
    """Why `peer` may not register (or beat or deregister) as `node_id` of `kind`
    (a NodeKind value; "" to skip that check); None when it may, or without TLS."""
    if peer is None:
        return None
    if peer.node_id != node_id:
        return f"the peer's certificate is {peer.node_id}'s, not {node_id}'s"
    if kind and peer.role.value != kind:
        return f"{node_id}'s certificate is for the role {peer.role.value}, not {kind}"
    return None


def refusal(method: str, peer: PeerIdentity | None) -> str | None:
    """Why `peer` may not call `method`; None when it may."""
    if method.startswith(OPEN_PREFIXES):
        return None
    if peer is None:
        return f"{method}: the peer's certificate names no node of the bench"
    allowed = METHOD_ROLES.get(method)
    if allowed is not None and peer.role not in allowed:
        who = " or ".join(sorted(r.value for r in allowed))
        return f"{method} is for the {who} only; {peer.node_id} is {peer.role.value}"
    return None


class RoleInterceptor(grpc.ServerInterceptor):
    """Refuses (PERMISSION_DENIED) every call `refusal` refuses, before the servicer
    sees the request. grpc's interceptors get no context, so the check wraps the
    method's handler and runs as the call starts, on the worker thread."""

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        return _guarded(handler, details.method)


def _guarded(handler: Any, method: str) -> Any:
    def check(context: grpc.ServicerContext) -> None:
        reason = refusal(method, peer_identity(context))
        if reason is not None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, reason)

    def wrap(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            check(context)
            return behaviour(request, context)

        return guarded

    kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
    kind = next(k for k in kinds if getattr(handler, k) is not None)
    return handler._replace(**{kind: wrap(getattr(handler, kind))})
