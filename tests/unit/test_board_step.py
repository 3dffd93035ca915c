"""One board's slot (agent_node/agent.py) when something goes wrong: a malformed request
changes nothing, and a task that left the queue ends in exactly one record with the
reason it failed. A board of no edges on the tiny zoo; faults are injected where no
real input can reach them any more (every input is checked before the draw)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import agent_node.agent as agent_module
from agent_node.agent import Agent
from agent_node.checks import BadRequest
from testbed.config import EnergyConfig, MeterKind, config_from_dict
from testbed.energy.detect import open_meter
from testbed.types import FailureReason, Outcome

CFG = config_from_dict(
    {
        "edges": {"count": 0},
        "agents": {"count": 1},
        "tasks": {"num_types": 3},
        "zoo": {"scale": "tiny"},
    }
)


class NoBroker:
    def subscribe(self, topic: str, handler: object) -> None: ...

    def unsubscribe(self, topic: str) -> None: ...


@pytest.fixture
def agent(tiny_zoo: Path) -> Iterator[Agent]:
    board = Agent(
        "agent-0", NoBroker(), tiny_zoo, open_meter(EnergyConfig(meter=MeterKind.ESTIMATED))
    )  # type: ignore[arg-type]
    board.configure(CFG, [], "run-0")
    yield board
    board.close()


def test_a_malformed_action_is_refused_before_anything_is_drawn(agent: Agent) -> None:
    for action, what in (
        (np.zeros(2), "expected 3 numbers"),
        (np.array([1, np.inf, 0.5]), "infinite"),
    ):
        with pytest.raises(BadRequest, match=what):
            agent.step(0, action=action)
    with pytest.raises(BadRequest, match="noise_std"):
        agent.step(0, noise_std=float("nan"))
    assert (agent.generated, agent.finished) == (0, 0)
    assert agent.run is not None and len(agent.run.queue) == 0


@pytest.mark.parametrize(
    ("fault", "reason", "detail"),
    [
        (MemoryError("Unable to allocate 111. PiB"), FailureReason.INTERNAL, "MemoryError: Unable"),
        (KeyError("x"), FailureReason.INTERNAL, "KeyError: 'x'"),
        (BadRequest("edge-0 sent nonsense"), FailureReason.INVALID_REQUEST, "edge-0 sent"),
    ],
)
def test_a_task_whose_service_raises_ends_failed_with_the_real_reason(
    agent: Agent,
    monkeypatch: pytest.MonkeyPatch,
    fault: Exception,
    reason: FailureReason,
    detail: str,
) -> None:
    def broken(*_args: object) -> bytes:
        raise fault

    monkeypatch.setattr(agent_module, "task_data", broken)
    result = agent.step(0)
    (record,) = result.records
    assert (record.task_id, record.outcome, record.reason) == (
        "agent-0/s000000",
        Outcome.FAILED,
        reason,
    )
    assert record.detail.startswith(detail)
    assert (agent.generated, agent.finished, result.queue_length) == (1, 1, 0)
    monkeypatch.undo()
    (after,) = agent.step(1).records  # the board serves on
    assert after.outcome is Outcome.COMPLETED, after.detail


def test_a_task_whose_observation_raises_leaves_the_queue_with_its_record(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent.step(0, observe_only=True)  # queued and observed: served later

    def broken(*_args: object) -> np.ndarray:
        raise RuntimeError("observation broke")

    monkeypatch.setattr(agent_module, "board_observation", broken)
    result = agent.step(1, observe_only=True)  # task 0 is observed already: task 1 is not
    assert result.observation is not None and not result.records
    served = agent.step(1, generate=False, action=np.array([1.0, 0.0, 0.0]))
    (record,) = served.records
    assert record.task_id == "agent-0/s000000" and record.outcome is Outcome.COMPLETED
    peeked = agent.step(2, generate=False, observe_only=True)  # task 1: its observation raises
    (failed,) = peeked.records
    assert (failed.task_id, failed.reason) == ("agent-0/s000001", FailureReason.INTERNAL)
    assert failed.detail == "RuntimeError: observation broke" and peeked.observation is None
    assert peeked.queue_length == 0 and agent.finished == agent.generated == 2


def test_drain_ends_what_is_queued_and_draws_nothing(agent: Agent) -> None:
    for slot in range(2):
        agent.step(slot, observe_only=True)
    result = agent.step(2, drain=True)
    assert [(r.task_id, r.reason) for r in result.records] == [
        (f"agent-0/s{s:06d}", FailureReason.NO_TASK_SLOT) for s in range(2)
    ]
    assert not result.acted and result.queue_length == 0 and agent.generated == 2
    with pytest.raises(BadRequest, match="drain"):
        agent.step(3, drain=True, observe_only=True)
