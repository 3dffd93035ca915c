"""Liveness that recovers: a node whose last will fired, or whose broker restarted and
forgot every retained message, says again what it owns (docs/telemetry.md, "After a
reconnect"). Real Mosquitto processes started here, without persistence, so a killed
broker's retained messages are really gone."""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from coordinator.live import LiveBench
from coordinator.policy_choice import PolicySource
from coordinator.run_folder import write_config
from testbed.broker import EmbeddedBroker
from testbed.config import BrokerConfig, BrokerKind, load_config
from testbed.messages import EdgeStateSnapshot
from testbed.mqtt import MAX_QUEUED_MESSAGES, RECONNECT_MAX_DELAY_S, BrokerAddress, MqttClient
from testbed.topics import Topics
from testbed.zoo.catalog import Catalog
from tests.waiting import WAIT_S, wait_until

from .harness import EdgeBench
from .harness import write_config as write_test_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("mosquitto"), reason="needs Mosquitto"),
]

KEEPALIVE_S = 5
"""The smallest keepalive the config allows: Mosquitto fires a silent client's last will
after 1.5 × this."""
WILL_WAIT_S = 3 * KEEPALIVE_S + WAIT_S
RECONNECT_WAIT_S = 3 * RECONNECT_MAX_DELAY_S + WAIT_S
"""Reconnect attempts back off to RECONNECT_MAX_DELAY_S; wait for a few of them."""


class RestartableBroker:
    """Mosquitto (persistence off) on one port: killed and started again on that port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.broker = EmbeddedBroker.start(BrokerConfig(embedded=BrokerKind.MOSQUITTO), workdir)
        self.url = self.broker.url

    def kill(self) -> None:
        self.broker.process.kill()
        self.broker.process.wait()

    def restart(self) -> None:
        cfg = BrokerConfig(embedded=BrokerKind.MOSQUITTO, port=self.broker.port)
        self.broker = EmbeddedBroker.start(cfg, self.workdir)

    def close(self) -> None:
        self.broker.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RestartableBroker]:
    running = RestartableBroker(tmp_path / "broker")
    try:
        yield running
    finally:
        running.close()


class RetainedWatcher:
    """The newest payload of every retained topic, as a subscriber that joins now sees
    them: the retained copies first, then whatever is published."""

    def __init__(self, url: str, topics: Topics) -> None:
        self._latest: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._client = MqttClient(BrokerAddress.from_url(url), f"watcher-{time.time_ns()}")
        self._client.connect()
        for pattern in (topics.catalog, topics.all_edge_states, topics.status("+")):
            self._client.subscribe(pattern, self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._latest[topic] = payload

    def latest(self, topic: str) -> bytes | None:
        with self._lock:
            return self._latest.get(topic)

    def __enter__(self) -> RetainedWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()


def test_an_edge_whose_last_will_fired_says_online_again(
    broker: RestartableBroker, tiny_zoo: Path, tmp_path: Path
) -> None:
    with EdgeBench(tmp_path, broker.url, tiny_zoo, broker={"keepalive_s": KEEPALIVE_S}) as bench:
        topics = Topics.of(bench.cfg)
        status = topics.status("edge-0")
        with RetainedWatcher(broker.url, topics) as board:
            bench.start(cloud=False)
            assert wait_until(lambda: board.latest(status) == b"online")
            edge = bench.launcher.nodes["edge-0"].proc
            assert edge is not None
            edge.send_signal(signal.SIGSTOP)  # frozen: no keepalive, the broker sends its will
            try:
                assert wait_until(lambda: board.latest(status) == b"offline", WILL_WAIT_S)
            finally:
                edge.send_signal(signal.SIGCONT)
            assert wait_until(lambda: board.latest(status) == b"online", RECONNECT_WAIT_S)
        with RetainedWatcher(broker.url, topics) as late:  # the retained status says so too
            assert wait_until(lambda: late.latest(status) == b"online")
            assert wait_until(lambda: late.latest(topics.edge_state("edge-0")) is not None)


def live_bench(tmp_path: Path, zoo: Path, broker_url: str) -> LiveBench:
    """Two boards, two edges holding a model each, on an external broker."""
    path = write_test_config(
        tmp_path / "testbed.yaml", broker_url, zoo,
        edges={
            "count": 2, "cache_capacity_mb": 8.0, "energy": {"meter": "estimated"},
            "nodes": [{"preload": ["diffusion-s"]}, {"preload": ["cgan-s"]}],
        },
        agents={"count": 2, "energy": {"meter": "estimated"}},
        tasks={"num_types": 3, "flops_per_cycle": 1.0},
        registry={"heartbeat_interval_s": 0.3, "missing_after_beats": 3},
    )  # fmt: skip
    cfg = load_config(path, env={})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return LiveBench(cfg, run_dir, write_config(run_dir, cfg), zoo)


def test_a_restarted_broker_gets_every_retained_topic_back(
    broker: RestartableBroker, tiny_zoo: Path, tmp_path: Path
) -> None:
    with live_bench(tmp_path, tiny_zoo, broker.url) as bench:
        bench.start(PolicySource("greedy"))
        topics = Topics.of(bench.cfg)
        nodes = sorted(bench.launcher.nodes)
        edges = [s.id for s in bench.cfg.edge_specs()]

        def all_retained(watcher: RetainedWatcher) -> bool:
            catalog = watcher.latest(topics.catalog)
            states = [watcher.latest(topics.edge_state(e)) for e in edges]
            return (
                catalog is not None
                and bool(Catalog.from_json(catalog).entries)
                and all(watcher.latest(topics.status(n)) == b"online" for n in nodes)
                and all(s is not None and EdgeStateSnapshot.from_json(s) for s in states)
            )

        with RetainedWatcher(broker.url, topics) as before:
            assert wait_until(lambda: all_retained(before))
        records = [r for slot in range(2) for r in bench.step(slot).records]
        broker.kill()  # persistence off: every retained message is gone with it
        records += [r for slot in range(2, 4) for r in bench.step(slot).records]
        broker.restart()
        with RetainedWatcher(broker.url, topics) as watching:  # until every node is back
            assert wait_until(lambda: all_retained(watching), RECONNECT_WAIT_S)
        with RetainedWatcher(broker.url, topics) as fresh:  # now only the retained copies
            assert wait_until(lambda: all_retained(fresh))
        records += [r for slot in range(4, 6) for r in bench.step(slot).records]
        expected = {f"{agent}/s{slot:06d}" for agent in bench.agents for slot in range(6)}
    assert sorted(r.task_id for r in records) == sorted(expected), "one record per task"


def test_a_client_without_broker_never_blocks_and_says_what_it_owns_again(
    broker: RestartableBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="testbed.mqtt")
    topics = Topics("liveness")
    client = MqttClient(BrokerAddress.from_url(broker.url), "owner").connect()
    with client, RetainedWatcher(broker.url, topics) as watcher:
        client.publish_retained(topics.status("owner"), b"first")
        assert wait_until(lambda: watcher.latest(topics.status("owner")) == b"first")
        broker.kill()
        assert wait_until(lambda: not client.connected)
        client.publish_retained(topics.status("owner"), b"second")  # while away: the newest wins
        infos = [client.publish(topics.telemetry("owner"), b"x", qos=1) for _ in range(3000)]
        dropped = [i for i in infos if i.rc == paho.MQTT_ERR_QUEUE_SIZE]
        assert len(infos) - len(dropped) <= MAX_QUEUED_MESSAGES < len(infos)
        broker.restart()
        assert wait_until(lambda: client.connected, RECONNECT_WAIT_S)
        assert wait_until(lambda: watcher.latest(topics.status("owner")) == b"second", WAIT_S)
    with RetainedWatcher(broker.url, topics) as fresh:
        assert wait_until(lambda: fresh.latest(topics.status("owner")) == b"second")
    said = [r.getMessage() for r in caplog.records if r.name == "testbed.mqtt"]
    assert any("lost the broker" in line for line in said), said
    assert any("dropped" in line for line in said), said
    assert any("reconnected" in line for line in said), said
