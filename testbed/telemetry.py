"""Telemetry: records published on MQTT at an interval (data, not logs).

Each node publishes `{p}/node/{id}/telemetry` as JSON: the node's own figures (from a
callable it supplies) plus process figures every node has (CPU %, resident memory).
The topic tree is in testbed/topics.py and docs/telemetry.md. While the broker is
away no record is made: telemetry may be lost, and never waits for the broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from testbed.mqtt import MqttClient

log = logging.getLogger(__name__)


class TelemetryPublisher:
    """Publishes `sample()` merged with process figures every `interval_s` seconds."""

    def __init__(
        self,
        client: MqttClient,
        topic: str,
        node_id: str,
        kind: str,
        interval_s: float,
        sample: Callable[[], dict[str, Any]],
    ) -> None:
        self._client = client
        self._topic = topic
        self._node_id = node_id
        self._kind = kind
        self._interval_s = interval_s
        self._sample = sample
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first call returns 0
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)

    def start(self) -> TelemetryPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def record(self) -> dict[str, Any]:
        mem = self._proc.memory_info()
        return {
            "node_id": self._node_id,
            "kind": self._kind,
            "ts_unix_s": round(time.time(), 3),
            "cpu_percent": self._proc.cpu_percent(None),
            "rss_mb": round(mem.rss / 1e6, 1),
            **self._sample(),
        }

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            if not self._client.connected:
                continue  # no broker: the record is lost (QoS 0 is never queued), skip it
            try:
                self._client.publish_json(self._topic, self.record(), qos=0)
            except Exception:
                log.exception("telemetry sample failed")
