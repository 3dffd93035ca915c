"""Benchmark: the exporter and the monitor under 500 node streams at 1 Hz.

A Mosquitto this benchmark starts (benchmarks/common.py `broker`) carries `telemetry/v1`
records of 500 simulated nodes, one a second each, published by one paho client
(testbed/mqtt.py `MqttClient`). Each record is a real one (testbed/telemetry.py
`TelemetryPublisher.record`, an edge's figures) with its node id, its publish time in
`ts_unix_s` and a sequence number in `rss_bytes`, which the exporter serves as
`testbed_memory_bytes`.

Three subscribers, each on its own paho client, in the same run:
- the exporter (coordinator/exporter.py `BenchMetrics`, subscribed as `testbed
  exporter` subscribes) behind prometheus-client's `/metrics` server;
- a `BenchView` (coordinator/monitor/model.py) fed every message;
- the reference: a bare subscriber that only parses the JSON (its publish→parsed delay
  is the reference of the delay).

CPU per message: the handler's thread CPU time (`time.thread_time`) around each one.
End-to-end delay: a scraper reads `/metrics` every `SCRAPE_PERIOD_S`; a node's
sequence number first seen there is timed from its publish. Goals: exporter CPU per
message against the bare parse (context), delay < 1 s at p95 (the headline).
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Case,
    Goal,
    GoalKind,
    Result,
    broker,
    median,
    percentile,
    report,
    scratch,
    standalone,
)

NAME = "monitor_load"
GOAL = Goal(GoalKind.BELOW, 1000.0, "< 1 s at p95")
STREAMS = 500
SCRAPE_PERIOD_S = 0.05
_MEMORY_LINE = re.compile(r'^testbed_memory_bytes\{node="([^"]+)",role="[^"]*"\} (\S+)$', re.M)


def record_template() -> dict[str, Any]:
    """One real edge telemetry record (the publisher's own builder)."""
    from testbed.telemetry import TaskWindow, TelemetryPublisher

    window = TaskWindow()
    window.note(12.5)
    sample = {
        "queue_length": 0, "tasks": window.figures(),
        "cache": {"model_ids": ["ae-s", "cgan-s"], "used_bytes": 1 << 20,
                  "total_bytes": 1 << 30, "hits": 10, "misses": 2, "evictions": 0},
    }  # fmt: skip
    publisher = TelemetryPublisher(None, "", "edge-0", "edge", 1.0, lambda: sample)  # type: ignore[arg-type]
    return publisher.record()


class Timed:
    """A handler wrapped to sum its thread CPU time and count its messages."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.cpu_s = 0.0
        self.messages = 0

    def __call__(self, topic: str, payload: bytes) -> None:
        t0 = time.thread_time()
        self.handler(topic, payload)
        self.cpu_s += time.thread_time() - t0
        self.messages += 1

    @property
    def us_per_message(self) -> float:
        return self.cpu_s * 1e6 / max(1, self.messages)


class Scraper(threading.Thread):
    """Reads `/metrics` every SCRAPE_PERIOD_S; times each new sequence number seen."""

    def __init__(self, url: str, published: dict[tuple[str, int], float]) -> None:
        super().__init__(name="scraper", daemon=True)
        self.url, self.published = url, published
        self.delays_ms: list[float] = []
        self.seen: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(SCRAPE_PERIOD_S):
            with urllib.request.urlopen(self.url, timeout=5) as response:
                text = response.read().decode()
            now = time.time()
            for node, value in _MEMORY_LINE.findall(text):
                seq = int(float(value))
                if seq > self.seen.get(node, -1):
                    self.seen[node] = seq
                    sent = self.published.get((node, seq))
                    if sent is not None:
                        self.delays_ms.append((now - sent) * 1e3)


def _publish(
    client: Any,
    topics: Any,
    template: dict[str, Any],
    seconds: int,
    published: dict[tuple[str, int], float],
) -> None:
    """Every node once a second, spread evenly over the second, for `seconds` s."""
    import json

    start = time.monotonic()
    for seq in range(seconds):
        for index in range(STREAMS):
            due = start + seq + index / STREAMS
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            node = f"edge-{index}"
            now = time.time()
            body = {**template, "node_id": node, "ts_unix_s": now, "rss_bytes": seq}
            published[(node, seq)] = now
            client.publish(topics.telemetry(node), json.dumps(body).encode(), qos=0)


def _measure(tmp: Path, seconds: int) -> dict[str, Any]:
    import json

    from prometheus_client import start_http_server

    from coordinator.exporter import BenchMetrics
    from coordinator.monitor.model import BenchView
    from testbed.mqtt import BrokerAddress, MqttClient
    from testbed.topics import Topics

    topics = Topics()
    metrics, view = BenchMetrics(topics), BenchView()
    timers = {
        "exporter": Timed(metrics.handle),
        "monitor": Timed(lambda t, p: view.feed(t, p, time.time())),
    }
    published: dict[tuple[str, int], float] = {}
    bare_delays_ms: list[float] = []
    timers["bare"] = Timed(
        lambda _t, p: bare_delays_ms.append((time.time() - json.loads(p)["ts_unix_s"]) * 1e3)
    )
    with broker("mosquitto", tmp) as running:
        address = BrokerAddress.from_url(running.url)
        clients = {name: MqttClient(address, f"bench-{name}") for name in [*timers, "pub"]}
        try:
            for topic_filter in metrics.topic_filters():
                clients["exporter"].subscribe(topic_filter, timers["exporter"], qos=0)
            clients["monitor"].subscribe(topics.everything, timers["monitor"], qos=0)
            clients["bare"].subscribe(topics.everything, timers["bare"], qos=0)
            for client in clients.values():
                client.connect()
            server, _thread = start_http_server(0, "127.0.0.1", registry=metrics.registry)
            scraper = Scraper(f"http://127.0.0.1:{server.server_port}/metrics", published)
            scraper.start()
            try:
                _publish(clients["pub"], topics, record_template(), seconds, published)
                time.sleep(1.0)  # let the last second's messages arrive before counting
            finally:
                scraper.stop.set()
                scraper.join(timeout=10)
                server.shutdown()
        finally:
            for client in clients.values():
                client.close()
    return {"timers": timers, "delays_ms": scraper.delays_ms, "sent": len(published),
            "bare_delays_ms": bare_delays_ms,
            "bad": metrics.bad_payloads}  # fmt: skip


def run(quick: bool = False) -> Result:
    seconds = 4 if quick else 30
    with scratch(NAME) as tmp:
        got = _measure(tmp, seconds)
    timers, delays = got["timers"], got["delays_ms"]
    bare_us = timers["bare"].us_per_message
    details = (
        {f"{name}_cpu_us_per_message": round(t.us_per_message, 2) for name, t in timers.items()}
        | {f"{name}_messages": float(t.messages) for name, t in timers.items()}
        | {"delay_p50_ms": round(median(delays), 2), "delay_samples": float(len(delays))}
    )
    p95 = percentile(delays, 95)
    bare_p95 = percentile(got["bare_delays_ms"], 95)
    label = f"{STREAMS} streams at 1 Hz, Mosquitto, publish→/metrics p95 ms"
    case = Case(label, p95, bare_p95, len(delays), details=details)
    notes = [
        f"CPU per message (µs): exporter {timers['exporter'].us_per_message:.1f}, "
        f"BenchView {timers['monitor'].us_per_message:.1f}, bare JSON parse {bare_us:.1f} "
        f"(ratios {timers['exporter'].us_per_message / bare_us:.2f}, "
        f"{timers['monitor'].us_per_message / bare_us:.2f})",
        f"messages sent {got['sent']}, received: exporter {timers['exporter'].messages}, "
        f"monitor {timers['monitor'].messages}, bare {timers['bare'].messages}; "
        f"bad payloads {got['bad']}",
        f"delay p50 {median(delays):.1f} ms over {len(delays)} sequence numbers first seen "
        f"by a scrape every {SCRAPE_PERIOD_S * 1e3:g} ms; the reference column: publish→parsed "
        f"p95 of the bare subscriber",
    ]
    return report(Result(NAME, "ms", GOAL, [case], notes))


if __name__ == "__main__":
    raise SystemExit(standalone(run))
