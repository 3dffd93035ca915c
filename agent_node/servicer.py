"""The AgentService gRPC servicer: unpack, call the agent, pack.

Every call answers a status that says what happened, never gRPC's `UNKNOWN` with a
Python exception's text: a malformed request is `INVALID_ARGUMENT` (checked before the
board changes anything, agent_node/checks.py), a call before Configure (or a config
asking for a runtime this board lacks) is `FAILED_PRECONDITION`, and a bug of the
board is `INTERNAL` (logged with its traceback). A Step whose task fails while it is
served still answers normally: the failure is in the task's record
(agent_node/agent.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import numpy as np

from agent_node.agent import Agent, NotConfigured
from agent_node.checks import BadRequest, check_endpoints, parse_config
from agent_node.edges import EdgeEndpoint
from testbed import serde
from testbed.config import ConfigError
from testbed.observation import SpecError
from testbed.policies.actor import ActorMismatch
from testbed.rpc.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from testbed.runtime import RuntimeUnavailable

log = logging.getLogger(__name__)

Reply = TypeVar("Reply")

INVALID = (BadRequest, ConfigError, SpecError, ActorMismatch)
"""What a malformed request raises: answered INVALID_ARGUMENT."""


def answered(
    method: Callable[[AgentServicer, Any, Any], Reply],
) -> Callable[[AgentServicer, Any, Any], Reply]:
    """Map what `method` raises to a gRPC status that says what went wrong."""

    @functools.wraps(method)
    def call(self: AgentServicer, request: Any, context: Any) -> Reply:
        try:
            return method(self, request, context)
        except (NotConfigured, RuntimeUnavailable) as exc:  # not now, or not on this board
            code, text = grpc.StatusCode.FAILED_PRECONDITION, str(exc)
        except INVALID as exc:
            code, text = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            code = grpc.StatusCode.INTERNAL
            text = f"{method.__name__} failed on the board: {type(exc).__name__}: {exc}"
        context.abort(code, text[:2000])
        raise AssertionError("unreachable: abort raises")

    return call


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    @answered
    def Configure(self, request: agent_pb2.ConfigureRequest, context) -> agent_pb2.AgentStatus:
        if request.agent_id and request.agent_id != self._agent.agent_id:
            raise BadRequest(f"this is {self._agent.agent_id}, not {request.agent_id}")
        cfg = parse_config(request.config_yaml)
        edges = [
            EdgeEndpoint(e.edge_id, e.address, (e.position.x_m, e.position.y_m))
            for e in request.edges
        ]
        check_endpoints(cfg, [(e.edge_id, e.address, e.position_m) for e in edges])
        self._agent.configure(cfg, edges, request.run_id)
        return self._status()

    @answered
    def LoadPolicy(self, request: agent_pb2.LoadPolicyRequest, context) -> agent_pb2.AgentStatus:
        self._agent.load_policy(request.name, request.onnx_model, request.spec_json)
        return self._status()

    @answered
    def Step(self, request: agent_pb2.StepRequest, context) -> agent_pb2.StepReport:
        action = (
            np.asarray(request.action.raw, dtype=np.float32) if request.HasField("action") else None
        )
        result = self._agent.step(
            request.slot, request.noise_std, request.generate,
            observe_only=request.observe_only, action=action,
            edges_alive=list(request.edges_alive) if request.edges_view else None,
            drain=request.drain,
        )  # fmt: skip
        report = agent_pb2.StepReport(
            agent_id=self._agent.agent_id,
            slot=request.slot,
            acted=result.acted,
            tasks=[serde.task_record_to_pb(r) for r in result.records],
            queue_length=result.queue_length,
            step_ms=result.step_ms,
            in_flight=result.in_flight,
        )
        if result.observation is not None:
            report.observation.extend(result.observation.tolist())
        if result.decision is not None:
            d = result.decision
            report.action.CopyFrom(
                agent_pb2.Action(target=d.target, ratio=d.ratio, download=d.download, raw=d.raw)
            )
        return report

    @answered
    def Status(self, request, context) -> agent_pb2.AgentStatus:
        return self._status()

    def _status(self) -> agent_pb2.AgentStatus:
        a = self._agent
        run = a.run
        status = agent_pb2.AgentStatus(
            agent_id=a.agent_id,
            configured=run is not None,
            tasks_generated=a.generated,
            tasks_finished=a.finished,
            energy_method=a.meter.method.value,
        )
        if run is not None:
            status.policy = run.policy.kind.value
            status.queue_length = len(run.queue)
            status.cpu_ghz = run.cpu_ghz
            status.position.CopyFrom(
                common_pb2.Position(x_m=run.position_m[0], y_m=run.position_m[1])
            )
        return status
