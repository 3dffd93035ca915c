"""`testbed-edge`: the edge server daemon.

Serves EdgeService (SubmitTask, GetState, PrefetchModel, EvictModel) and
grpc.health.v1 over gRPC; fetches models from the cloud node over MQTT; publishes its
state (retained) and telemetry.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
from pathlib import Path

from edge_node.node import EdgeNode
from edge_node.servicer import EdgeServicer
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
from testbed.rpc.v1 import edge_pb2_grpc
from testbed.runtime import ModelRuntime
from testbed.types import NodeKind

log = logging.getLogger("edge_node")


def main(argv: list[str] | None = None) -> int:
    parser = common_parser("testbed-edge", __doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", default=None, help="model cache folder")
    args = parser.parse_args(argv)
    return run_main(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    cfg = load_node_config(args)
    specs = {s.id: s for s in cfg.edge_specs()}
    node_id = args.id or next(iter(specs), "edge-0")
    if node_id not in specs:
        raise TestbedExit(
            ExitCode.USAGE, f"no edge {node_id!r} in the config; it has {sorted(specs)}"
        )
    spec = specs[node_id]
    setup_logging(node_id, args.verbose)
    cache_dir = Path(args.cache_dir or spec.cache_dir or os.path.join(".testbed", "cache", node_id))
    try:
        meter = open_meter(spec.energy)
    except MeterUnavailable as exc:
        raise TestbedExit(ExitCode.METER_UNAVAILABLE, str(exc)) from None
    runtime = ModelRuntime(spec.runtime, spec.intra_op_threads)
    daemon = NodeDaemon(args, cfg, node_id, NodeKind.EDGE)
    client = daemon.connect()
    node = EdgeNode(cfg, spec, client=client, runtime=runtime, meter=meter, cache_dir=cache_dir)
    servicer = EdgeServicer(node)
    server = GrpcServer(
        args.host or spec.host,
        spec.port if args.port is None else args.port,
        [lambda s: edge_pb2_grpc.add_EdgeServiceServicer_to_server(servicer, s)],
        service_names=["testbed.v1.EdgeService"],
    )
    node.start(server.address)
    server.start()
    log.info(
        "serving on %s: cache %.1f MB in %s, %d slot(s), runtime %s, energy %s, broker %s",
        server.address, spec.cache_capacity_mb, cache_dir, spec.parallel_slots,
        runtime.provider, meter.describe(), daemon.broker.url,
    )  # fmt: skip
    node.preload()  # before announcing: the bench starts with the models deployed
    facts = {"host": platform.node(), "runtime": runtime.provider,
             "energy_method": meter.method.value}  # fmt: skip
    daemon.announce(server.address, spec.position_m, facts, node.telemetry)
    daemon.wait()
    server.stop(1.0)
    node.stop()
    daemon.shutdown()
    meter.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
