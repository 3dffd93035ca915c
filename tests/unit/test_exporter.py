"""The exporter's aggregator (coordinator/exporter.py): recorded payloads in, the text
Prometheus scrapes out, with the names, labels and values docs/telemetry.md lists."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coordinator.exporter import BenchMetrics
from testbed.topics import Topics

TOPICS = Topics("testbed", "lab-1")
EDGE_TELEMETRY = {
    "schema": "telemetry/v1", "node_id": "edge-0", "kind": "edge", "ts_unix_s": 1.0,
    "interval_s": 1.0, "cpu_percent": 12.5, "rss_bytes": 1000, "host_cpu_percent": 3.0,
    "host_memory_used_bytes": 1, "host_memory_total_bytes": 2, "queue_length": 2,
    "energy": {"energy_j": 42.0, "method": "rapl", "power_w": 7.5, "power_method": "rapl"},
    "cache": {"model_ids": ["m"], "used_bytes": 300, "total_bytes": 1000, "hits": 4,
              "misses": 1, "evictions": 0},
}  # fmt: skip


def _record(task_id: str, outcome: str, latency_ms: float) -> dict:
    return {
        "schema": "task-record/v1", "task_id": task_id, "agent_id": "agent-0", "slot": 0,
        "task_type": "txt2img", "outcome": outcome, "latency_ms": latency_ms,
    }  # fmt: skip


def _fed() -> BenchMetrics:
    metrics = BenchMetrics(TOPICS, {"cloud": "cloud", "edge-0": "edge", "agent-0": "agent"})
    root = TOPICS.root
    metrics.handle(f"{root}/node/edge-0/status", b"online")
    metrics.handle(f"{root}/node/agent-0/status", b"offline")
    metrics.handle(f"{root}/node/edge-0/telemetry", json.dumps(EDGE_TELEMETRY).encode())
    for i, (outcome, ms) in enumerate([("completed", 300.0), ("completed", 1500.0), ("failed", 0)]):
        metrics.handle(f"{root}/tasks/agent-0", json.dumps(_record(f"t{i}", outcome, ms)).encode())
    metrics.handle(f"{root}/tasks/agent-0", b"not json")
    return metrics


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_payloads_become_metrics_with_node_and_role_labels() -> None:
    samples = _samples(generate_latest(_fed().registry).decode())
    edge = frozenset({"node": "edge-0", "role": "edge"}.items())
    assert samples[("testbed_node_up", edge)] == 1.0
    assert (
        samples[("testbed_node_up", frozenset({"node": "agent-0", "role": "agent"}.items()))] == 0
    )
    assert samples[("testbed_cpu_percent", edge)] == 12.5
    assert samples[("testbed_memory_bytes", edge)] == 1000
    assert samples[("testbed_power_watts", edge)] == 7.5
    assert samples[("testbed_queue_length", edge)] == 2
    assert samples[("testbed_cache_used_bytes", edge)] == 300
    assert samples[("testbed_cache_capacity_bytes", edge)] == 1000
    assert samples[("testbed_cache_hits_total", edge)] == 4
    assert samples[("testbed_cache_misses_total", edge)] == 1
    assert samples[("testbed_cache_evictions_total", edge)] == 0
    assert samples[("testbed_energy_joules_total", edge | {("method", "rapl")})] == 42.0
    agent = {("node", "agent-0"), ("role", "agent")}
    assert samples[("testbed_tasks_total", frozenset(agent | {("outcome", "completed")}))] == 2
    assert samples[("testbed_tasks_total", frozenset(agent | {("outcome", "failed")}))] == 1
    latency = frozenset(agent | {("task_type", "txt2img")})
    assert samples[("testbed_task_latency_seconds_count", latency)] == 2  # completed only
    assert samples[("testbed_task_latency_seconds_sum", latency)] == pytest.approx(1.8)
    assert samples[("testbed_task_latency_seconds_bucket", latency | {("le", "0.5")})] == 1
    assert samples[("testbed_exporter_bad_payloads_total", frozenset())] == 1


def test_no_task_id_is_ever_a_label() -> None:
    text = generate_latest(_fed().registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert "task_id" not in sample.labels
            assert not {"t0", "t1", "t2"} & set(sample.labels.values())


def test_a_node_that_has_not_reported_has_no_series() -> None:
    text = generate_latest(BenchMetrics(TOPICS).registry).decode()
    assert 'node="' not in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_output() -> None:
    text = generate_latest(_fed().registry)
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
