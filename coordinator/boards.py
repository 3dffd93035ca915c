"""The coordinator's side of the boards: one handle per board (its address, its
channels, its task generator, what it needs before its next step), the Step about to
be sent to it, and what a board answers for a slot."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import numpy as np

from testbed.daemon import GRPC_OPTIONS
from testbed.messages import TaskRecord
from testbed.observation import Decision
from testbed.records import failed_record
from testbed.rpc.v1 import agent_pb2, agent_pb2_grpc
from testbed.security.credentials import PLAINTEXT, GrpcIdentity
from testbed.tasks import Task, TaskGenerator
from testbed.types import FailureReason


@dataclass
class AgentStep:
    """One agent's answer to one slot."""

    agent_id: str
    acted: bool
    observation: np.ndarray | None = None
    decision: Decision | None = None
    step_ms: float = 0.0
    reachable: bool = True


@dataclass
class SlotResult:
    slot: int
    records: list[TaskRecord]
    steps: dict[str, AgentStep]
    wall_ms: float
    max_step_ms: float

    @property
    def overhead_ms(self) -> float:
        """Orchestration: slot wall time minus the longest measured agent step."""
        return self.wall_ms - self.max_step_ms


@dataclass
class NodeEvent:
    t_s: float
    slot: int
    node_id: str
    old: str
    new: str


@dataclass
class OwedTasks:
    """The tasks one board owes the coordinator a record of: drawn in a slot in which the
    board was asked to generate, and not reported yet (oldest first, as its FIFO queue).

    The generator is a function of (seed, agent, slot), so the coordinator draws the
    very task the board draws. A record for a task not owed (a second record, or one a
    buggy or impostor board made up) is refused; a task the board should have reported
    by now — more owed than the board says it still queues — is recorded as missing."""

    agent_id: str
    generator: TaskGenerator
    tasks: dict[str, Task] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # task ids of records not owed

    def draw(self, slot: int) -> Task | None:
        task = self.generator.next(slot)
        if task is not None:
            self.tasks[task.task_id] = task
        return task

    def owe(self, tasks: list[Task]) -> None:
        """Tasks the board draws by a rule other than `generator`: several per slot on
        the live §B bench (coordinator/coedge_live.py), oldest first as drawn."""
        for task in tasks:
            self.tasks[task.task_id] = task

    def settle(self, records: list[TaskRecord]) -> list[TaskRecord]:
        """The records that settle an owed task; the others are refused (and noted)."""
        accepted = []
        for record in records:
            if record.agent_id == self.agent_id and record.task_id in self.tasks:
                del self.tasks[record.task_id]
                accepted.append(record)
            else:
                self.refused.append(record.task_id[:80])
        return accepted

    def fail(self, task: Task, slot: int, reason: FailureReason, detail: str) -> TaskRecord:
        """Settle `task` with a failed record the coordinator writes itself."""
        del self.tasks[task.task_id]
        return failed_record(task, slot, reason, detail)

    def overdue(self, queue_length: int, slot: int) -> list[TaskRecord]:
        """Owed tasks beyond what the board still queues, oldest first: the board served
        or dropped them without a record."""
        surplus = list(self.tasks.values())[: max(0, len(self.tasks) - queue_length)]
        detail = f"{self.agent_id} answered slot {slot} without it"
        return [self.fail(t, slot, FailureReason.RECORD_MISSING, detail) for t in surplus]

    def fail_all(self, slot: int, reason: FailureReason, detail: str) -> list[TaskRecord]:
        return [self.fail(t, slot, reason, detail) for t in list(self.tasks.values())]


@dataclass
class BoardHandle:
    agent_id: str
    address: str
    owed: OwedTasks
    session: str = ""
    needs_configure: bool = True
    needs_policy: bool = True
    channel: grpc.Channel | None = None
    stub: agent_pb2_grpc.AgentServiceStub | None = None
    _connected_to: str = ""
    achannel: grpc.aio.Channel | None = None
    astub: agent_pb2_grpc.AgentServiceStub | None = None
    _aconnected_to: str = ""
    identity: GrpcIdentity = PLAINTEXT  # the coordinator's: with TLS, reach only this board

    def connect(self) -> agent_pb2_grpc.AgentServiceStub:
        """The stub for the agent's current address (it changes when a board restarts)."""
        if self.stub is None or self._connected_to != self.address:
            if self.channel is not None:
                self.channel.close()
            self.channel = self.identity.channel(
                self.address, peer_id=self.agent_id, options=GRPC_OPTIONS
            )
            self.stub = agent_pb2_grpc.AgentServiceStub(self.channel)
            self._connected_to = self.address
        return self.stub

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()

    async def aconnect(self) -> agent_pb2_grpc.AgentServiceStub:
        """An asyncio stub for the current address; call on the bench's event loop."""
        if self.astub is None or self._aconnected_to != self.address:
            if self.achannel is not None:
                await self.achannel.close()
            self.achannel = self.identity.aio_channel(
                self.address, peer_id=self.agent_id, options=GRPC_OPTIONS
            )
            self.astub = agent_pb2_grpc.AgentServiceStub(self.achannel)
            self._aconnected_to = self.address
        return self.astub

    async def aclose(self) -> None:
        if self.achannel is not None:
            await self.achannel.close()


@dataclass
class PendingStep:
    """A Step to send (or one that cannot be sent, with the reason)."""

    handle: BoardHandle
    slot: int
    task: Task | None = None  # the task this Step owes: settled by its answer or failure
    drew: bool = False  # `task` was drawn for this Step (else: the queue's head)
    request: agent_pb2.StepRequest | None = None
    failed: str = ""
