"""`testbed exporter`'s aggregator on a live bench (coordinator/exporter.py): subscribed
to the bench's broker as the coordinator, it serves `/metrics` over HTTP with every
edge's cache, and the task records of the slots run."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from coordinator.exporter import MetricsServer
from coordinator.policy_choice import PolicySource
from testbed.topics import Topics

from ..waiting import wait_until
from .test_live_bench import make_bench

pytestmark = pytest.mark.slow


def test_metrics_of_a_live_run_list_every_edge(tmp_path: Path, tiny_zoo: Path) -> None:
    bench = make_bench(tmp_path, tiny_zoo, telemetry={"interval_s": 0.2, "bench_id": "lab-1"})
    try:
        bench.start(PolicySource("offload"))
        topics = Topics.of(bench.cfg)
        with MetricsServer(bench.cfg, bench.launcher.broker_url, topics, "127.0.0.1", 0) as ex:
            for slot in range(3):
                bench.step(slot)

            def scrape() -> str:
                with urllib.request.urlopen(ex.url, timeout=5) as reply:
                    return reply.read().decode()

            edges = [s.id for s in bench.cfg.edge_specs()]
            wanted = [f'testbed_cache_used_bytes{{node="{e}",role="edge"}}' for e in edges]
            assert wait_until(lambda: all(w in scrape() for w in wanted)), scrape()
            assert wait_until(lambda: "testbed_task_latency_seconds_count{" in scrape()), scrape()
            text = scrape()
            assert 'testbed_node_up{node="edge-0",role="edge"} 1.0' in text
            assert "task_id" not in text
    finally:
        bench.close()
