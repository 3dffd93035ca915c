"""`testbed exporter`'s aggregator on a live bench (coordinator/exporter.py): subscribed
to the bench's broker as the coordinator, it serves `/metrics` over HTTP with every
edge's cache, and the task records of the slots run."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client import start_http_server

from coordinator.exporter import BenchMetrics, roles_of
from coordinator.policy_choice import PolicySource
from testbed.mqtt import MqttClient
from testbed.mqtt_auth import COORDINATOR_ID, node_broker_address
from testbed.topics import Topics

from ..waiting import wait_until
from .test_live_bench import make_bench

pytestmark = pytest.mark.slow


def test_metrics_of_a_live_run_list_every_edge(tmp_path: Path, tiny_zoo: Path) -> None:
    bench = make_bench(tmp_path, tiny_zoo, telemetry={"interval_s": 0.2, "bench_id": "lab-1"})
    metrics = BenchMetrics(Topics.of(bench.cfg), roles_of(bench.cfg))
    client: MqttClient | None = None
    server = None
    try:
        bench.start(PolicySource("offload"))
        address = node_broker_address(bench.launcher.broker_url, bench.cfg, COORDINATOR_ID)
        client = MqttClient(address, "exporter-test")
        metrics.subscribe(client)
        client.connect()
        server, _thread = start_http_server(0, "127.0.0.1", registry=metrics.registry)
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        for slot in range(3):
            bench.step(slot)

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return reply.read().decode()

        edges = [s.id for s in bench.cfg.edge_specs()]
        wanted = [f'testbed_cache_used_bytes{{node="{e}",role="edge"}}' for e in edges]
        assert wait_until(lambda: all(w in scrape() for w in wanted)), scrape()
        assert wait_until(lambda: "testbed_task_latency_seconds_count{" in scrape()), scrape()
        text = scrape()
        assert 'testbed_node_up{node="edge-0",role="edge"} 1.0' in text
        assert "task_id" not in text
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if client is not None:
            client.close()
        bench.close()
