"""`testbed exporter`: serve the bench's metrics to Prometheus on `/metrics`, from what
its nodes publish on MQTT (coordinator/exporter.py, docs/telemetry.md)."""

from __future__ import annotations

import argparse
import logging
import signal

from coordinator.command_help import help_texts
from coordinator.exporter import MetricsServer
from testbed.config import load_config
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.mqtt import MqttUnavailable
from testbed.signals import SignalFlag
from testbed.topics import Topics

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "0.0.0.0:9464"
"""Where `/metrics` is served unless `--listen` says otherwise."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exporter", **help_texts(
        "serve the bench's metrics to Prometheus on /metrics",
        "testbed exporter --broker mqtt://127.0.0.1:1883",
        "testbed exporter -c bench.yaml --bench lab-1 --listen 127.0.0.1:9464",
        details="Subscribes to the bench's telemetry, states, statuses, events and task\n"
        "records on MQTT (as the coordinator) and serves them as Prometheus metrics:\n"
        "boards open no port, this is the one thing Prometheus scrapes. Runs until\n"
        "Ctrl-C or SIGTERM.",
    ))  # fmt: skip
    p.add_argument("-c", "--config", default=None, help="testbed YAML (broker, bench id, nodes)")
    p.add_argument("--broker", metavar="URL", default=None, help="broker URL (default: broker.url)")
    p.add_argument("--bench", metavar="ID", default=None, help="bench id (telemetry.bench_id)")
    p.add_argument(
        "--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN,
        help=f"where to serve /metrics (default {DEFAULT_LISTEN})",
    )  # fmt: skip
    p.set_defaults(func=run_exporter)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise TestbedExit(ExitCode.USAGE, f"--listen: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def run_exporter(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    host, port = parse_listen(args.listen)
    url = args.broker or cfg.broker.url
    if not url:
        raise TestbedExit(ExitCode.USAGE, "no broker: give --broker URL or set broker.url")
    topics = Topics(cfg.broker.topic_prefix, args.bench or cfg.telemetry.bench_id)
    try:
        running = MetricsServer(cfg, url, topics, host, port)
    except MqttUnavailable as exc:
        raise TestbedExit(ExitCode.BROKER_UNAVAILABLE, str(exc)) from None
    except OSError as exc:
        raise TestbedExit(ExitCode.PORT_IN_USE, f"--listen {host}:{port}: {exc}") from None
    print(f"serving {topics.root} on {running.url}", flush=True)
    try:
        with SignalFlag([signal.SIGTERM]) as stop:  # Ctrl-C: KeyboardInterrupt
            stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
    return 0
