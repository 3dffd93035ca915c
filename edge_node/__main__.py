"""`testbed-edge`: the edge server daemon.

Serves EdgeService (SubmitTask, GetState, PrefetchModel, EvictModel) and
grpc.health.v1 over gRPC; fetches models from the cloud node over MQTT; publishes its
state (retained) and telemetry.
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path

from edge_node.node import EdgeNode
from edge_node.servicer import EdgeServicer
from testbed.daemon import (
    GrpcServer,
    StopFlag,
    broker_address,
    common_parser,
    load_node_config,
    register_node,
    run_main,
    setup_logging,
    write_ready_file,
)
from testbed.energy import MeterUnavailable, open_meter
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.mqtt import MqttClient, MqttUnavailable
from testbed.registration import NodeInfo
from testbed.rpc.v1 import edge_pb2_grpc
from testbed.runtime import ModelRuntime
from testbed.telemetry import TelemetryPublisher
from testbed.topics import Topics
from testbed.types import NodeKind

log = logging.getLogger("edge_node")


def main(argv: list[str] | None = None) -> int:
    parser = common_parser("testbed-edge", __doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", default=None, help="model cache folder")
    args = parser.parse_args(argv)
    return run_main(lambda: _run(args))


def _run(args) -> int:
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
    topics = Topics(cfg.broker.topic_prefix)
    address = broker_address(args, cfg)
    stop = StopFlag()
    client = MqttClient(
        address, f"{node_id}-{os.getpid()}", will=(topics.status(node_id), b"offline")
    )
    try:
        client.connect()
    except MqttUnavailable as exc:
        raise TestbedExit(ExitCode.BROKER_UNAVAILABLE, str(exc)) from None
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
    client.publish(topics.status(node_id), b"online", retain=True)
    facts = {
        "host": platform.node(),
        "runtime": runtime.provider,
        "energy_method": meter.method.value,
    }
    registration = register_node(
        args, cfg, NodeInfo(node_id, NodeKind.EDGE, server.address, spec.position_m, facts)
    )
    telemetry = TelemetryPublisher(
        client,
        topics.telemetry(node_id),
        node_id,
        "edge",
        cfg.telemetry.interval_s,
        node.telemetry,
    ).start()
    log.info(
        "serving on %s: cache %.1f MB in %s, %d slot(s), runtime %s, energy %s, broker %s",
        server.address,
        spec.cache_capacity_mb,
        cache_dir,
        spec.parallel_slots,
        runtime.provider,
        meter.describe(),
        address.url,
    )
    node.preload()  # before the ready file: the bench starts with the models deployed
    write_ready_file(
        args.ready_file,
        {"node_id": node_id, "kind": "edge", "address": server.address, **facts},
    )
    stop.wait()
    telemetry.stop()
    if registration is not None:
        registration.close()
    server.stop(1.0)
    node.stop()
    client.publish(topics.status(node_id), b"offline", retain=True).wait_for_publish(2)
    client.close()
    meter.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
