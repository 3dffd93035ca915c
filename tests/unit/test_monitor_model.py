"""BenchView (coordinator/monitor/model.py) and the recording format
(coordinator/monitor/recorder.py), fed payloads shaped as the nodes publish them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from coordinator.commands.monitor import replay
from coordinator.monitor.model import BenchView
from coordinator.monitor.recorder import is_recorded, read_recording, recording_line
from testbed.topics import Topics

T = Topics("testbed", "b1")

EDGE_STATE = {
    "schema": "edge-state/v1", "edge_id": "edge-0", "seq": 3, "queue_length": 1, "running": 0,
    "cached": [{"model": {"model_id": "sd-tiny"}, "size_bytes": 100},
               {"model": {"model_id": "llm-tiny"}, "size_bytes": 50}],
    "cache_used_bytes": 150, "cache_capacity_bytes": 1000,
    "counters": {"hits": 3, "misses": 1, "evictions": 0},
    "timestamp_unix_s": 1000.0,
}  # fmt: skip


def telemetry(node_id: str, kind: str, ts: float, latency_ms: float, energy_j: float) -> dict:
    return {
        "schema": "telemetry/v1", "node_id": node_id, "kind": kind, "ts_unix_s": ts,
        "interval_s": 1.0, "cpu_percent": 1.0, "rss_bytes": 1, "host_cpu_percent": 1.0,
        "host_memory_used_bytes": 1, "host_memory_total_bytes": 2,
        "energy": {"energy_j": energy_j, "method": "modeled", "power_w": 2.0},
        "tasks": {"window_s": 1.0, "count": 1, "per_s": 1.0, "latency_p50_ms": latency_ms},
    }  # fmt: skip


def recorded_messages() -> list[tuple[str, str, float]]:
    event = {"schema": "event/v1", "ts_unix_s": 1002.0, "node_id": "edge-0",
             "kind": "model_evicted", "fields": {"model_id": "x"}}  # fmt: skip
    t1 = telemetry("agent-0", "agent", 1000.5, 40, 1.0)
    t2 = telemetry("agent-0", "agent", 1001.5, 60, 3.0)
    return [
        (T.status("edge-0"), "online", 999.0),
        (T.status("agent-0"), "online", 999.0),
        (T.edge_state("edge-0"), json.dumps(EDGE_STATE), 1000.0),
        (T.telemetry("agent-0"), json.dumps(t1), 1000.5),
        (T.telemetry("agent-0"), json.dumps(t2), 1001.5),
        (T.events("edge-0"), json.dumps(event), 1002.0),
        (T.status("agent-0"), "offline", 1003.0),
        (T.feed("edge-0"), "\x00binary", 1003.0),
    ]  # fmt: skip


def test_snapshot_has_nodes_edges_points_and_events() -> None:
    view = BenchView(points=1)
    for topic, payload, t in recorded_messages():
        view.feed(topic, payload.encode(), t)
    snap = view.snapshot()
    assert list(snap["nodes"]) == ["agent-0", "edge-0"]
    agent = snap["nodes"]["agent-0"]
    assert agent["role"] == "agent" and agent["status"] == "offline"
    assert agent["latency_p50_ms"] == [60.0]  # bounded: only the latest point
    assert agent["energy_j"] == [3.0]
    assert agent["telemetry_age_s"] == 1.5  # newest time seen (1003) - last telemetry
    edge = snap["edges"]["edge-0"]
    assert edge["cached_models"] == ["sd-tiny", "llm-tiny"]
    assert (edge["used_bytes"], edge["total_bytes"]) == (150, 1000)
    assert (edge["hits"], edge["misses"], edge["hit_rate"]) == (3, 1, 0.75)
    assert snap["nodes"]["edge-0"]["role"] == "edge"
    assert [e["kind"] for e in snap["events"]] == ["model_evicted"]
    json.dumps(snap, allow_nan=False)  # plain JSON


def test_garbage_is_ignored() -> None:
    view = BenchView()
    view.feed(T.telemetry("x"), b"{not json")
    view.feed(T.telemetry("x"), b"[1, 2]")
    view.feed(T.telemetry("x"), json.dumps({"schema": "nope/v9"}).encode())
    assert view.snapshot()["nodes"] == {}


def test_recording_round_trip_gives_the_same_snapshot(tmp_path: Path) -> None:
    live = BenchView()
    path = tmp_path / "telemetry.jsonl"
    with path.open("w") as f:
        for topic, payload, t in recorded_messages():
            live.feed(topic, payload.encode(), t)
            if is_recorded(T, topic):
                f.write(recording_line(t, topic, payload.encode()) + "\n")
        f.write('{"torn')
    assert len(list(read_recording(path))) == 7  # the feed and the torn line are not
    replayed = BenchView()
    replay(path, replayed.feed, speed=0.0)
    want, got = live.snapshot(), replayed.snapshot()
    want.pop("messages"), got.pop("messages")
    assert got == want


def test_dashboard_shows_nodes_and_cached_models() -> None:
    from textual.widgets import DataTable

    from coordinator.monitor.app import MonitorApp

    view = BenchView()
    for topic, payload, t in recorded_messages():
        view.feed(topic, payload.encode(), t)

    async def drive() -> tuple[list[str], list[str]]:
        app = MonitorApp(view)
        async with app.run_test() as pilot:
            await pilot.pause()
            nodes = app.query_one("#nodes", DataTable)
            edges = app.query_one("#edges", DataTable)
            node_ids = [str(nodes.get_row_at(i)[0]) for i in range(nodes.row_count)]
            cached = [str(edges.get_row_at(i)[1]) for i in range(edges.row_count)]
            await pilot.press("f")  # filter: the first node only
            assert nodes.row_count == 1
            await pilot.press("q")
        return node_ids, cached

    node_ids, cached = asyncio.run(drive())
    assert node_ids == ["agent-0", "edge-0"]
    assert cached == ["sd-tiny, llm-tiny"]
