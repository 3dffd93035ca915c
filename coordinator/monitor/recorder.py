"""`telemetry.jsonl`: every telemetry, event, edge-state and status message a run saw.

`testbed up` starts a `TelemetryRecorder` when its bench is up (coordinator/bench_run.py)
and stops it at the end. One line per message: `{"received_unix_s", "topic",
"payload"}`, the payload as parsed JSON, or as text where it is not JSON (a node's
status). `testbed monitor --replay RUN_DIR` reads it back (`read_recording`) through
the same BenchView (coordinator/monitor/model.py) the live monitor uses.

It never holds up task work: paho's network thread only puts the message into a
bounded queue (dropping it, counted, when full) and the file is written by a thread
of its own.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testbed.config import TestbedConfig
from testbed.mqtt import MqttClient
from testbed.mqtt_auth import COORDINATOR_ID, node_broker_address
from testbed.topics import Topics

log = logging.getLogger(__name__)

RECORDING_NAME = "telemetry.jsonl"
QUEUE_MESSAGES = 10_000
"""Messages waiting for the writer before new ones are dropped."""

_RECORDED_LEAVES = {("node", "telemetry"), ("node", "status"), ("edge", "state")}


def is_recorded(topics: Topics, topic: str) -> bool:
    """Telemetry, status, edge state and events: the topics a monitor draws from."""
    if not topic.startswith(topics.root + "/"):
        return False
    parts = topic[len(topics.root) + 1 :].split("/")
    if len(parts) == 2 and parts[0] == "events":
        return True
    return len(parts) == 3 and (parts[0], parts[2]) in _RECORDED_LEAVES


def recording_line(received_unix_s: float, topic: str, payload: bytes) -> str:
    """One line of `telemetry.jsonl` (no newline)."""
    text = payload.decode("utf-8", "replace")
    body: Any
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    line = {"received_unix_s": round(received_unix_s, 3), "topic": topic, "payload": body}
    return json.dumps(line, separators=(",", ":"))


def read_recording(path: Path) -> Iterator[tuple[float, str, str]]:
    """(received time, topic, payload as text) for each line of a recording; a torn
    last line (the run was killed mid-write) is skipped."""
    with path.open(encoding="utf-8") as f:
        for raw in f:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            payload = line.get("payload")
            text = payload if isinstance(payload, str) else json.dumps(payload)
            yield float(line.get("received_unix_s", 0.0)), str(line.get("topic", "")), text


class TelemetryRecorder:
    """Subscribes to the bench's topic tree on `client` and appends to `path`."""

    def __init__(
        self, client: MqttClient, topics: Topics, path: Path, owns_client: bool = False
    ) -> None:
        self._client, self._topics, self.path = client, topics, path
        self._owns_client = owns_client
        self._queue: queue.Queue[tuple[float, str, bytes] | None] = queue.Queue(QUEUE_MESSAGES)
        self._thread = threading.Thread(target=self._write, name="telemetry-recorder", daemon=True)
        self.dropped = 0
        self.written = 0

    def start(self) -> TelemetryRecorder:
        self._thread.start()
        self._client.subscribe(self._topics.everything, self._on_message)
        return self

    def _on_message(self, topic: str, payload: bytes) -> None:
        if not is_recorded(self._topics, topic):
            return
        try:
            self._queue.put_nowait((time.time(), topic, payload))
        except queue.Full:
            self.dropped += 1

    def _write(self) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            while (item := self._queue.get()) is not None:
                try:
                    f.write(recording_line(*item) + "\n")
                    self.written += 1
                except (OSError, ValueError):  # a full disk costs the recording, not the run
                    log.exception("writing %s failed", self.path)
                if self._queue.empty():
                    f.flush()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening, write what is queued, close the file."""
        try:
            self._client.unsubscribe(self._topics.everything)
        except Exception:  # the broker may already be gone
            log.debug("unsubscribing the recorder failed", exc_info=True)
        if self._owns_client:
            self._client.close()
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            log.warning("telemetry recorder stuck; %s may be incomplete", self.path)
            return
        self._thread.join(timeout_s)
        if self.dropped:
            log.warning("telemetry recorder dropped %d message(s)", self.dropped)


def start_recording(broker_url: str, cfg: TestbedConfig, run_dir: Path) -> TelemetryRecorder | None:
    """Connect as the coordinator and record into `run_dir`/telemetry.jsonl; None (and
    a warning) when the broker cannot be reached: a run goes on without its recording."""
    try:
        address = node_broker_address(broker_url, cfg, COORDINATOR_ID)
        client = MqttClient(address, f"{COORDINATOR_ID}-recorder").connect(timeout_s=5.0)
    except Exception as exc:
        log.warning("not recording telemetry: %s", exc)
        return None
    path = run_dir / RECORDING_NAME
    return TelemetryRecorder(client, Topics.of(cfg), path, owns_client=True).start()
