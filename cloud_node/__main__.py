"""`testbed-cloud`: the model repository daemon.

Publishes the zoo's catalog (retained) and answers edges' fetch requests over MQTT;
serves grpc.health.v1 so ordinary probes work.
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path

from cloud_node.feed_server import FeedServer, ModelRepository
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
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.mqtt import MqttClient, MqttUnavailable
from testbed.registration import NodeInfo
from testbed.telemetry import TelemetryPublisher
from testbed.topics import Topics
from testbed.types import NodeKind
from testbed.zoo.catalog import CatalogError, CatalogNotFound

log = logging.getLogger("cloud_node")


def main(argv: list[str] | None = None) -> int:
    parser = common_parser("testbed-cloud", __doc__.split("\n\n")[0])
    parser.add_argument("--zoo", default=None, help="zoo folder (default <zoo.dir>/<zoo.scale>)")
    args = parser.parse_args(argv)
    return run_main(lambda: _run(args))


def _run(args) -> int:
    cfg = load_node_config(args)
    node_id = args.id or "cloud"
    setup_logging(node_id, args.verbose)
    zoo_dir = Path(args.zoo or os.path.join(cfg.zoo.dir, cfg.zoo.scale.value))
    try:
        repo = ModelRepository(zoo_dir)
    except (CatalogNotFound, CatalogError) as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, str(exc)) from None
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
    client.publish(topics.status(node_id), b"online", retain=True)
    client.publish(topics.catalog, repo.catalog.to_json(), retain=True).wait_for_publish(10)
    server = FeedServer(
        client,
        topics,
        repo,
        chunk_bytes=cfg.cloud.chunk_kib * 1024,
        max_parallel=cfg.cloud.max_parallel_transfers,
        pace=cfg.emulation.links,
    )
    server.start()
    grpc_server = GrpcServer(args.host or cfg.cloud.host, args.port or 0, [])
    grpc_server.start()
    telemetry = TelemetryPublisher(
        client,
        topics.telemetry(node_id),
        node_id,
        "cloud",
        cfg.telemetry.interval_s,
        lambda: {
            "transfers": server.stats.transfers,
            "active_transfers": server.stats.active,
            "bytes_sent": server.stats.bytes_sent,
            "errors": server.stats.errors,
        },
    ).start()
    log.info(
        "serving %d models from %s on %s (broker %s, pacing %s)",
        len(repo.catalog.entries),
        zoo_dir,
        topics.fetch_requests,
        address.url,
        "on" if cfg.emulation.links else "off",
    )
    registration = register_node(
        args,
        cfg,
        NodeInfo(
            node_id, NodeKind.CLOUD, grpc_server.address, cfg.cloud.position_m,
            {"host": platform.node()},
        ),
    )  # fmt: skip
    write_ready_file(
        args.ready_file,
        {
            "node_id": node_id,
            "kind": "cloud",
            "address": grpc_server.address,
            "host": platform.node(),
            "models": len(repo.catalog.entries),
        },
    )
    stop.wait()
    telemetry.stop()
    if registration is not None:
        registration.close()
    server.stop()
    client.publish(topics.status(node_id), b"offline", retain=True).wait_for_publish(2)
    client.close()
    grpc_server.stop(0.5)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
