"""Telemetry survives a broker restart: a live bench on a Mosquitto (persistence off)
that is killed mid-run and started again on its port; a plain subscriber to the bench's
topic tree, subscribing again, hears telemetry from every node again, and the run still
ends with exactly one record per task (docs/telemetry.md, "After a reconnect")."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from coordinator.policy_choice import PolicySource
from testbed.topics import Topics
from tests.waiting import wait_until

from .test_liveness import (  # noqa: F401 (broker: a fixture, used by name)
    RECONNECT_WAIT_S,
    RestartableBroker,
    broker,
    live_bench,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("mosquitto"), reason="needs Mosquitto"),
]


class TelemetryListener:
    """A plain paho client on `{root}/#`: the node ids whose telemetry/v1 records it heard."""

    def __init__(self, url: str, topics: Topics) -> None:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        self._topics = topics
        self._heard: set[str] = set()
        self._lock = threading.Lock()
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"telemetry-listener-{time.time_ns()}"
        )
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, *_a: c.subscribe(topics.everything, qos=1)
        self._client.connect(host, int(port))
        self._client.loop_start()

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        node_id = Topics.node_of(msg.topic)
        if msg.topic != self._topics.telemetry(node_id):
            return
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("schema") == "telemetry/v1":
            with self._lock:
                self._heard.add(body.get("node_id", node_id))

    def heard(self) -> set[str]:
        with self._lock:
            return set(self._heard)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def test_telemetry_comes_back_after_a_broker_restart(
    broker: RestartableBroker,  # noqa: F811 (the fixture imported from test_liveness)
    tiny_zoo: Path,
    tmp_path: Path,
) -> None:
    with live_bench(tmp_path, tiny_zoo, broker.url) as bench:
        bench.start(PolicySource("greedy"))
        topics = Topics.of(bench.cfg)
        nodes = set(bench.launcher.nodes)
        before = TelemetryListener(broker.url, topics)
        try:
            assert wait_until(lambda: before.heard() >= nodes), before.heard()
            records = [r for slot in range(2) for r in bench.step(slot).records]
        finally:
            before.close()
        broker.kill()  # mid-run: the slots below run without a broker
        records += [r for slot in range(2, 4) for r in bench.step(slot).records]
        broker.restart()
        after = TelemetryListener(broker.url, topics)  # subscribes again on the new broker
        try:
            assert wait_until(lambda: after.heard() >= nodes, RECONNECT_WAIT_S), after.heard()
            records += [r for slot in range(4, 6) for r in bench.step(slot).records]
        finally:
            after.close()
        expected = {f"{agent}/s{slot:06d}" for agent in bench.agents for slot in range(6)}
    assert sorted(r.task_id for r in records) == sorted(expected), "one record per task"
