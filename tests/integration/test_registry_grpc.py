"""The Registry servicer and NodeRegistration over real gRPC on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from coordinator.registry import NodeState, NodeTable, Registry
from testbed.config import RegistryConfig
from testbed.registration import NodeInfo, NodeRegistration
from testbed.rpc.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from testbed.types import NodeKind
from tests.waiting import WAIT_S, wait_until

INTERVAL_S = 0.1  # the node's heartbeat interval
CFG = RegistryConfig(heartbeat_interval_s=INTERVAL_S, missing_after_beats=3, remove_after_s=30.0)
SWEEP_S = 0.02
AGENT = NodeInfo("agent-0", NodeKind.AGENT, "127.0.0.1:1", (1.0, 2.0), {"host": "test"})


class Coordinator:
    """A gRPC server with a Registry servicer over a fresh NodeTable."""

    def __init__(self, port: int = 0) -> None:
        self.events: list[tuple[float, str, NodeState | None, NodeState]] = []
        self.changed = threading.Condition()
        self.table = NodeTable(CFG, on_state_change=self._record)
        self.registry = Registry(self.table, sweep_interval_s=SWEEP_S)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.registry.add_to_server(self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        assert self.port, f"could not bind 127.0.0.1:{port}"
        self.server.start()
        self.registry.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _record(self, node_id: str, old: NodeState | None, new: NodeState) -> None:
        with self.changed:
            self.events.append((time.monotonic(), node_id, old, new))
            self.changed.notify_all()

    def wait_state(self, node_id: str, state: NodeState, timeout_s: float = WAIT_S) -> float:
        """Wait until the node enters `state`; returns when it did (monotonic s)."""
        with self.changed:
            ok = self.changed.wait_for(
                lambda: any(e[1] == node_id and e[3] is state for e in self.events), timeout_s
            )
            assert ok, f"{node_id} not {state} within {timeout_s} s; events: {self.events}"
            return next(e[0] for e in self.events if e[1] == node_id and e[3] is state)

    def stop(self) -> None:
        self.registry.stop()
        self.server.stop(grace=None).wait()


def beats(c: Coordinator) -> int:
    """Heartbeats agent-0's session has had on `c` (0 before it registers)."""
    record = c.table.get("agent-0")
    return record.beats if record is not None else 0


@pytest.fixture
def coordinator() -> Iterator[Coordinator]:
    c = Coordinator()
    yield c
    c.stop()


def test_registers_and_heartbeats_keep_it_alive(coordinator: Coordinator) -> None:
    with NodeRegistration(coordinator.address, AGENT, INTERVAL_S) as reg:
        session = reg.start(timeout_s=5.0)
        record = coordinator.table.get("agent-0")
        assert record is not None and record.session_id == session
        assert record.info == AGENT and record.heartbeat_interval_s == INTERVAL_S
        # eight beats: well past the missing threshold of 3 beats
        assert wait_until(lambda: beats(coordinator) >= 8)
        record = coordinator.table.get("agent-0")
        assert record.state is NodeState.ALIVE
        assert record.last_seq == record.beats
    # close() deregisters
    assert wait_until(lambda: "agent-0" not in coordinator.table)
    assert coordinator.events[-1][3] is NodeState.REMOVED


def test_silent_node_is_marked_missing_in_time(coordinator: Coordinator) -> None:
    reg = NodeRegistration(coordinator.address, AGENT, INTERVAL_S)
    reg.start(timeout_s=5.0)
    assert wait_until(lambda: beats(coordinator) >= 2)
    last_beat = coordinator.table.get("agent-0").last_seen
    reg.close(deregister=False)  # as if the node crashed
    missing_at = coordinator.wait_state("agent-0", NodeState.MISSING)
    # missing after 3 beats × 0.1 s = 0.3 s without a heartbeat, never sooner; when
    # exactly (≤ one sweep later) is tests/unit/test_node_table.py's, on a fake clock
    assert missing_at - last_beat >= 3 * INTERVAL_S, missing_at - last_beat


def test_node_re_registers_after_the_coordinator_restarts() -> None:
    first = Coordinator()
    port = first.port
    sessions: list[str] = []
    reg = NodeRegistration(first.address, AGENT, INTERVAL_S, on_registered=sessions.append)
    second: Coordinator | None = None
    try:
        reg.start(timeout_s=5.0)
        first.stop()  # the coordinator goes away, and its table with it
        # heartbeats fail until the node takes the server as lost and registers again
        assert wait_until(lambda: reg._heartbeat.losses >= 1)
        second = Coordinator(port)  # a new coordinator on the same address
        second.wait_state("agent-0", NodeState.ALIVE)
        record = second.table.get("agent-0")
        assert record is not None
        # the node has the new session once the reply is back
        assert wait_until(lambda: reg.session_id == record.session_id)
        assert len(sessions) == 2 and sessions[0] != sessions[1]
        assert wait_until(lambda: beats(second) >= 5)  # beats go on
        assert second.table.get("agent-0").state is NodeState.ALIVE
    finally:
        reg.close()
        if second is not None:
            second.stop()


def test_new_coordinator_answers_unknown_and_the_node_re_registers() -> None:
    # The restart is quick (between two beats): no errors, only known=false.
    first = Coordinator()
    reg = NodeRegistration(first.address, AGENT, INTERVAL_S)
    try:
        old = reg.start(timeout_s=5.0)
        first.table.deregister("agent-0", old)  # the coordinator forgets the node
        assert wait_until(lambda: reg.session_id != old)
        assert first.table.get("agent-0").session_id == reg.session_id
    finally:
        reg.close()
        first.stop()


def test_start_waits_for_a_coordinator_that_comes_up_late() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = NodeRegistration(f"127.0.0.1:{port}", AGENT, INTERVAL_S)
    late: list[Coordinator] = []
    timer = threading.Timer(0.4, lambda: late.append(Coordinator(port)))
    timer.start()
    try:
        start = time.monotonic()
        reg.start(timeout_s=8.0)
        assert time.monotonic() - start >= 0.35
        timer.join()
        assert "agent-0" in late[0].table
    finally:
        timer.join()
        reg.close()
        for c in late:
            c.stop()


def test_start_gives_up_at_its_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = NodeRegistration(f"127.0.0.1:{port}", AGENT, INTERVAL_S)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        reg.start(timeout_s=0.5)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 3.0
    reg.close()


def test_invalid_registration_is_not_retried(coordinator: Coordinator) -> None:
    reg = NodeRegistration(coordinator.address, NodeInfo("", NodeKind.AGENT), INTERVAL_S)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        reg.start(timeout_s=5.0)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert time.monotonic() - start < 1.0
    reg.close()


def test_stale_session_heartbeat_answers_unknown(coordinator: Coordinator) -> None:
    with grpc.insecure_channel(coordinator.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        reply = stub.Heartbeat(registry_pb2.HeartbeatRequest(node_id="agent-0", session_id="x"))
        assert not reply.known
        request = registry_pb2.RegisterNodeRequest(node=registry_pb2.NodeInfo(node_id="edge-9"))
        with pytest.raises(grpc.RpcError) as info:
            stub.RegisterNode(request)  # no kind
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_a_hostile_node_id_is_invalid_argument_and_the_registry_serves_on(
    coordinator: Coordinator,
) -> None:
    hostile = ["x" * 1_000_000, "agent-0\nregistry: node edge-0 alive → removed", "\x1b[2J"]
    with grpc.insecure_channel(coordinator.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        for node_id in hostile:
            node = registry_pb2.NodeInfo(node_id=node_id, kind=common_pb2.NODE_KIND_AGENT)
            with pytest.raises(grpc.RpcError) as info:
                stub.RegisterNode(registry_pb2.RegisterNodeRequest(node=node))
            assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            details = info.value.details() or ""
            assert "^[a-z][a-z0-9-]{0,31}$" in details and len(details) < 200
            assert "\n" not in details and "\x1b" not in details
        node = registry_pb2.NodeInfo(node_id="agent-0", kind=common_pb2.NODE_KIND_AGENT)
        assert stub.RegisterNode(registry_pb2.RegisterNodeRequest(node=node)).accepted
    assert [e[1] for e in coordinator.events] == ["agent-0"]  # nothing else ever entered
