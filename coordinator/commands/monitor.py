"""`testbed monitor`: watch a bench live, take a one-shot JSON snapshot, or replay a run.

Live, it subscribes to `{p}/{b}/#` (testbed/topics.py) with the read-only `monitor`
login (testbed/mqtt_auth.py: a bench with logins gives it a password file); a replay
reads the run folder's `telemetry.jsonl` (coordinator/monitor/recorder.py). Either way
every message goes through one BenchView (coordinator/monitor/model.py), so
`--replay RUN --once --json` prints the snapshot the live run ended with. Without
`--once` the dashboard is a Textual app (coordinator/monitor/app.py), imported only then.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.command_help import help_texts
from coordinator.commands.bench_state import bench_file
from coordinator.jsonout import add_json_flag, print_json
from coordinator.monitor.model import BenchView
from coordinator.monitor.recorder import RECORDING_NAME, read_recording
from testbed.config import TestbedConfig, load_config
from testbed.exit_codes import ExitCode, TestbedExit
from testbed.mqtt import BrokerAddress, MqttClient, MqttUnavailable
from testbed.mqtt_auth import MONITOR_ID, node_broker_address
from testbed.topics import Topics

Feed = Callable[[str, bytes | str, float], None]
"""Where messages go: (topic, payload, received unix time)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", **help_texts(
        "watch a bench: live dashboard, one-shot JSON snapshot, or a run's replay",
        "testbed monitor --broker mqtt://127.0.0.1:1883",
        "testbed monitor --once --json",
        "testbed monitor --replay runs/exp/greedy-s0 --once --json",
        details="Keys in the dashboard: p pause, f filter by node, q quit.\n"
        "--once: collect the retained messages and two telemetry intervals, print, exit.",
    ))  # fmt: skip
    p.add_argument("-c", "--config", default=None, help="testbed YAML (broker, bench id)")
    p.add_argument("--broker", default=None, metavar="URL", help="default: broker.url")
    p.add_argument("--bench", default=None, metavar="ID", help="default: telemetry.bench_id")
    p.add_argument("--once", action="store_true", help="print one snapshot and exit")
    p.add_argument("--replay", default=None, metavar="RUN_DIR",
                   help=f"replay RUN_DIR/{RECORDING_NAME} instead of a live broker")  # fmt: skip
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="replay X times as fast as recorded (0: as fast as possible)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(func=run_monitor)


def run_monitor(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    topics = Topics(cfg.broker.topic_prefix, args.bench or cfg.telemetry.bench_id)
    view = BenchView()
    if args.once:
        if args.replay is not None:
            replay(recording_path(args.replay), view.feed, speed=0.0)
        else:
            collect(cfg, args.broker, topics, view, window_s=2 * cfg.telemetry.interval_s)
        snapshot = view.snapshot()
        if args.json:
            print_json(snapshot)
        else:
            print(summary_text(snapshot))
        return 0
    from coordinator.monitor.app import MonitorApp  # imported late: Textual is heavy

    source = _source(cfg, args, topics)
    MonitorApp(view, source).run()
    return 0


def _source(
    cfg: TestbedConfig, args: argparse.Namespace, topics: Topics
) -> Callable[[Feed, threading.Event], None]:
    """Where the dashboard's messages come from: a replay or the live broker."""
    if args.replay is not None:
        path = recording_path(args.replay)

        def from_replay(feed: Feed, stop: threading.Event) -> None:
            replay(path, feed, args.speed, stop)

        return from_replay
    address = _address(cfg, args.broker)

    def from_broker(feed: Feed, stop: threading.Event) -> None:
        _live(address, topics, feed, stop)

    return from_broker


def recording_path(run_dir: str) -> Path:
    path = Path(run_dir) / RECORDING_NAME
    if not path.is_file():
        raise TestbedExit(ExitCode.USAGE, f"--replay {run_dir}: no {RECORDING_NAME} there")
    return path


def replay(path: Path, feed: Feed, speed: float, stop: threading.Event | None = None) -> None:
    """Feed a recording's messages in order, `speed` times as fast as they came (0: at
    once); returns early when `stop` is set."""
    first: float | None = None
    started = time.monotonic()
    for received_unix_s, topic, payload in read_recording(path):
        if stop is not None and stop.is_set():
            return
        if speed > 0:
            first = received_unix_s if first is None else first
            due = started + (received_unix_s - first) / speed
            wait_s = due - time.monotonic()
            if wait_s > 0 and stop is not None and stop.wait(wait_s):
                return
            if wait_s > 0 and stop is None:
                time.sleep(wait_s)
        feed(topic, payload, received_unix_s)


def _address(cfg: TestbedConfig, broker: str | None) -> BrokerAddress:
    url = broker or cfg.broker.url or kept_bench_broker_url(cfg)
    if not url:
        raise TestbedExit(
            ExitCode.BROKER_UNAVAILABLE,
            "no broker: pass --broker mqtt://HOST:PORT, set broker.url, "
            "or start a bench with `testbed up --keep`",
        )
    return node_broker_address(url, cfg, MONITOR_ID)


def kept_bench_broker_url(cfg: TestbedConfig) -> str | None:
    """The broker of the bench `testbed up --keep` left (its `bench.json`,
    coordinator/commands/bench_state.py), whose embedded broker took a port of its own
    that no config names; None when no bench is kept."""
    path = bench_file(cfg.run.out_dir)
    try:
        kept = json.loads(path.read_text())
        url, description = kept.get("broker_url"), kept.get("broker", "")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(url, str) and url:
        return url
    # a bench.json written before `broker_url` was: "embedded mosquitto 2.0 at
    # mqtt://127.0.0.1:PORT (tags)" or "external URL"
    urls = [word for word in str(description).split() if "://" in word]
    return urls[0] if urls else None


def _connect(address: BrokerAddress, topics: Topics, feed: Feed) -> MqttClient:
    try:
        client = MqttClient(address, f"{MONITOR_ID}-{time.time_ns() % 10**9}")
        client.connect(timeout_s=5.0)
    except MqttUnavailable as exc:
        raise TestbedExit(ExitCode.BROKER_UNAVAILABLE, str(exc)) from None
    client.subscribe(topics.everything, lambda t, p: feed(t, p, time.time()))
    return client


def collect(
    cfg: TestbedConfig, broker: str | None, topics: Topics, view: BenchView, window_s: float
) -> None:
    """The retained messages and `window_s` of live ones, into `view`."""
    lock = threading.Lock()

    def feed(topic: str, payload: bytes | str, received_unix_s: float) -> None:
        with lock:
            view.feed(topic, payload, received_unix_s)

    client = _connect(_address(cfg, broker), topics, feed)
    try:
        time.sleep(window_s)  # the window itself is what is asked for, not a synchronisation
    finally:
        client.close()


def _live(address: BrokerAddress, topics: Topics, feed: Feed, stop: threading.Event) -> None:
    client = _connect(address, topics, feed)
    try:
        stop.wait()
    finally:
        client.close()


def summary_text(snapshot: dict[str, Any]) -> str:
    """A few lines for people: each node and each edge's cache."""
    lines = [f"{len(snapshot['nodes'])} node(s), {snapshot['messages']} message(s)"]
    for node_id, n in snapshot["nodes"].items():
        lines.append(f"  {node_id:<12} {n['role']:<6} {n['status']:<8} "
                     f"telemetry age {n['telemetry_age_s']} s")  # fmt: skip
    for edge_id, e in snapshot["edges"].items():
        models = ", ".join(e["cached_models"]) or "-"
        lines.append(f"  edge {edge_id}: {e['used_bytes']}/{e['total_bytes']} B, "
                     f"hit rate {e['hit_rate']}, models {models}")  # fmt: skip
    return "\n".join(lines)
