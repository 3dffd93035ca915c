"""What every node daemon shares: flags, logging with the node id, signals, the gRPC
server with the standard health service, and the ready file the launcher waits for.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from testbed.config import EnergyConfig, TestbedConfig, load_config
from testbed.energy import EnergyMeter, MeterUnavailable, open_meter
from testbed.events import EventKind, EventPublisher
from testbed.exit_codes import ExitCode, TestbedExit, UsageArgumentParser, run_with_exit_codes
from testbed.host_facts import announced_host_facts
from testbed.mqtt import BrokerAddress, MqttClient, MqttRefused, MqttUnavailable
from testbed.mqtt_auth import node_broker_address
from testbed.registration import NodeInfo, NodeRegistration, RegistrationRefused
from testbed.security.credentials import PLAINTEXT, GrpcIdentity
from testbed.signals import SignalFlag
from testbed.telemetry import TelemetryPublisher
from testbed.topics import Topics
from testbed.types import NodeKind

# gRPC messages carry task data in chunks of at most 1 MiB; leave room for headers.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
]


def common_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = UsageArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "-c", "--config", default=None, help="testbed YAML (default ./testbed.yaml)"
    )
    parser.add_argument("--id", default=None, help="node id (selects the node's entry)")
    parser.add_argument("--host", default=None, help="listen address (default from config)")
    parser.add_argument("--port", type=int, default=None, help="gRPC port (0: a free one)")
    parser.add_argument("--broker", default=None, help="mqtt://HOST:PORT (default broker.url)")
    parser.add_argument("--registry", default=None, help="coordinator registry HOST:PORT")
    parser.add_argument("--ready-file", default=None, help="write JSON here once serving")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def setup_logging(node_id: str, verbose: int = 0) -> None:
    """Every log line carries the host and the node id (so merged logs say who wrote what)."""
    level = [logging.INFO, logging.DEBUG][min(verbose, 1)]
    host = socket.gethostname()
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {host}/{node_id} %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("transitions", "amqtt", "paho"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_node_config(args: argparse.Namespace) -> TestbedConfig:
    return load_config(args.config, sets=args.set)


def broker_address(args: argparse.Namespace, cfg: TestbedConfig, node_id: str) -> BrokerAddress:
    """The broker and how `node_id` logs in to it (testbed/mqtt_auth.py)."""
    url = args.broker or cfg.broker.url
    if not url:
        raise TestbedExit(
            ExitCode.BROKER_UNAVAILABLE,
            "no broker: pass --broker mqtt://HOST:PORT or set broker.url "
            "(the coordinator passes its embedded broker's address)",
        )
    return node_broker_address(url, cfg, node_id)


def stop_flag() -> SignalFlag:
    """Set by SIGTERM / SIGINT (testbed/signals.py: safe against a burst of them);
    daemons wait on it."""
    log = logging.getLogger(__name__)
    return SignalFlag(on_signal=lambda signum: log.info("got %s, stopping", signum.name))


class GrpcServer:
    """A gRPC server on host:port (0: free) that also serves grpc.health.v1; with an
    `identity`, mutual TLS and role checks when the bench's gRPC is TLS, and no
    plaintext on a non-loopback address unless allowed (testbed/security/)."""

    def __init__(
        self,
        host: str,
        port: int,
        add_servicers: Sequence[Callable[[grpc.Server], None]],
        *,
        max_workers: int = 32,
        service_names: Sequence[str] = (),
        identity: GrpcIdentity | None = None,
    ) -> None:
        if identity is not None:
            identity.check_listen(host)
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            options=GRPC_OPTIONS,
            interceptors=identity.interceptors() if identity is not None else None,
        )
        for add in add_servicers:
            add(self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        try:
            self.port = (identity or PLAINTEXT).add_port(self.server, f"{host}:{port}")
        except RuntimeError:  # grpcio raises "Failed to bind" where it used to return 0
            self.port = 0
        if self.port == 0:
            raise TestbedExit(ExitCode.PORT_IN_USE, f"cannot listen on {host}:{port}")
        self.host = host
        self._names = ["", *service_names]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self.server.start()
        for name in self._names:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_s: float = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()


def register_node(
    args: argparse.Namespace,
    cfg: TestbedConfig,
    info: NodeInfo,
    stop: threading.Event | None = None,
) -> NodeRegistration | None:
    """Register with the coordinator's registry (when `--registry` is given) and keep
    heartbeats going; the registration re-registers by itself if the coordinator
    forgets the node or comes back after being down.

    A node of the embedded bench (no inventory, started by the launcher: PARENT_ENV set)
    finds the registry up and gives up after `run.start_timeout_s`; any other (a service
    deployed on a host of the inventory, which starts before the coordinator) waits
    for the registry until it answers or `stop` is set (then None)."""
    if not args.registry:
        return None
    waits = cfg.inventory.remote or not os.environ.get(PARENT_ENV)
    registration = NodeRegistration(
        args.registry, info, cfg.registry.heartbeat_interval_s,
        identity=GrpcIdentity.of(cfg, info.node_id),
    )  # fmt: skip
    try:
        registration.start(timeout_s=None if waits else cfg.run.start_timeout_s, cancel=stop)
    except (grpc.RpcError, RegistrationRefused) as exc:
        registration.close(deregister=False)
        if stop is not None and stop.is_set():
            return None  # stopped while waiting for the coordinator
        raise TestbedExit(
            ExitCode.NODE_START_FAILED, f"cannot register with {args.registry}: {exc}"
        ) from None
    return registration


class NodeDaemon:
    """The lifecycle every node daemon shares.

    `connect()`: the MQTT client, with a retained `offline` last will on the node's
    status topic. `announce(server, ...)`: status `online`, registration with the
    coordinator, telemetry, and the ready file — in that order, so a launcher that sees
    the ready file finds the node registered. `wait()`: until SIGTERM/SIGINT.
    `shutdown()`: everything in reverse, status `offline`.

    The status is a retained value the node owns (`MqttClient.publish_retained`), like
    the edge's state and the cloud's catalog: after every reconnect the client says it
    again, so a node whose last will fired, or whose broker restarted, is `online` again.
    """

    def __init__(self, args: argparse.Namespace, cfg: TestbedConfig, node_id: str,
                 kind: NodeKind) -> None:  # fmt: skip
        self.args, self.cfg, self.node_id, self.kind = args, cfg, node_id, kind
        self.grpc_identity = GrpcIdentity.of(cfg, node_id)  # its gRPC server's and clients'
        self.topics = Topics.of(cfg)
        self.broker = broker_address(args, cfg, node_id)
        self.stop = stop_flag()
        self.client = MqttClient(
            self.broker, f"{node_id}-{os.getpid()}", will=(self.topics.status(node_id), b"offline")
        )
        self.events = EventPublisher(self.client, self.topics, node_id)
        self._registration: NodeRegistration | None = None
        self._telemetry: TelemetryPublisher | None = None

    def connect(self, stack: contextlib.ExitStack | None = None) -> MqttClient:
        """Connect to the broker; with `stack`, `shutdown` is pushed on it."""
        try:
            self.client.connect()
        except MqttRefused as exc:
            raise TestbedExit(ExitCode.BROKER_REFUSED, str(exc)) from None
        except MqttUnavailable as exc:
            raise TestbedExit(ExitCode.BROKER_UNAVAILABLE, str(exc)) from None
        if stack is not None:
            stack.callback(self.shutdown)
        return self.client

    def announce(
        self,
        address: str,
        position_m: tuple[float, float] | None,
        facts: dict[str, Any],
        telemetry: Callable[[], dict[str, Any]],
        meter: EnergyMeter | None = None,
    ) -> None:
        """`telemetry`: the node's own figures; `meter`: its energy meter, whose energy
        and power every record carries (testbed/telemetry.py)."""
        self.client.publish_retained(self.topics.status(self.node_id), b"online")
        self.events.emit(EventKind.NODE_UP, address=address)
        self._registration = register_node(
            self.args,
            self.cfg,
            NodeInfo(self.node_id, self.kind, address, position_m,
                     {**announced_host_facts(), **{k: str(v) for k, v in facts.items()}}),
            self.stop.event,
        )  # fmt: skip
        self._telemetry = TelemetryPublisher(
            self.client, self.topics.telemetry(self.node_id), self.node_id, self.kind.value,
            self.cfg.telemetry.interval_s, telemetry, meter,
        ).start()  # fmt: skip
        write_ready_file(
            self.args.ready_file,
            {"node_id": self.node_id, "kind": self.kind.value, "address": address, **facts},
        )

    def wait(self) -> None:
        self.stop.wait()

    def shutdown(self) -> None:
        if self._telemetry is not None:
            self._telemetry.stop()
        if self._registration is not None:
            self._registration.close()
        self.events.emit(EventKind.NODE_DOWN)
        status = self.client.publish_retained(self.topics.status(self.node_id), b"offline")
        # Without a connection (paho raises when it is lost meanwhile) the broker has
        # sent the `offline` last will, or, restarted, holds no status at all.
        if self.client.connected:
            with contextlib.suppress(RuntimeError, ValueError):
                status.wait_for_publish(2)
        self.client.close()


def write_ready_file(path: str | None, info: dict[str, Any]) -> None:
    """Tell the launcher we serve: atomically write `info` (address, pid, ...) as JSON."""
    if not path:
        return
    target = Path(path)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(json.dumps({**info, "pid": os.getpid()}))
    tmp.replace(target)


PARENT_ENV = "TESTBED_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def exit_with_parent() -> None:
    """When started by a launcher that set TESTBED_PARENT_PID, get SIGTERM if it dies
    (Linux PR_SET_PDEATHSIG), so no node outlives a killed coordinator.

    The child sets this itself, after exec: a launcher that runs gRPC threads must not
    run Python code between fork and exec (gRPC's fork handlers would break the child).
    """
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        raise SystemExit(int(ExitCode.NODE_LOST))


def run_main(body: Callable[[], int]) -> int:
    """Run a daemon's main body, mapping known errors to registered exit codes."""
    exit_with_parent()
    return run_with_exit_codes(body)


# ---------------------------------------------------------------------------- start-up


@dataclass(frozen=True)
class DaemonSpec:
    """What differs between the node daemons at start-up."""

    prog: str
    doc: str  # the module docstring: its first paragraph is the --help description
    kind: NodeKind
    default_id: Callable[[TestbedConfig], str]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None


Serve = Callable[[NodeDaemon, contextlib.ExitStack], None]
"""A daemon's own part: check what it needs, `connect(stack)`, build and start its
services, `announce`; each thing to close goes on the stack, which closes them in
reverse order once the daemon stops."""


def daemon_main(spec: DaemonSpec, serve: Serve, argv: Sequence[str] | None = None) -> int:
    """The start-up every node daemon shares: flags, config, node id, logging with the
    node id, the MQTT connection with its last will, then the daemon's own `serve`,
    then wait for SIGTERM/SIGINT and tear down in reverse (status `offline` last)."""
    parser = common_parser(spec.prog, spec.doc.split("\n\n")[0])
    spec.add_arguments(parser)
    args = parser.parse_args(argv)
    log = logging.getLogger(f"{spec.kind.value}_node")

    def body() -> int:
        cfg = load_node_config(args)
        node_id = args.id or spec.default_id(cfg)
        setup_logging(node_id, args.verbose)
        daemon = NodeDaemon(args, cfg, node_id, spec.kind)
        with contextlib.ExitStack() as stack:
            serve(daemon, stack)
            daemon.wait()
            bound_teardown(log)
        log.info("stopped")
        return 0

    return run_main(body)


STOP_TIMEOUT_S = 10.0
"""How long a stopping daemon may take to tear down before it is cut short."""


def bound_teardown(log: logging.Logger, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """From now on the process ends within `timeout_s`: past it, faulthandler writes
    every thread's stack to stderr (the node's log) and exits 1. A thread that waits
    on something gone with the bench (a broker, a cloud, a caller) must not keep a
    node alive after its coordinator died; the stacks say which one did. Armed for the
    rest of the process, so the interpreter's join of worker threads at exit is bounded
    too: call it only in a daemon's own process."""
    log.info("tearing down (cut short after %.0f s)", timeout_s)
    with contextlib.suppress(AttributeError, OSError, ValueError):  # stderr without a file
        faulthandler.dump_traceback_later(timeout_s, exit=True)


def open_node_meter(energy: EnergyConfig) -> EnergyMeter:
    """The node's energy meter, or METER_UNAVAILABLE saying why it cannot read."""
    try:
        return open_meter(energy)
    except MeterUnavailable as exc:
        raise TestbedExit(ExitCode.METER_UNAVAILABLE, str(exc)) from None
