"""`testbed-cloud`: the model repository daemon.

Publishes the zoo's catalog (retained) and answers edges' fetch requests over MQTT;
serves grpc.health.v1 so ordinary probes work.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
from pathlib import Path

from cloud_node.feed_server import FeedServer, ModelRepository
from testbed.daemon import (
    GrpcServer,
    NodeDaemon,
    common_parser,
    load_node_config,
    run_main,
    setup_logging,
)
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.types import NodeKind
from testbed.zoo.catalog import CatalogError, CatalogNotFound

log = logging.getLogger("cloud_node")


def main(argv: list[str] | None = None) -> int:
    parser = common_parser("testbed-cloud", __doc__.split("\n\n")[0])
    parser.add_argument("--zoo", default=None, help="zoo folder (default <zoo.dir>/<zoo.scale>)")
    args = parser.parse_args(argv)
    return run_main(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    cfg = load_node_config(args)
    node_id = args.id or "cloud"
    setup_logging(node_id, args.verbose)
    zoo_dir = Path(args.zoo or os.path.join(cfg.zoo.dir, cfg.zoo.scale.value))
    try:
        repo = ModelRepository(zoo_dir)
    except (CatalogNotFound, CatalogError) as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, str(exc)) from None
    daemon = NodeDaemon(args, cfg, node_id, NodeKind.CLOUD)
    client = daemon.connect()
    client.publish(daemon.topics.catalog, repo.catalog.to_json(), retain=True).wait_for_publish(10)
    server = FeedServer(
        client,
        daemon.topics,
        repo,
        chunk_bytes=cfg.cloud.chunk_kib * 1024,
        max_parallel=cfg.cloud.max_parallel_transfers,
        pace=cfg.emulation.links,
    )
    server.start()
    grpc_server = GrpcServer(args.host or cfg.cloud.host, args.port or 0, [])
    grpc_server.start()
    log.info(
        "serving %d models from %s on %s (broker %s, pacing %s)",
        len(repo.catalog.entries), zoo_dir, daemon.topics.fetch_requests, daemon.broker.url,
        "on" if cfg.emulation.links else "off",
    )  # fmt: skip
    daemon.announce(
        grpc_server.address,
        cfg.cloud.position_m,
        {"host": platform.node(), "models": len(repo.catalog.entries)},
        lambda: {
            "transfers": server.stats.transfers,
            "active_transfers": server.stats.active,
            "bytes_sent": server.stats.bytes_sent,
            "errors": server.stats.errors,
        },
    )
    daemon.wait()
    server.stop()
    daemon.shutdown()
    grpc_server.stop(0.5)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
