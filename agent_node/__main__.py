"""`testbed-agent`: the board daemon.

Serves AgentService (Configure, LoadPolicy, Step, Status) and grpc.health.v1; reads
the edges' state from MQTT; registers with the coordinator and sends heartbeats.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
from collections.abc import Sequence
from pathlib import Path

from agent_node.agent import Agent
from agent_node.servicer import AgentServicer
from testbed.config import TestbedConfig
from testbed.daemon import DaemonSpec, GrpcServer, NodeDaemon, daemon_main, open_node_meter
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.messages import TaskRecord
from testbed.rpc.v1 import agent_pb2_grpc
from testbed.telemetry import TaskWindow
from testbed.types import NodeKind
from testbed.zoo.catalog import Catalog, CatalogError, CatalogNotFound

log = logging.getLogger("agent_node")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zoo", default=None, help="the board's zoo folder (default from config)")


def _default_id(cfg: TestbedConfig) -> str:
    return next((s.id for s in cfg.agent_specs()), "agent-0")


SPEC = DaemonSpec("testbed-agent", __doc__ or "", NodeKind.AGENT, _default_id, _arguments)


def _serve(daemon: NodeDaemon, stack: contextlib.ExitStack) -> None:
    cfg, args, node_id = daemon.cfg, daemon.args, daemon.node_id
    spec = {s.id: s for s in cfg.agent_specs()}.get(node_id)
    zoo_dir = Path(args.zoo) if args.zoo else cfg.zoo_path()
    meter = open_node_meter(spec.energy if spec is not None else cfg.agents.energy)
    stack.callback(meter.close)
    try:
        Catalog.load(zoo_dir)  # the board's models must be there before it serves
    except (CatalogNotFound, CatalogError) as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, str(exc)) from None
    agent = Agent(node_id, daemon.connect(stack), zoo_dir, meter, daemon.grpc_identity)
    window = TaskWindow()  # completed tasks: rate and latency for telemetry
    agent.on_records = lambda records: _tell(daemon, window, records)
    stack.callback(agent.close)
    servicer = AgentServicer(agent)
    server = GrpcServer(
        args.host or (spec.host if spec else "127.0.0.1"),
        args.port if args.port is not None else (spec.port if spec else 0),
        [lambda s: agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, s)],
        service_names=["testbed.v1.AgentService"],
        identity=daemon.grpc_identity,
    )
    server.start()
    stack.callback(server.stop, 1.0)
    log.info("serving on %s: zoo %s, energy %s, broker %s", server.address, zoo_dir,
             meter.describe(), daemon.broker.url)  # fmt: skip
    daemon.announce(
        server.address,
        spec.position_m if spec else None,
        {"host": platform.node(), "energy_method": meter.method.value},
        lambda: {
            "tasks_generated": agent.generated,
            "tasks_finished": agent.finished,
            "queue_length": agent.queue_length,
            "tasks": window.figures(),
        },
        meter,
    )


def _tell(daemon: NodeDaemon, window: TaskWindow, records: Sequence[TaskRecord]) -> None:
    """Finished tasks: their records and failures on MQTT, the completed in the window."""
    for record in records:
        if record.completed:
            window.note(record.latency_ms)
    daemon.events.task_records(records)


def main(argv: list[str] | None = None) -> int:
    return daemon_main(SPEC, _serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
