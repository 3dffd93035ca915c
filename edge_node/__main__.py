"""`testbed-edge`: the edge server daemon.

Serves EdgeService (SubmitTask, GetState, PrefetchModel, EvictModel, SetAllocation) and
grpc.health.v1 over gRPC; fetches models from the cloud node over MQTT; publishes its
state (retained) and telemetry.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
from pathlib import Path

from edge_node.node import EdgeNode
from edge_node.servicer import EdgeServicer
from testbed.config import TestbedConfig
from testbed.daemon import DaemonSpec, GrpcServer, NodeDaemon, daemon_main, open_node_meter
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.rpc.v1 import edge_pb2_grpc
from testbed.runtime import ModelRuntime
from testbed.types import NodeKind

log = logging.getLogger("edge_node")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="model cache folder")


def _default_id(cfg: TestbedConfig) -> str:
    return next((s.id for s in cfg.edge_specs()), "edge-0")


SPEC = DaemonSpec("testbed-edge", __doc__ or "", NodeKind.EDGE, _default_id, _arguments)


def _serve(daemon: NodeDaemon, stack: contextlib.ExitStack) -> None:
    cfg, args, node_id = daemon.cfg, daemon.args, daemon.node_id
    specs = {s.id: s for s in cfg.edge_specs()}
    if node_id not in specs:
        raise TestbedExit(
            ExitCode.USAGE, f"no edge {node_id!r} in the config; it has {sorted(specs)}"
        )
    spec = specs[node_id]
    cache_dir = Path(args.cache_dir or spec.cache_dir or os.path.join(".testbed", "cache", node_id))
    meter = open_node_meter(spec.energy)
    stack.callback(meter.close)
    runtime = ModelRuntime(spec.runtime, spec.intra_op_threads)
    client = daemon.connect(stack)
    node = EdgeNode(cfg, spec, client=client, runtime=runtime, meter=meter, cache_dir=cache_dir,
                    events=daemon.events)  # fmt: skip
    stack.callback(node.stop)
    servicer = EdgeServicer(node)
    server = GrpcServer(
        args.host or spec.host,
        spec.port if args.port is None else args.port,
        [lambda s: edge_pb2_grpc.add_EdgeServiceServicer_to_server(servicer, s)],
        service_names=["testbed.v1.EdgeService"],
        identity=daemon.grpc_identity,
    )
    node.start(server.address)
    server.start()
    stack.callback(server.stop, 1.0)
    log.info(
        "serving on %s: cache %.1f MB in %s, %d slot(s), runtime %s, energy %s, broker %s",
        server.address, spec.cache_capacity_mb, cache_dir, spec.parallel_slots,
        runtime.provider, meter.describe(), daemon.broker.url,
    )  # fmt: skip
    node.preload()  # before announcing: the bench starts with the models deployed
    facts = {"host": platform.node(), "runtime": runtime.provider,
             "energy_method": meter.method.value}  # fmt: skip
    daemon.announce(server.address, spec.position_m, facts, node.telemetry, meter)


def main(argv: list[str] | None = None) -> int:
    return daemon_main(SPEC, _serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
