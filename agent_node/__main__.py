"""`testbed-agent`: the board daemon.

Serves AgentService (Configure, LoadPolicy, Step, Status) and grpc.health.v1; reads
the edges' state from MQTT; registers with the coordinator and sends heartbeats.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
from pathlib import Path

from agent_node.agent import Agent
from agent_node.servicer import AgentServicer
from testbed.daemon import (
    GrpcServer,
    NodeDaemon,
    common_parser,
    load_node_config,
    run_main,
    setup_logging,
)
from testbed.energy import MeterUnavailable, open_meter
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.rpc.v1 import agent_pb2_grpc
from testbed.types import NodeKind
from testbed.zoo.catalog import Catalog, CatalogError, CatalogNotFound

log = logging.getLogger("agent_node")


def main(argv: list[str] | None = None) -> int:
    parser = common_parser("testbed-agent", __doc__.split("\n\n")[0])
    parser.add_argument("--zoo", default=None, help="the board's zoo folder (default from config)")
    args = parser.parse_args(argv)
    return run_main(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    cfg = load_node_config(args)
    specs = {s.id: s for s in cfg.agent_specs()}
    node_id = args.id or next(iter(specs), "agent-0")
    spec = specs.get(node_id)
    setup_logging(node_id, args.verbose)
    zoo_dir = Path(args.zoo or os.path.join(cfg.zoo.dir, cfg.zoo.scale.value))
    energy_cfg = spec.energy if spec is not None else cfg.agents.energy
    try:
        meter = open_meter(energy_cfg)
    except MeterUnavailable as exc:
        raise TestbedExit(ExitCode.METER_UNAVAILABLE, str(exc)) from None
    try:
        Catalog.load(zoo_dir)  # the board's models must be there before it serves
    except (CatalogNotFound, CatalogError) as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, str(exc)) from None
    daemon = NodeDaemon(args, cfg, node_id, NodeKind.AGENT)
    agent = Agent(node_id, daemon.connect(), zoo_dir, meter)
    servicer = AgentServicer(agent)
    host = args.host or (spec.host if spec else "127.0.0.1")
    port = args.port if args.port is not None else (spec.port if spec else 0)
    server = GrpcServer(
        host, port,
        [lambda s: agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, s)],
        service_names=["testbed.v1.AgentService"],
    )  # fmt: skip
    server.start()
    log.info("serving on %s: zoo %s, energy %s, broker %s", server.address, zoo_dir,
             meter.describe(), daemon.broker.url)  # fmt: skip
    daemon.announce(
        server.address,
        spec.position_m if spec else None,
        {"host": platform.node(), "energy_method": meter.method.value},
        lambda: {
            "tasks_generated": agent.generated,
            "tasks_finished": agent.finished,
            "energy_j": round(meter.energy_j(), 6),
            "energy_method": meter.method.value,
        },
    )
    daemon.wait()
    server.stop(1.0)
    agent.close()
    daemon.shutdown()
    meter.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
