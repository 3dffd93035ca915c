"""The coordinator's side of the boards: one handle per board (its address, its
channels, its task generator, what it needs before its next step), the Step about to
be sent to it, and what a board answers for a slot."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import numpy as np

from testbed.daemon import GRPC_OPTIONS
from testbed.messages import TaskRecord
from testbed.observation import Decision
from testbed.rpc.v1 import agent_pb2, agent_pb2_grpc
from testbed.tasks import TaskGenerator


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
class BoardHandle:
    agent_id: str
    address: str
    generator: TaskGenerator
    session: str = ""
    needs_configure: bool = True
    needs_policy: bool = True
    channel: grpc.Channel | None = None
    stub: agent_pb2_grpc.AgentServiceStub | None = None
    _connected_to: str = ""
    achannel: grpc.aio.Channel | None = None
    astub: agent_pb2_grpc.AgentServiceStub | None = None
    _aconnected_to: str = ""

    def connect(self) -> agent_pb2_grpc.AgentServiceStub:
        """The stub for the agent's current address (it changes when a board restarts)."""
        if self.stub is None or self._connected_to != self.address:
            if self.channel is not None:
                self.channel.close()
            self.channel = grpc.insecure_channel(self.address, options=GRPC_OPTIONS)
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
            self.achannel = grpc.aio.insecure_channel(self.address, options=GRPC_OPTIONS)
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
    owes_task: bool
    request: agent_pb2.StepRequest | None = None
    failed: str = ""
