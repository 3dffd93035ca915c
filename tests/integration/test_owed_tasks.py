"""Every task a board owes gets exactly one record, whatever the board answers: a
board that answers without the task (a buggy board, an impostor), one that sends
records of tasks it never had, one that keeps tasks queued at the end of the run."""

from __future__ import annotations

from collections import Counter
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from coordinator.policy_choice import PolicySource
from testbed.rpc.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from testbed.types import FailureReason, Outcome

from .test_live_bench import make_bench

pytestmark = pytest.mark.slow


class Impostor(agent_pb2_grpc.AgentServiceServicer):
    """Answers every Step as a board with nothing to do; optionally with a forged record."""

    def __init__(self, agent_id: str, forge: bool = False) -> None:
        self.agent_id, self.forge, self.steps = agent_id, forge, 0

    def Configure(self, request, context):
        return agent_pb2.AgentStatus(agent_id=self.agent_id, configured=True)

    def LoadPolicy(self, request, context):
        return agent_pb2.AgentStatus(agent_id=self.agent_id, configured=True)

    def Step(self, request, context):
        self.steps += 1
        report = agent_pb2.StepReport(agent_id=self.agent_id, slot=request.slot, acted=False)
        if self.forge:
            report.tasks.append(
                agent_pb2.TaskRecord(
                    task_id=f"{self.agent_id}/forged-{request.slot}", agent_id=self.agent_id,
                    slot=request.slot, outcome=common_pb2.TASK_OUTCOME_COMPLETED,
                    latency_ms=1.0,
                )
            )  # fmt: skip
        return report


def _serve(servicer: Impostor) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize("forge", [False, True], ids=["silent", "forging"])
def test_a_board_answering_without_its_task_still_has_it_recorded(
    tmp_path: Path, tiny_zoo: Path, forge: bool
) -> None:
    impostor = Impostor("agent-0", forge=forge)
    server, address = _serve(impostor)
    try:
        with make_bench(tmp_path, tiny_zoo) as bench:
            bench.start(PolicySource("local"))
            handle = bench.agents["agent-0"]
            handle.address = address  # agent-0's Steps now reach the impostor
            records = [r for slot in range(4) for r in bench.step(slot).records]
            records += bench.drain()
    finally:
        server.stop(0)
    assert impostor.steps >= 4
    ids = [r.task_id for r in records]
    assert len(ids) == len(set(ids)) == 3 * 4  # 3 boards x 4 slots, arrival probability 1
    mine = [r for r in records if r.agent_id == "agent-0"]
    assert [r.slot for r in mine] == [0, 1, 2, 3]
    assert {r.reason for r in mine} == {FailureReason.RECORD_MISSING}
    assert all(r.outcome is Outcome.FAILED and "without it" in r.detail for r in mine)
    assert not any("forged" in i for i in ids)
    refused = bench.refused_records()
    forged = [f"agent-0/forged-{s}" for s in range(5)]  # 4 slots and the drain
    assert refused == ({"agent-0": forged} if forge else {})
    others = Counter(r.outcome for r in records if r.agent_id != "agent-0")
    assert others == Counter({Outcome.COMPLETED: 8})


def test_tasks_still_queued_at_the_end_are_recorded(tmp_path: Path, tiny_zoo: Path) -> None:
    with make_bench(tmp_path, tiny_zoo) as bench:
        bench.start(PolicySource("local"))
        observed = bench.observe(0)  # every board draws and queues its task, serves nothing
        assert observed.records == []
        records = bench.drain()
        assert len(records) == 3
        assert {r.reason for r in records} == {FailureReason.NO_TASK_SLOT}
        assert bench.drain() == []  # nothing is owed any more
