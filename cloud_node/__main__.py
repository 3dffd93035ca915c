"""`testbed-cloud`: the model repository daemon.

Publishes the zoo's catalog (retained) and answers edges' fetch requests over MQTT;
serves grpc.health.v1 so ordinary probes work.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
from pathlib import Path

from cloud_node.admission import FeedLimits
from cloud_node.feed_server import FeedServer, ModelRepository
from testbed.daemon import DaemonSpec, GrpcServer, NodeDaemon, daemon_main
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.payloads import PayloadSchema, stamped_json
from testbed.types import NodeKind
from testbed.zoo.catalog import CatalogError, CatalogNotFound

log = logging.getLogger("cloud_node")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zoo", default=None, help="zoo folder (default <zoo.dir>/<zoo.scale>)")


SPEC = DaemonSpec("testbed-cloud", __doc__ or "", NodeKind.CLOUD, lambda _cfg: "cloud", _arguments)


def _serve(daemon: NodeDaemon, stack: contextlib.ExitStack) -> None:
    cfg, args = daemon.cfg, daemon.args
    zoo_dir = Path(args.zoo) if args.zoo else cfg.zoo_path()
    try:
        repo = ModelRepository(zoo_dir)
    except (CatalogNotFound, CatalogError) as exc:
        raise TestbedExit(ExitCode.ZOO_MISSING, str(exc)) from None
    client = daemon.connect(stack)
    catalog = stamped_json(PayloadSchema.CATALOG, repo.catalog.to_json())
    client.publish_retained(daemon.topics.catalog, catalog).wait_for_publish(10)
    server = FeedServer(
        client,
        daemon.topics,
        repo,
        chunk_bytes=cfg.cloud.chunk_kib * 1024,
        max_parallel=cfg.cloud.max_parallel_transfers,
        limits=FeedLimits.from_config(cfg),
    )
    server.start()
    stack.callback(server.stop)
    grpc_server = GrpcServer(
        args.host or cfg.cloud.host, args.port or 0, [], identity=daemon.grpc_identity
    )
    grpc_server.start()
    stack.callback(grpc_server.stop, 0.5)
    log.info(
        "serving %d models from %s on %s (broker %s, pacing %s)",
        len(repo.catalog.entries), zoo_dir, daemon.topics.fetch_requests, daemon.broker.url,
        "on" if cfg.emulation.links_paced(cfg.inventory.remote) else "off",
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
            "refused": server.stats.refused,
        },
    )


def main(argv: list[str] | None = None) -> int:
    return daemon_main(SPEC, _serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
