"""The AgentService gRPC servicer: unpack, call the agent, pack."""

from __future__ import annotations

import grpc
import numpy as np
import yaml

from agent_node.agent import Agent, NotConfigured
from agent_node.edges import EdgeEndpoint
from testbed import serde
from testbed.config import ConfigError, config_from_dict
from testbed.policies.actor import ActorMismatch
from testbed.rpc.v1 import agent_pb2, agent_pb2_grpc, common_pb2


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def Configure(self, request: agent_pb2.ConfigureRequest, context) -> agent_pb2.AgentStatus:
        if request.agent_id and request.agent_id != self._agent.agent_id:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"this is {self._agent.agent_id}, not {request.agent_id}",
            )
        try:
            cfg = config_from_dict(yaml.safe_load(request.config_yaml) or {}, "Configure")
        except (ConfigError, yaml.YAMLError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        edges = [
            EdgeEndpoint(e.edge_id, e.address, (e.position.x_m, e.position.y_m))
            for e in request.edges
        ]
        try:
            self._agent.configure(cfg, edges, request.run_id)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return self.Status(None, context)

    def LoadPolicy(self, request: agent_pb2.LoadPolicyRequest, context) -> agent_pb2.AgentStatus:
        try:
            self._agent.load_policy(request.name, request.onnx_model, request.spec_json)
        except NotConfigured as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except (ActorMismatch, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return self.Status(None, context)

    def Step(self, request: agent_pb2.StepRequest, context) -> agent_pb2.StepReport:
        try:
            action = (
                np.asarray(request.action.raw, dtype=np.float32)
                if request.HasField("action")
                else None
            )
            result = self._agent.step(
                request.slot, request.noise_std, request.generate,
                observe_only=request.observe_only, action=action,
            )  # fmt: skip
        except NotConfigured as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        report = agent_pb2.StepReport(
            agent_id=self._agent.agent_id,
            slot=request.slot,
            acted=result.acted,
            tasks=[serde.task_record_to_pb(r) for r in result.records],
            queue_length=result.queue_length,
            step_ms=result.step_ms,
        )
        if result.observation is not None:
            report.observation.extend(result.observation.tolist())
        if result.decision is not None:
            d = result.decision
            report.action.CopyFrom(
                agent_pb2.Action(target=d.target, ratio=d.ratio, download=d.download, raw=d.raw)
            )
        return report

    def Status(self, request, context) -> agent_pb2.AgentStatus:
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
