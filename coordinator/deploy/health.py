"""Whether a deployed daemon serves: the standard `grpc.health.v1` check, asked from
the coordinator at the host's address and the node's fixed port, with the
coordinator's own credentials (mutual TLS where the bench uses it:
testbed/security/credentials.py).
"""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from testbed.config import TestbedConfig
from testbed.security.credentials import coordinator_identity

CHECK_TIMEOUT_S = 2.0
POLL_S = 0.25


def check_once(cfg: TestbedConfig, address: str, node_id: str,
               timeout_s: float = CHECK_TIMEOUT_S) -> str:  # fmt: skip
    """`serving`, `not_serving`, or `unreachable (CODE)`."""
    identity = coordinator_identity(cfg)
    try:
        with identity.channel(address, peer_id=node_id) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
    except grpc.RpcError as exc:
        return f"unreachable ({exc.code().name})"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status).lower()


async def wait_serving(cfg: TestbedConfig, address: str, node_id: str, timeout_s: float) -> str:
    """Ask until the daemon answers SERVING or `timeout_s` passes; the last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await asyncio.to_thread(check_once, cfg, address, node_id)
        if answer == "serving" or time.monotonic() >= deadline:
            return answer
        await asyncio.sleep(POLL_S)


def node_address(host_address: str, port: int) -> str:
    return f"[{host_address}]:{port}" if ":" in host_address else f"{host_address}:{port}"
