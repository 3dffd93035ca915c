"""A §B board (agent_node/scheduler.py behind agent_node/agent.py) with its real
pieces — task draws, policy, split, records — and edges that answer by hand: a
clocked board returns at once and reports its tasks in later steps, a drain returns
the rest, and an edge that cannot be reached fails its shares, never a task."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_node.agent import Agent
from agent_node.checks import BadRequest
from agent_node.edges import EdgeEndpoint
from testbed.coedge.tasks import slot_tasks
from testbed.config import EnergyConfig, MeterKind, TestbedConfig, config_from_dict
from testbed.edge_client import Submission
from testbed.energy.detect import open_meter
from testbed.messages import EdgeTaskRequest, EdgeTaskResult, EdgeTiming, TaskRecord
from testbed.types import FailureReason, Outcome


def bench(slot_mode: str, policy: str = "split-all") -> TestbedConfig:
    return config_from_dict(
        {
            "edges": {"count": 3, "nodes": [{"cpu_ghz": 1.0}, {"cpu_ghz": 2.0}, {"cpu_ghz": 3.0}]},
            "agents": {"count": 3},
            "tasks": {"num_types": 3, "flops_per_cycle": 50.0},
            "zoo": {"scale": "tiny"},
            "emulation": {"links": "off"},
            "run": {"system": "coedge", "slot_mode": slot_mode, "policy": policy,
                    "task_timeout_s": 5.0},
            "coedge": {"edge_ghz": [1.0, 2.0, 3.0], "max_tasks": 2, "arrival_prob": 1.0,
                       "size_mbit": [0.1, 0.2], "density_cycles_per_bit": [100.0, 100.0],
                       "deadline_s": 30.0},
        }
    )  # fmt: skip


class Edge:
    """An edge that answers each share once `gate` is open, after `delay_s`."""

    def __init__(self, edge_id: str, gate: threading.Event, delay_s: float = 0.02) -> None:
        self.edge_id, self.gate, self.delay_s = edge_id, gate, delay_s
        self.requests: list[tuple[EdgeTaskRequest, int]] = []

    def submit(self, request: EdgeTaskRequest, data: bytes, *, timeout_s: float,
               pacer: Any = None) -> Submission:  # fmt: skip
        self.requests.append((request, len(data)))
        assert self.gate.wait(timeout_s)
        time.sleep(self.delay_s)
        result = EdgeTaskResult(
            request.task_id, self.edge_id, Outcome.COMPLETED, units_done=request.units,
            timing=EdgeTiming(queue_ms=1.0, compute_ms=self.delay_s * 1e3),
        )  # fmt: skip
        return Submission(result, upload_s=0.0, round_trip_s=self.delay_s)

    def close(self) -> None: ...


class NoBroker:
    def subscribe(self, topic: str, handler: object) -> None: ...

    def unsubscribe(self, topic: str) -> None: ...


def board(cfg: TestbedConfig, zoo: Path, addresses: dict[str, str] | None = None) -> Agent:
    agent = Agent("agent-0", NoBroker(), zoo, open_meter(EnergyConfig(meter=MeterKind.ESTIMATED)))  # type: ignore[arg-type]
    endpoints = [
        EdgeEndpoint(s.id, (addresses or {}).get(s.id, f"127.0.0.1:{51000 + i}"),
                     s.position_m or (0.0, 0.0))
        for i, s in enumerate(cfg.edge_specs())
    ]  # fmt: skip
    agent.configure(cfg, endpoints, "run-0")
    return agent


@pytest.fixture
def gate() -> threading.Event:
    return threading.Event()


@pytest.fixture
def clocked(tiny_zoo: Path, gate: threading.Event) -> Iterator[tuple[Agent, list[Edge]]]:
    agent = board(bench("clocked"), tiny_zoo)
    assert agent.run is not None
    edges = [Edge(e.edge_id, gate) for e in agent.run.edges.endpoints]
    agent.run.edges.clients[:] = edges  # type: ignore[assignment]
    yield agent, edges
    gate.set()
    agent.close()


def check_split(record: TaskRecord) -> None:
    assert record.outcome is Outcome.COMPLETED, record.detail
    assert record.shares and sum(s.units for s in record.shares) == record.units > 0
    assert sum(s.share for s in record.shares) == pytest.approx(1.0)
    assert record.latency_ms == max(s.finish_ms for s in record.shares)
    assert record.edge_id == "+".join(s.edge_id for s in record.shares)


def wait_until(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_clocked_board_returns_at_once_and_reports_later(
    clocked: tuple[Agent, list[Edge]], gate: threading.Event
) -> None:
    agent, edges = clocked
    owed = [t.task_id for s in (0, 1) for t in slot_tasks(agent.run.cfg, 0, "agent-0", s)]  # type: ignore[union-attr]
    t0 = time.perf_counter()
    first = agent.step(0)
    assert time.perf_counter() - t0 < 2.0  # the edges have not answered: it did not wait
    assert (first.records, first.in_flight, first.queue_length) == ([], 2, 2)
    wait_until(lambda: sum(len(e.requests) for e in edges) >= 2)
    gate.set()
    scheduler = agent.run.scheduler  # type: ignore[union-attr]
    assert scheduler is not None
    wait_until(lambda: scheduler.in_flight == 0)
    gate.clear()
    second = agent.step(1)  # the slot-0 tasks, finished meanwhile; slot 1's are out
    assert sorted(r.task_id for r in second.records) == owed[:2]
    assert second.in_flight == 2
    for record in second.records:
        check_split(record)
        assert record.slot == 0
    gate.set()
    rest = agent.step(2, drain=True)
    assert sorted(r.task_id for r in rest.records) == owed[2:] and rest.in_flight == 0
    for record in rest.records:
        check_split(record)
    # split-all: every edge got units of some task, the home edge without pacing
    assert all(e.requests for e in edges)
    assert all(req.upload_rate_mbps == 0.0 for req, _ in edges[0].requests)
    assert (agent.generated, agent.finished) == (4, 4)


def test_a_coedge_board_refuses_observe_and_action(clocked: tuple[Agent, list[Edge]]) -> None:
    agent, _ = clocked
    with pytest.raises(BadRequest, match="§B board"):
        agent.step(0, observe_only=True)
    assert agent.generated == 0


def test_an_unreachable_edge_fails_its_shares_and_is_avoided_after(
    tiny_zoo: Path, gate: threading.Event
) -> None:
    # edge-1's address refuses connections: the real client answers edge_unreachable;
    # tasks of hundreds of units (bench): every edge of split-all gets some, whatever the waits
    agent = board(bench("barrier"), tiny_zoo, {"edge-1": "127.0.0.1:1"})
    try:
        assert agent.run is not None
        clients = agent.run.edges.clients
        fakes = {0: Edge("edge-0", gate), 2: Edge("edge-2", gate)}
        for j, fake in fakes.items():
            clients[j] = fake  # type: ignore[call-overload]
        gate.set()
        first = agent.step(0)  # barrier: the slot's records come back with it
        assert len(first.records) == 2 and first.in_flight == 0
        # The slot's first task always sends edge-1 a share; the second may be planned
        # after that share failed, and then leaves edge-1 out: either way, a task with an
        # edge-1 share failed with its reason, and one without it completed.
        failed = 0
        for record in first.records:
            edge1 = [s for s in record.shares if s.edge_id == "edge-1"]
            if not edge1:
                check_split(record)
                continue
            failed += 1
            assert record.outcome is Outcome.FAILED
            assert record.reason is FailureReason.EDGE_UNREACHABLE, record.detail
            assert edge1[0].reason is FailureReason.EDGE_UNREACHABLE
            assert any(s.completed for s in record.shares)
        assert failed >= 1
        second = agent.step(1)
        assert len(second.records) == 2
        for record in second.records:
            check_split(record)
            assert "edge-1" not in record.edge_id
    finally:
        agent.close()
